// The matching core: instruments, a preallocated order pool, one price-time-priority book per
// symbol, per-account limits, and a flat event buffer. Semantics: docs/engine-semantics.md.
// Everything is an integer: prices in ticks, quantities in lots, timestamps in ns taken from
// the command (the core never reads a clock).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "hft/flat_map.hpp"
#include "hft/types.hpp"

namespace hft {

inline constexpr std::uint32_t kNil = 0xFFFFFFFFu;
/// Largest max_orders: pool indices are 32-bit and kNil is reserved.
inline constexpr std::uint64_t kMaxOrdersLimit = 0xFFFFFFF0u;
/// Symbol ids below this are resolved through a flat table instead of a hash probe.
inline constexpr std::uint32_t kBookIndexLimit = 1u << 16;

/// A resting order (or the taker being matched). Exactly one cache line: everything the
/// matching loop touches for a maker is loaded by a single miss. The cold timestamp lives in
/// a parallel array of the pool.
struct alignas(64) Order {
  std::uint64_t order_id;
  std::uint64_t account_id;
  std::int64_t price;
  std::int64_t leaves;
  std::int64_t filled;
  std::uint32_t next;  // FIFO successor in the level; free-list link while unused
  std::uint32_t prev;
  std::uint32_t account;   // index in Engine::accounts_ (saves a hash lookup per unlink)
  std::uint32_t acct_pos;  // position in the account's order vector
  std::uint32_t level;     // index of the level the order rests on (kNil while a taker)
  std::uint8_t side;
  std::uint8_t tif;
  std::uint8_t post_only;
  std::uint8_t stp;
};
static_assert(sizeof(Order) == 64);

/// Fixed-capacity pool of orders in one flat, lazily committed virtual reservation.
///
/// The whole capacity is reserved up front as address space only (MAP_NORESERVE): pages
/// cost RSS only once an order lands on them, as with the chunked pool this replaces, but
/// pool[i] is a single indexed load instead of a chunk-table lookup. That lookup ran on
/// every order touched and was a tenth of the instructions of a passive add.
class OrderPool {
 public:
  /// Throws std::bad_alloc when the address space cannot be reserved.
  explicit OrderPool(std::uint32_t capacity);
  ~OrderPool();
  OrderPool(OrderPool&& other) noexcept;
  OrderPool& operator=(OrderPool&& other) noexcept;
  OrderPool(const OrderPool&) = delete;
  OrderPool& operator=(const OrderPool&) = delete;

  /// O(1); kNil when every slot is in use.
  std::uint32_t alloc() {
    if (free_head_ != kNil) {
      const std::uint32_t i = free_head_;
      free_head_ = orders_[i].next;
      ++in_use_;
      return i;
    }
    if (next_fresh_ >= capacity_) return kNil;
    ++in_use_;
    return next_fresh_++;
  }

  /// O(1); pushes the slot on the intrusive free list (LIFO keeps recently used lines hot).
  void free(std::uint32_t i) noexcept {
    orders_[i].next = free_head_;
    free_head_ = i;
    --in_use_;
  }

  Order& operator[](std::uint32_t i) noexcept { return orders_[i]; }
  const Order& operator[](std::uint32_t i) const noexcept { return orders_[i]; }
  std::int64_t& ts(std::uint32_t i) noexcept { return ts_[i]; }
  std::int64_t ts(std::uint32_t i) const noexcept { return ts_[i]; }

  [[nodiscard]] std::uint32_t in_use() const noexcept { return in_use_; }
  [[nodiscard]] std::uint32_t capacity() const noexcept { return capacity_; }

 private:
  void release() noexcept;

  Order* orders_ = nullptr;
  std::int64_t* ts_ = nullptr;  // cold: only queries and snapshots read it
  std::size_t bytes_ = 0;       // size of the reservation (orders, then timestamps)
  std::uint32_t capacity_ = 0;
  std::uint32_t next_fresh_ = 0;
  std::uint32_t free_head_ = kNil;
  std::uint32_t in_use_ = 0;
};

/// One price level: an intrusive FIFO of orders plus its aggregates.
struct Level {
  std::int64_t price;
  std::int64_t total;
  std::uint32_t head;
  std::uint32_t tail;
  std::uint32_t count;
  std::uint32_t book;
  std::uint64_t touch_epoch;  // last command that queued a BOOK_CHANGE for this level
  std::uint32_t gen;          // bumped when the level is freed: stale Touched entries see it
  std::uint8_t side;
};

/// Levels of one side sorted worst..best, so the best is at the back: the common
/// insert/remove near the top of the book moves few elements, and best is O(1).
/// Prices sit in their own array so the binary search scans dense int64s.
struct BookSide {
  /// Slots of the direct-mapped level cache (a power of two).
  static constexpr std::size_t kCacheSize = 1024;

  BookSide() : cache(kCacheSize, kNil) {}

