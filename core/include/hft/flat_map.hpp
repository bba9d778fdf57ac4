// Open-addressing hash map from a 64-bit key to a 32-bit slot index, used for order ids,
// account ids and symbol ids on the hot path.
#pragma once

#include <bit>
#include <cstdint>
#include <memory>

namespace hft {

/// Linear-probing map uint64 -> uint32 (values must be < kEmpty) with backward-shift delete.
class FlatMap {
 public:
  static constexpr std::uint32_t kEmpty = 0xFFFFFFFFu;

  FlatMap() { rehash(16); }

  [[nodiscard]] std::uint32_t find(std::uint64_t key) const noexcept {
    std::size_t i = slot_of(key);
    // Linear probing: the probe sequence stays within one or two cache lines at <=50% load,
    // which beats chained buckets (one pointer chase per lookup) on every cancel and amend.
    while (true) {
      const Entry& e = entries_[i];
      if (e.value == kEmpty) return kEmpty;
      if (e.key == key) return e.value;
      i = (i + 1) & mask_;
    }
  }

  /// Starts loading the cache line where key's probe begins.
  void prefetch(std::uint64_t key) const noexcept { __builtin_prefetch(&entries_[slot_of(key)]); }

  /// Inserts or overwrites.
  [[gnu::always_inline]] void put(std::uint64_t key, std::uint32_t value) {
    // Inline probe on every resting order; the rare growth stays out of line.
    if ((size_ + 1) * 2 > capacity_) [[unlikely]] {
      grow();
    }
    std::size_t i = slot_of(key);
    while (true) {
      Entry& e = entries_[i];
      if (e.value == kEmpty) {
        e.key = key;
        e.value = value;
        ++size_;
        return;
      }
      if (e.key == key) {
        e.value = value;
        return;
      }
      i = (i + 1) & mask_;
    }
  }

  /// Grows the table so that at least n keys fit at <= 50% load.
  void reserve(std::size_t n) {
    std::size_t cap = capacity_;
    while (n * 2 > cap) cap *= 2;
    if (cap != capacity_) rehash(cap);
  }

  /// Table position of key, or kNoSlot; valid until the next put or erase.
  static constexpr std::size_t kNoSlot = ~std::size_t{0};
  [[nodiscard]] std::size_t find_slot(std::uint64_t key) const noexcept {
    std::size_t i = slot_of(key);
    while (true) {
      const Entry& e = entries_[i];
      if (e.value == kEmpty) return kNoSlot;
      if (e.key == key) return i;
      i = (i + 1) & mask_;
    }
  }
  [[nodiscard]] std::uint32_t value_at(std::size_t slot) const noexcept {
    return entries_[slot].value;
  }

  /// Removes key if present; returns whether it was.
  bool erase(std::uint64_t key) noexcept {
    const std::size_t i = find_slot(key);
    if (i == kNoSlot) return false;
    erase_at(i);
    return true;
  }

  /// Removes the entry at a position from find_slot (a cancel probes once, not twice).
  void erase_at(std::size_t i) noexcept {
    // Backward-shift deletion keeps probe chains intact without tombstones, so lookups
    // never degrade after millions of insert/erase cycles.
    std::size_t hole = i;
    std::size_t j = i;
    while (true) {
      j = (j + 1) & mask_;
      if (entries_[j].value == kEmpty) break;
      const std::size_t home = slot_of(entries_[j].key);
      // Move entry j into the hole unless its home lies cyclically in (hole, j].
      const bool home_between = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
      if (!home_between) {
        entries_[hole] = entries_[j];
        hole = j;
      }
    }
    entries_[hole].value = kEmpty;
    --size_;
  }

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

  void clear() {
    entries_.reset();
    rehash(16);
  }

  /// Calls f(key, value) for every entry, in table order.
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i < capacity_; ++i) {
      if (entries_[i].value != kEmpty) f(entries_[i].key, entries_[i].value);
    }
  }

 private:
  struct Entry {
    std::uint64_t key;
    std::uint32_t value;
  };

  [[nodiscard]] std::size_t slot_of(std::uint64_t key) const noexcept {
    // Fibonacci hashing: one multiply, then the top bits. The high half of the product
    // depends on every key bit, so runs of sequential caller-chosen ids land far apart
    // instead of piling up in one probe chain; it is about a third of the instructions
    // of a full murmur finalizer, and this runs on every submit, cancel and fill.
    return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ULL) >> shift_);
  }

  [[gnu::noinline]] void grow() { rehash(capacity_ * 2); }

  void rehash(std::size_t new_capacity) {
    std::unique_ptr<Entry[]> old = std::move(entries_);
    const std::size_t old_capacity = old ? capacity_ : 0;
    entries_ = std::make_unique<Entry[]>(new_capacity);
    for (std::size_t i = 0; i < new_capacity; ++i) entries_[i].value = kEmpty;
    capacity_ = new_capacity;
    mask_ = new_capacity - 1;
    shift_ = static_cast<unsigned>(64 - std::countr_zero(new_capacity));
    size_ = 0;
    for (std::size_t i = 0; i < old_capacity; ++i) {
      if (old[i].value != kEmpty) put(old[i].key, old[i].value);
    }
  }

  std::unique_ptr<Entry[]> entries_;
  std::size_t capacity_ = 0;
  std::size_t mask_ = 0;
  unsigned shift_ = 64;
  std::size_t size_ = 0;
};

}  // namespace hft
