// Read-only queries and the state hash. None of these is on the matching hot path.
#include <algorithm>

#include "hft/engine.hpp"

namespace hft {

namespace {

/// The state hash of docs/engine-semantics.md: FNV-1a style over 64-bit words with an
/// extra xor-shift so that high bits feed back into low ones.
class WordHash {
 public:
  void add(std::uint64_t w) noexcept {
    h_ ^= w;
    h_ *= 0x100000001b3ULL;
    h_ ^= h_ >> 29;
  }
  void add_signed(std::int64_t w) noexcept { add(static_cast<std::uint64_t>(w)); }
  [[nodiscard]] std::uint64_t value() const noexcept { return h_; }

 private:
  std::uint64_t h_ = 0xcbf29ce484222325ULL;
};

}  // namespace

std::optional<std::pair<std::int64_t, std::int64_t>> Engine::best_bid(
    std::uint32_t symbol_id) const {
  const std::uint32_t bi = book_map_.find(symbol_id);
  if (bi == FlatMap::kEmpty || books_[bi].bids.levels.empty()) return std::nullopt;
  const Level& lv = levels_[books_[bi].bids.levels.back()];
  return std::make_pair(lv.price, lv.total);
}

std::optional<std::pair<std::int64_t, std::int64_t>> Engine::best_ask(
    std::uint32_t symbol_id) const {
  const std::uint32_t bi = book_map_.find(symbol_id);
  if (bi == FlatMap::kEmpty || books_[bi].asks.levels.empty()) return std::nullopt;
  const Level& lv = levels_[books_[bi].asks.levels.back()];
  return std::make_pair(lv.price, lv.total);
}

void Engine::depth(std::uint32_t symbol_id, std::size_t levels, std::vector<LevelInfo>& bids,
                   std::vector<LevelInfo>& asks) const {
  bids.clear();
  asks.clear();
  const std::uint32_t bi = book_map_.find(symbol_id);
  if (bi == FlatMap::kEmpty) return;
  auto fill = [&](const BookSide& s, std::vector<LevelInfo>& out) {
    for (std::size_t i = s.levels.size(); i-- > 0 && out.size() < levels;) {
      const Level& lv = levels_[s.levels[i]];
      out.push_back(LevelInfo{lv.price, lv.total, lv.count});
    }
  };
  fill(books_[bi].bids, bids);
  fill(books_[bi].asks, asks);
}

std::optional<OrderInfo> Engine::order(std::uint64_t order_id) const {
  const std::uint32_t oi = order_map_.find(order_id);
  if (oi == FlatMap::kEmpty) return std::nullopt;
  const Order& o = pool_[oi];
  return OrderInfo{o.order_id, o.account_id,        symbol_of(o), o.side,   o.tif,
                   o.price,    o.filled + o.leaves, o.leaves,     o.filled, o.post_only,
                   o.stp,      pool_.ts(oi)};
}

std::vector<OrderInfo> Engine::open_orders(std::uint64_t account_id) const {
  std::vector<OrderInfo> out;
  const std::uint32_t ai = account_map_.find(account_id);
  if (ai == FlatMap::kEmpty) return out;
  for (const std::uint32_t oi : accounts_[ai].orders) {
    out.push_back(*order(pool_[oi].order_id));
  }
  std::sort(out.begin(), out.end(),
            [](const OrderInfo& a, const OrderInfo& b) { return a.order_id < b.order_id; });
  return out;
}

std::vector<InstrumentSpec> Engine::instruments() const {
  std::vector<InstrumentSpec> out;
  out.reserve(books_by_symbol_.size());
  for (const std::uint32_t bi : books_by_symbol_) out.push_back(books_[bi].spec);
  return out;
}

std::uint64_t Engine::state_hash() const {
  WordHash h;
  for (const std::uint32_t bi : books_by_symbol_) {
    const Book& b = books_[bi];
    h.add(b.spec.symbol_id);
    h.add(b.spec.status);
    h.add_signed(b.spec.reference_price);
    h.add(b.book_seq);
    h.add(b.bids.levels.size());
    h.add(b.asks.levels.size());
    for (const BookSide* s : {&b.bids, &b.asks}) {
      for (std::size_t i = s->levels.size(); i-- > 0;) {
        const Level& lv = levels_[s->levels[i]];
        h.add_signed(lv.price);
        h.add_signed(lv.total);
        h.add(lv.count);
        for (std::uint32_t oi = lv.head; oi != kNil; oi = pool_[oi].next) {
          const Order& o = pool_[oi];
          h.add(o.order_id);
          h.add(o.account_id);
          h.add_signed(o.leaves);
          h.add_signed(o.filled);
          h.add(o.tif);
          h.add(o.post_only);
          h.add(o.stp);
        }
      }
    }
  }
  std::vector<const Account*> flagged;
  for (const Account& a : accounts_) {
    if (a.kill || a.explicit_max) flagged.push_back(&a);
  }
  std::sort(flagged.begin(), flagged.end(),
            [](const Account* a, const Account* b) { return a->id < b->id; });
  for (const Account* a : flagged) {
    h.add(a->id);
    h.add(a->kill ? 1 : 0);
    h.add(a->explicit_max ? static_cast<std::uint64_t>(a->max_open) : ~std::uint64_t{0});
  }
  h.add(next_trade_id_);
  return h.value();
}

}  // namespace hft