  std::vector<std::int64_t> prices;
  std::vector<std::uint32_t> levels;
  /// Lossy direct-mapped cache price -> level, indexed by price % kCacheSize. An entry, when
  /// not kNil, is always a live level of this side whose price maps to that slot, so a hit
  /// needs one compare of the level's price. Live prices cluster within a few hundred ticks
  /// of the touch, so almost every add finds its level here in O(1) instead of scanning.
  std::vector<std::uint32_t> cache;
};

/// Instrument configuration as given to add_instrument (integer ticks and lots).
struct InstrumentSpec {
  std::uint32_t symbol_id = 0;
  std::string symbol;
  std::int64_t min_qty = 1;
  std::int64_t max_qty = 1;
  std::int64_t band_bps = 0;
  std::int64_t reference_price = 0;
  std::uint8_t status = 1;
};

struct Book {
  InstrumentSpec spec;  // reference_price is updated by trades
  std::uint64_t book_seq = 0;
  BookSide bids;
  BookSide asks;
};

/// Per-account state. Live orders are kept in a vector with swap-remove (each order knows its
/// position) rather than a doubly linked list: unlinking then touches one order, usually the
/// account's most recent and still cached, instead of two cold neighbours.
struct Account {
  std::uint64_t id = 0;
  std::vector<std::uint32_t> orders;
  std::int64_t max_open = 0;
  bool kill = false;
  bool explicit_max = false;
};

/// Aggregated level as returned by depth().
struct LevelInfo {
  std::int64_t price;
  std::int64_t qty;
  std::uint32_t order_count;
};

/// A live order as returned by order() and open_orders().
struct OrderInfo {
  std::uint64_t order_id;
  std::uint64_t account_id;
  std::uint32_t symbol_id;
  std::uint8_t side;
  std::uint8_t tif;
  std::int64_t price;
  std::int64_t qty;
  std::int64_t leaves_qty;
  std::int64_t filled_qty;
  std::uint8_t post_only;
  std::uint8_t stp;
  std::int64_t ts;
};

class Engine {
 public:
  /// Throws std::invalid_argument unless 1 <= max_orders <= kMaxOrdersLimit and
  /// default_max_open_orders >= 0 (0 = unlimited).
  explicit Engine(std::uint64_t max_orders = 1u << 20, std::int64_t default_max_open_orders = 0);

  Engine(Engine&&) noexcept = default;
  Engine& operator=(Engine&&) noexcept = default;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  /// Configuration, not a command: emits nothing. Throws std::invalid_argument on a duplicate
  /// id or name or an invalid value, changing nothing.
  void add_instrument(const InstrumentSpec& spec);

  /// Runs one command, appending its events (tagged with cmd_index) to the buffer.
  /// An unknown command kind appends nothing.
  void execute(const Command& cmd, std::uint32_t cmd_index = 0);

  /// Returns the index of the first command whose kind is unknown, or n when all are valid.
  static std::size_t first_invalid_command(const Command* cmds, std::size_t n) noexcept;
  /// Runs n commands; events carry their command's index.
  void process(const Command* cmds, std::size_t n);

  [[nodiscard]] const std::vector<Event>& events() const noexcept { return events_; }
  void clear_events() noexcept { events_.clear(); }

  // Queries (prices in ticks, quantities in lots). Unknown symbols look empty.
  [[nodiscard]] std::optional<std::pair<std::int64_t, std::int64_t>> best_bid(
      std::uint32_t symbol_id) const;
  [[nodiscard]] std::optional<std::pair<std::int64_t, std::int64_t>> best_ask(
      std::uint32_t symbol_id) const;
  /// Up to `levels` levels per side, best first.
  void depth(std::uint32_t symbol_id, std::size_t levels, std::vector<LevelInfo>& bids,
             std::vector<LevelInfo>& asks) const;
  [[nodiscard]] std::optional<OrderInfo> order(std::uint64_t order_id) const;
  /// Live orders of the account in ascending order id.
  [[nodiscard]] std::vector<OrderInfo> open_orders(std::uint64_t account_id) const;
  /// Instruments in ascending symbol id, with their current reference price.
  [[nodiscard]] std::vector<InstrumentSpec> instruments() const;
  [[nodiscard]] std::uint64_t state_hash() const;
  [[nodiscard]] std::size_t live_orders() const noexcept { return live_; }
  [[nodiscard]] std::uint64_t max_orders() const noexcept { return max_orders_; }
  [[nodiscard]] std::uint64_t trades() const noexcept { return next_trade_id_ - 1; }

  /// Versioned binary image of the whole state with a trailing checksum.
  [[nodiscard]] std::vector<std::uint8_t> snapshot() const;
  /// Loads a snapshot into this engine, which must hold no instruments. Throws
  /// std::invalid_argument on malformed data, leaving the engine unchanged.
  void restore(const std::uint8_t* data, std::size_t size);

