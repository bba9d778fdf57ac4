// The order pool's address-space reservation (see OrderPool in hft/engine.hpp).
#include <sys/mman.h>

#include <new>
#include <utility>

#include "hft/engine.hpp"

namespace hft {

OrderPool::OrderPool(std::uint32_t capacity) : capacity_(capacity) {
  const std::size_t n = capacity == 0 ? 1 : capacity;
  bytes_ = n * sizeof(Order) + n * sizeof(std::int64_t);
  // Anonymous pages read as zero and are committed on first touch; MAP_NORESERVE keeps a
  // large max_orders from being charged against the commit limit before it is used.
  void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  orders_ = static_cast<Order*>(p);
  ts_ = reinterpret_cast<std::int64_t*>(static_cast<char*>(p) + n * sizeof(Order));
}

OrderPool::~OrderPool() { release(); }

void OrderPool::release() noexcept {
  if (orders_ != nullptr) munmap(orders_, bytes_);
  orders_ = nullptr;
  ts_ = nullptr;
}

OrderPool::OrderPool(OrderPool&& other) noexcept
    : orders_(std::exchange(other.orders_, nullptr)),
      ts_(std::exchange(other.ts_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)),
      capacity_(std::exchange(other.capacity_, 0)),
      next_fresh_(std::exchange(other.next_fresh_, 0)),
      free_head_(std::exchange(other.free_head_, kNil)),
      in_use_(std::exchange(other.in_use_, 0)) {}

OrderPool& OrderPool::operator=(OrderPool&& other) noexcept {
  if (this != &other) {
    release();
    orders_ = std::exchange(other.orders_, nullptr);
    ts_ = std::exchange(other.ts_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
    next_fresh_ = std::exchange(other.next_fresh_, 0);
    free_head_ = std::exchange(other.free_head_, kNil);
    in_use_ = std::exchange(other.in_use_, 0);
  }
  return *this;
}

}  // namespace hft