 private:
  struct Touched {
    std::int64_t price;
    std::uint32_t level;
    std::uint32_t gen;
    std::uint32_t book;
    std::uint8_t side;
  };

  // Command handlers.
  void on_submit(const Command& c);
  void on_cancel(const Command& c);
  void on_amend(const Command& c);
  void on_cancel_all(const Command& c);
  void on_kill_switch(const Command& c);
  void on_max_open(const Command& c);
  void on_instrument_status(const Command& c);
  void on_expire_day(const Command& c);

  // The hot helpers below are forced inline into the command handlers: each was a call
  // with a full callee-saved register save/restore on every passive add or cancel, which
  // cost more instructions than their common paths.
  [[gnu::always_inline]] inline void dispatch(const Command& c, std::uint32_t cmd_index);

  // Matching and book maintenance.
  bool match(std::uint32_t book, std::uint32_t taker, bool market);
  [[gnu::always_inline]] inline void finish_taker(std::uint32_t book, std::uint32_t taker,
                                                  bool canceled, bool may_rest,
                                                  std::uint32_t account);
  /// Out-of-line entry to place() for the snapshot loader.
  void rest(std::uint32_t book, std::uint32_t oi, std::uint32_t account);
  [[gnu::always_inline]] inline void place(std::uint32_t book, std::uint32_t oi,
                                           std::uint32_t account);
  void unlink(std::uint32_t oi);
  /// unlink() without the order-id map: for callers that erase the map entry themselves.
  [[gnu::always_inline]] inline void detach(std::uint32_t oi);
  [[gnu::always_inline]] inline void drop(std::uint32_t oi);
  [[gnu::always_inline]] inline std::uint32_t level_for(std::uint32_t book, std::uint8_t side,
                                                        std::int64_t price);
  std::uint32_t find_or_create_level(BookSide& s, std::uint32_t book, std::uint8_t side,
                                     std::int64_t price);
  void erase_level(std::uint32_t li);
  // Called several times per command from many sites; forcing the inline removes a call
  // and a register spill per event on the hot path.
  [[gnu::always_inline]] inline void touch(std::uint32_t li);
  [[gnu::always_inline]] inline void flush_book_changes();
  [[nodiscard]] std::int64_t fillable(const Book& b, const Order& t, bool market) const;
  [[nodiscard]] bool out_of_band(const Book& b, std::int64_t price) const noexcept {
    // Most instruments trade without a band: this test is inline, the 128-bit math is not.
    return b.spec.band_bps > 0 && b.spec.reference_price > 0 && outside_band(b, price);
  }
  [[nodiscard]] static bool outside_band(const Book& b, std::int64_t price) noexcept;
  std::uint32_t account_for(std::uint64_t account_id);
  void cancel_orders(std::vector<std::uint32_t>& orders, EventType type, CancelReason reason);

  // Events.
  Event& push(EventType type) {
    Event& e = events_.emplace_back();
    e.type = static_cast<std::uint8_t>(type);
    e.cmd_index = cmd_index_;
    e.ts = ts_;
    return e;
  }
  [[gnu::always_inline]] inline void order_event(EventType type, std::uint32_t symbol_id,
                                                 const Order& o, std::uint16_t reason,
                                                 std::int64_t qty, std::int64_t leaves);
  void reject(EventType type, const Command& c, RejectReason reason);

  /// Index in books_ of a symbol id, FlatMap::kEmpty when unknown.
  [[nodiscard]] std::uint32_t book_of(std::uint32_t symbol_id) const noexcept {
    // Symbol ids are small in practice: a flat table answers with one bounds check and one
    // load on every submit; the hash map covers any id beyond it.
    if (symbol_id < book_index_.size()) return book_index_[symbol_id];
    return book_map_.find(symbol_id);
  }

  [[nodiscard]] std::uint32_t symbol_of(const Order& o) const noexcept {
    return books_[levels_[o.level].book].spec.symbol_id;
  }

  std::uint64_t max_orders_;
  std::int64_t default_max_open_;
  OrderPool pool_;
  FlatMap order_map_;                      // order id -> pool index, live (resting) orders only
  FlatMap book_map_;                       // symbol id -> index in books_
  std::vector<std::uint32_t> book_index_;  // the same for ids < kBookIndexLimit
  FlatMap account_map_;                    // account id -> index in accounts_
  std::vector<Book> books_;
  std::vector<std::uint32_t> books_by_symbol_;  // indices into books_, ascending symbol id
  std::vector<Account> accounts_;
  std::vector<Level> levels_;
  std::vector<std::uint32_t> free_levels_;
  std::vector<Event> events_;
  std::vector<Touched> touched_;
  std::vector<std::uint32_t> scratch_;
  std::size_t live_ = 0;
  std::uint64_t next_trade_id_ = 1;
  std::uint64_t epoch_ = 0;
  std::uint32_t cmd_index_ = 0;
  std::int64_t ts_ = 0;
};

}  // namespace hft
