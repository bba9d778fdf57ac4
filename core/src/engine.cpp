// Commands and matching. Hot-path rules: no allocation per order (pool slots and level
// objects are recycled), no virtual calls, and every lookup is a flat array or an
// open-addressing probe.
#include "hft/engine.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>

namespace hft {

namespace {

constexpr auto kBuy = static_cast<std::uint8_t>(Side::kBuy);
constexpr auto kSell = static_cast<std::uint8_t>(Side::kSell);
constexpr auto kLimit = static_cast<std::uint8_t>(OrderType::kLimit);
constexpr auto kMarket = static_cast<std::uint8_t>(OrderType::kMarket);
constexpr auto kGtc = static_cast<std::uint8_t>(TimeInForce::kGtc);
constexpr auto kDay = static_cast<std::uint8_t>(TimeInForce::kDay);
constexpr auto kIoc = static_cast<std::uint8_t>(TimeInForce::kIoc);
constexpr auto kFok = static_cast<std::uint8_t>(TimeInForce::kFok);
constexpr auto kStpMaker = static_cast<std::uint8_t>(StpMode::kCancelMaker);
constexpr auto kStpTaker = static_cast<std::uint8_t>(StpMode::kCancelTaker);
constexpr auto kStpNone = static_cast<std::uint8_t>(StpMode::kNone);
constexpr auto kTrading = static_cast<std::uint8_t>(InstrumentStatus::kTrading);
constexpr auto kHalted = static_cast<std::uint8_t>(InstrumentStatus::kHalted);

__extension__ typedef unsigned __int128 u128;

constexpr std::uint16_t code(RejectReason r) { return static_cast<std::uint16_t>(r); }
constexpr std::uint16_t code(CancelReason r) { return static_cast<std::uint16_t>(r); }

}  // namespace

inline void Engine::touch(std::uint32_t li) {
  Level& lv = levels_[li];
  if (lv.touch_epoch == epoch_) return;
  lv.touch_epoch = epoch_;
  touched_.push_back(Touched{lv.price, li, lv.gen, lv.book, lv.side});
}

inline void Engine::order_event(EventType type, std::uint32_t symbol_id, const Order& o,
                                std::uint16_t reason, std::int64_t qty, std::int64_t leaves) {
  // Events are built whole and copied in once: value-initialising the 104-byte record in
  // the buffer and then overwriting most of it doubled the stores of every event.
  events_.push_back(Event{static_cast<std::uint8_t>(type), o.side, reason, symbol_id, cmd_index_, 0,
                          o.order_id, o.account_id, o.price, qty, leaves, 0, 0, 0, 0, 0, ts_});
}

inline void Engine::drop(std::uint32_t oi) {
  order_map_.erase(pool_[oi].order_id);
  detach(oi);
  pool_.free(oi);
}

Engine::Engine(std::uint64_t max_orders, std::int64_t default_max_open_orders)
    : max_orders_(max_orders),
      default_max_open_(default_max_open_orders),
      pool_(static_cast<std::uint32_t>(std::min<std::uint64_t>(max_orders, kMaxOrdersLimit))) {
  if (max_orders < 1 || max_orders > kMaxOrdersLimit) {
    throw std::invalid_argument("max_orders must be between 1 and " +
                                std::to_string(kMaxOrdersLimit));
  }
  if (default_max_open_orders < 0) {
    throw std::invalid_argument("default_max_open_orders must be >= 0 (0 = unlimited)");
  }
  // Reserved once and reused: the buffer is cleared, never shrunk, between batches.
  events_.reserve(1u << 14);
  touched_.reserve(64);
  // Sized for a typical live book up front (1 MiB at most) so that the first tens of
  // thousands of resting orders do not pay for repeated rehashing.
  order_map_.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(max_orders, 1u << 15)));
}

void Engine::add_instrument(const InstrumentSpec& s) {
  if (s.symbol_id == 0) throw std::invalid_argument("symbol_id must be >= 1");
  if (s.symbol.empty()) throw std::invalid_argument("symbol must not be empty");
  if (s.min_qty < 1) throw std::invalid_argument("min_qty must be >= 1");
  if (s.max_qty < s.min_qty) throw std::invalid_argument("max_qty must be >= min_qty");
  // Every resting order has leaves <= max_qty and at most max_orders rest on one level, so
  // this bound keeps a level's total (and any sum of leaves) inside int64.
  const auto qty_limit = static_cast<std::int64_t>(
      static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / max_orders_);
  if (s.max_qty > qty_limit) {
    throw std::invalid_argument("max_qty must be <= " + std::to_string(qty_limit) +
                                " (INT64_MAX // max_orders) so that a price level's total "
                                "quantity cannot overflow");
  }
  if (s.band_bps < 0) throw std::invalid_argument("band_bps must be >= 0");
  if (s.reference_price < 0) throw std::invalid_argument("reference_price must be >= 0");
  if (s.status != kTrading && s.status != kHalted) {
    throw std::invalid_argument("status must be TRADING (1) or HALTED (2)");
  }
  if (book_map_.find(s.symbol_id) != FlatMap::kEmpty) {
    throw std::invalid_argument("duplicate symbol_id " + std::to_string(s.symbol_id));
  }
  for (const Book& b : books_) {
    if (b.spec.symbol == s.symbol) throw std::invalid_argument("duplicate symbol " + s.symbol);
  }
  const auto idx = static_cast<std::uint32_t>(books_.size());
  books_.emplace_back();
  books_.back().spec = s;
  book_map_.put(s.symbol_id, idx);
  if (s.symbol_id < kBookIndexLimit) {
    if (book_index_.size() <= s.symbol_id) book_index_.resize(s.symbol_id + 1, FlatMap::kEmpty);
    book_index_[s.symbol_id] = idx;
  }
  const auto pos = std::lower_bound(
      books_by_symbol_.begin(), books_by_symbol_.end(), s.symbol_id,
      [this](std::uint32_t b, std::uint32_t id) { return books_[b].spec.symbol_id < id; });
  books_by_symbol_.insert(pos, idx);
}

std::size_t Engine::first_invalid_command(const Command* cmds, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    if (cmds[i].kind < static_cast<std::uint8_t>(CommandKind::kSubmit) ||
        cmds[i].kind > static_cast<std::uint8_t>(CommandKind::kExpireDay)) {
      return i;
    }
  }
  return n;
}

void Engine::process(const Command* cmds, std::size_t n) {
  // With a large book almost every id lookup and every order touched is a cache miss. The
  // batch knows what comes next, so it runs a two-stage software pipeline: the hash slot of
  // command i+8 is prefetched, and for cancels/amends of command i+4 the (by now cached)
  // slot is read and the order itself prefetched. Prefetches are hints only: a command in
  // between may change the book, which costs a miss, never a wrong result.
  constexpr std::size_t kSlotAhead = 8;
  constexpr std::size_t kOrderAhead = 4;
  for (std::size_t i = 0; i < n; ++i) {
    if (i + kSlotAhead < n) {
      const Command& f = cmds[i + kSlotAhead];
      if (f.kind <= static_cast<std::uint8_t>(CommandKind::kAmend)) order_map_.prefetch(f.order_id);
    }
    if (i + kOrderAhead < n) {
      const Command& f = cmds[i + kOrderAhead];
      if (f.kind == static_cast<std::uint8_t>(CommandKind::kCancel) ||
          f.kind == static_cast<std::uint8_t>(CommandKind::kAmend)) {
        const std::uint32_t oi = order_map_.find(f.order_id);
        if (oi != FlatMap::kEmpty) __builtin_prefetch(&pool_[oi]);
      }
    }
    dispatch(cmds[i], static_cast<std::uint32_t>(i));
  }
}

void Engine::execute(const Command& c, std::uint32_t cmd_index) { dispatch(c, cmd_index); }

inline void Engine::dispatch(const Command& c, std::uint32_t cmd_index) {
  cmd_index_ = cmd_index;
  ts_ = c.ts;
  ++epoch_;
  // Submits and cancels are nearly all of the flow: two predictable branches beat the
  // bounds check and indirect jump of a switch.
  if (c.kind == static_cast<std::uint8_t>(CommandKind::kSubmit)) [[likely]] {
    on_submit(c);
  } else if (c.kind == static_cast<std::uint8_t>(CommandKind::kCancel)) {
    on_cancel(c);
  } else {
    switch (static_cast<CommandKind>(c.kind)) {
      case CommandKind::kAmend:
        on_amend(c);
        break;
      case CommandKind::kCancelAll:
        on_cancel_all(c);
        break;
      case CommandKind::kSetKillSwitch:
        on_kill_switch(c);
        break;
      case CommandKind::kSetMaxOpenOrders:
        on_max_open(c);
        break;
      case CommandKind::kSetInstrumentStatus:
        on_instrument_status(c);
        break;
      case CommandKind::kExpireDay:
        on_expire_day(c);
        break;
      default:
        return;
    }
  }
  if (!touched_.empty()) flush_book_changes();
}

// ---------------------------------------------------------------------------------------
// Events

void Engine::reject(EventType type, const Command& c, RejectReason reason) {
  Event& e = push(type);
  e.reason = code(reason);
  e.symbol_id = c.symbol_id;
  e.order_id = c.order_id;
  e.account_id = c.account_id;
  if (type == EventType::kRejected) {
    e.side = c.side;
    e.price = c.type == kMarket ? 0 : c.price;
    e.qty = c.qty;
  } else if (type == EventType::kAmendRejected) {
    e.price = c.price;
    e.qty = c.qty;
  }
}

inline void Engine::flush_book_changes() {
  for (const Touched& t : touched_) {
    Book& b = books_[t.book];
    // Same generation: the level still exists (it cannot have moved to another price without
    // being freed). Otherwise it emptied during the command and is reported gone.
    const Level& lv = levels_[t.level];
    const bool alive = lv.gen == t.gen;
    events_.push_back(Event{static_cast<std::uint8_t>(EventType::kBookChange), t.side, 0,
                            b.spec.symbol_id, cmd_index_, alive ? lv.count : 0, 0, 0, t.price,
                            alive ? lv.total : 0, 0, 0, 0, 0, 0, ++b.book_seq, ts_});
  }
  touched_.clear();
}

// ---------------------------------------------------------------------------------------
// Book structure

inline std::uint32_t Engine::level_for(std::uint32_t book, std::uint8_t side, std::int64_t price) {
  BookSide& s = side == kBuy ? books_[book].bids : books_[book].asks;
  const std::uint32_t cached =
      s.cache[static_cast<std::uint64_t>(price) & (BookSide::kCacheSize - 1)];
  if (cached != kNil && levels_[cached].price == price) [[likely]] {
    return cached;
  }
  return find_or_create_level(s, book, side, price);
}

std::uint32_t Engine::find_or_create_level(BookSide& s, std::uint32_t book, std::uint8_t side,
                                           std::int64_t price) {
  std::uint32_t& cached = s.cache[static_cast<std::uint64_t>(price) & (BookSide::kCacheSize - 1)];
  const bool bid = side == kBuy;
  // Bids ascend and asks descend towards the back (the best). Search from the back: new
  // orders cluster near the touch, so the insert position is usually within a few slots.
  std::size_t pos = s.prices.size();
  while (pos > 0) {
    const std::int64_t p = s.prices[pos - 1];
    if (p == price) return cached = s.levels[pos - 1];
    if (bid ? p < price : p > price) break;
    if (s.prices.size() - pos >= 8) {
      const auto it = std::lower_bound(
          s.prices.begin(), s.prices.begin() + static_cast<std::ptrdiff_t>(pos), price,
          [bid](std::int64_t a, std::int64_t v) { return bid ? a < v : a > v; });
      pos = static_cast<std::size_t>(it - s.prices.begin());
      if (pos < s.prices.size() && *it == price) return cached = s.levels[pos];
      break;
    }
    --pos;
  }
  std::uint32_t li;
  if (!free_levels_.empty()) {
    li = free_levels_.back();
    free_levels_.pop_back();
  } else {
    li = static_cast<std::uint32_t>(levels_.size());
    levels_.emplace_back();
  }
  Level& lv = levels_[li];
  const std::uint32_t gen = lv.gen;
  lv = Level{price, 0, kNil, kNil, 0, book, 0, gen, side};
  // A level at this price may have been emptied earlier in the same command: it must keep
  // a single BOOK_CHANGE, so the earlier touch is redirected to the new level.
  for (Touched& t : touched_) {
    if (t.book == book && t.side == side && t.price == price) {
      lv.touch_epoch = epoch_;
      t.level = li;
      t.gen = gen;
      break;
    }
  }
  s.prices.insert(s.prices.begin() + static_cast<std::ptrdiff_t>(pos), price);
  s.levels.insert(s.levels.begin() + static_cast<std::ptrdiff_t>(pos), li);
  cached = li;
  return li;
}

void Engine::erase_level(std::uint32_t li) {
  const Level& lv = levels_[li];
  BookSide& s = lv.side == kBuy ? books_[lv.book].bids : books_[lv.book].asks;
  std::uint32_t& cached =
      s.cache[static_cast<std::uint64_t>(lv.price) & (BookSide::kCacheSize - 1)];
  if (cached == li) cached = kNil;
  if (s.levels.back() == li) {
    s.prices.pop_back();
    s.levels.pop_back();
  } else {
    const bool bid = lv.side == kBuy;
    const auto it =
        std::lower_bound(s.prices.begin(), s.prices.end(), lv.price,
                         [bid](std::int64_t a, std::int64_t p) { return bid ? a < p : a > p; });
    const auto pos = it - s.prices.begin();
    s.prices.erase(it);
    s.levels.erase(s.levels.begin() + pos);
  }
  ++levels_[li].gen;
  free_levels_.push_back(li);
}

void Engine::rest(std::uint32_t book, std::uint32_t oi, std::uint32_t account) {
  place(book, oi, account);
}

inline void Engine::place(std::uint32_t book, std::uint32_t oi, std::uint32_t account) {
  Order& o = pool_[oi];
  const std::uint32_t li = level_for(book, o.side, o.price);
  Level& lv = levels_[li];
  o.level = li;
  o.next = kNil;
  o.prev = lv.tail;
  if (lv.tail != kNil) {
    pool_[lv.tail].next = oi;
  } else {
    lv.head = oi;
  }
  lv.tail = oi;
  lv.total += o.leaves;
  ++lv.count;
  touch(li);
  order_map_.put(o.order_id, oi);
  // The caller already looked the account up (kEmpty: first resting order of a new account).
  const std::uint32_t ai = account != FlatMap::kEmpty ? account : account_for(o.account_id);
  Account& a = accounts_[ai];
  o.account = ai;
  o.acct_pos = static_cast<std::uint32_t>(a.orders.size());
  a.orders.push_back(oi);
  ++live_;
}

void Engine::unlink(std::uint32_t oi) {
  order_map_.erase(pool_[oi].order_id);
  detach(oi);
}

inline void Engine::detach(std::uint32_t oi) {
  Order& o = pool_[oi];
  Level& lv = levels_[o.level];
  if (o.prev != kNil) {
    pool_[o.prev].next = o.next;
  } else {
    lv.head = o.next;
  }
  if (o.next != kNil) {
    pool_[o.next].prev = o.prev;
  } else {
    lv.tail = o.prev;
  }
  lv.total -= o.leaves;
  if (--lv.count == 0) erase_level(o.level);
  o.level = kNil;
  Account& a = accounts_[o.account];
  const std::uint32_t last = a.orders.back();
  a.orders[o.acct_pos] = last;
  pool_[last].acct_pos = o.acct_pos;
  a.orders.pop_back();
  --live_;
}

std::uint32_t Engine::account_for(std::uint64_t account_id) {
  std::uint32_t ai = account_map_.find(account_id);
  if (ai == FlatMap::kEmpty) {
    ai = static_cast<std::uint32_t>(accounts_.size());
    accounts_.emplace_back();
    accounts_.back().id = account_id;
    account_map_.put(account_id, ai);
  }
  return ai;
}

bool Engine::outside_band(const Book& b, std::int64_t price) noexcept {
  const std::int64_t ref = b.spec.reference_price;
  // price > 0 and ref > 0, so the distance fits in uint64; the products need 128 bits.
  const std::uint64_t diff = price >= ref ? static_cast<std::uint64_t>(price - ref)
                                          : static_cast<std::uint64_t>(ref - price);
  return static_cast<u128>(diff) * 10000u >
         static_cast<u128>(ref) * static_cast<std::uint64_t>(b.spec.band_bps);
}

std::int64_t Engine::fillable(const Book& b, const Order& t, bool market) const {
  const BookSide& s = t.side == kBuy ? b.asks : b.bids;
  std::int64_t sum = 0;
  for (std::size_t i = s.levels.size(); i-- > 0;) {
    const Level& lv = levels_[s.levels[i]];
    if (!market && (t.side == kBuy ? t.price < lv.price : t.price > lv.price)) break;
    for (std::uint32_t mi = lv.head; mi != kNil; mi = pool_[mi].next) {
      const Order& m = pool_[mi];
      if (t.stp != kStpNone && m.account_id == t.account_id) {
        if (t.stp == kStpMaker) continue;
        return sum;
      }
      // Stop as soon as the target is reached, so the sum stays below 2 * INT64_MAX and
      // never overflows; the caller only compares against the order quantity.
      if (m.leaves >= t.leaves - sum) return t.leaves;
      sum += m.leaves;
    }
  }
  return sum;
}

// ---------------------------------------------------------------------------------------
// Matching

bool Engine::match(std::uint32_t book, std::uint32_t ti, bool market) {
  Order& t = pool_[ti];
  Book& b = books_[book];
  BookSide& opp = t.side == kBuy ? b.asks : b.bids;
  const std::uint32_t symbol_id = b.spec.symbol_id;
  while (t.leaves > 0 && !opp.levels.empty()) {
    const std::uint32_t li = opp.levels.back();
    // Branch on the side once per level, not per maker: the whole level shares one price.
    if (!market && (t.side == kBuy ? t.price < opp.prices.back() : t.price > opp.prices.back())) {
      break;
    }
    bool level_gone = false;
    while (t.leaves > 0 && !level_gone) {
      const std::uint32_t mi = levels_[li].head;
      Order& m = pool_[mi];
      // A sweep walks the FIFO: start loading the next maker while this one trades.
      if (m.next != kNil) __builtin_prefetch(&pool_[m.next]);
      level_gone = levels_[li].count == 1;
      if (m.account_id == t.account_id && t.stp != kStpNone) {
        if (t.stp != kStpTaker) {
          touch(li);
          order_event(EventType::kCanceled, symbol_id, m, code(CancelReason::kSelfTrade), m.leaves,
                      0);
          drop(mi);
        }
        if (t.stp != kStpMaker) {
          order_event(EventType::kCanceled, symbol_id, t, code(CancelReason::kSelfTrade), t.leaves,
                      0);
          t.leaves = 0;
          return true;
        }
        continue;
      }
      // Touch only levels the command really changes: a CANCEL_TAKER stop leaves the
      // maker's level alone and must not publish a BOOK_CHANGE for it.
      touch(li);
      const std::int64_t q = t.leaves < m.leaves ? t.leaves : m.leaves;
      t.leaves -= q;
      t.filled += q;
      m.leaves -= q;
      m.filled += q;
      levels_[li].total -= q;
      b.spec.reference_price = m.price;
      events_.push_back(Event{static_cast<std::uint8_t>(EventType::kTrade), t.side, 0, symbol_id,
                              cmd_index_, 0, t.order_id, t.account_id, m.price, q, t.leaves,
                              m.order_id, m.account_id, m.leaves, next_trade_id_++, ++b.book_seq,
                              ts_});
      if (m.leaves == 0) {
        // unlink() subtracts the maker's leaves (now 0) from the level total.
        drop(mi);
      } else {
        level_gone = false;
      }
    }
  }
  return false;
}

inline void Engine::finish_taker(std::uint32_t book, std::uint32_t ti, bool canceled, bool may_rest,
                                 std::uint32_t account) {
  Order& t = pool_[ti];
  if (canceled || t.leaves == 0) {
    pool_.free(ti);
    return;
  }
  if (may_rest) {
    place(book, ti, account);
    return;
  }
  order_event(EventType::kCanceled, books_[book].spec.symbol_id, t,
              code(CancelReason::kIocRemainder), t.leaves, 0);
  pool_.free(ti);
}

void Engine::on_submit(const Command& c) {
  const std::uint32_t bi = book_of(c.symbol_id);
  if (bi == FlatMap::kEmpty) return reject(EventType::kRejected, c, RejectReason::kUnknownSymbol);
  const bool market = c.type == kMarket;
  // Fast path for the usual well-formed order (valid side, type, tif and stp, not
  // post-only), tested on the command's first 8 bytes at once: after subtracting 1 from
  // side, type and tif, every field must fit its mask (side, type <= 1; tif, stp <= 3;
  // post_only == 0). A zero field borrows and turns itself into 0xFF, which fails its own
  // mask, so a borrow can never make a bad command pass. Anything else takes the ordered
  // checks below, which pick the documented reject reason.
  std::uint64_t head;
  std::memcpy(&head, &c, sizeof head);
  const bool plain = ((head - 0x0000000001010100ULL) & 0x0000FFFCFCFEFE00ULL) == 0;
  if (!plain) [[unlikely]] {
    if (c.side != kBuy && c.side != kSell) {
      return reject(EventType::kRejected, c, RejectReason::kInvalidSide);
    }
    if (c.type != kLimit && c.type != kMarket) {
      return reject(EventType::kRejected, c, RejectReason::kInvalidType);
    }
    if (c.tif < kGtc || c.tif > kFok) {
      return reject(EventType::kRejected, c, RejectReason::kInvalidTimeInForce);
    }
    if (c.stp > kStpNone) return reject(EventType::kRejected, c, RejectReason::kInvalidStpMode);
    if (c.post_only > 1 || (c.post_only == 1 && (market || c.tif == kIoc || c.tif == kFok))) {
      return reject(EventType::kRejected, c, RejectReason::kInvalidPostOnly);
    }
  }
  const Book& b = books_[bi];
  // min_qty >= 1, so one range test also catches qty <= 0; the reason is sorted out after.
  if (c.qty < b.spec.min_qty || c.qty > b.spec.max_qty) [[unlikely]] {
    if (c.qty <= 0) return reject(EventType::kRejected, c, RejectReason::kInvalidQuantity);
    return reject(EventType::kRejected, c, RejectReason::kQuantityOutOfRange);
  }
  if (!market) {
    if (c.price <= 0) return reject(EventType::kRejected, c, RejectReason::kPriceNotPositive);
    if (out_of_band(b, c.price)) {
      return reject(EventType::kRejected, c, RejectReason::kPriceOutOfBand);
    }
  }
  if (b.spec.status == kHalted) return reject(EventType::kRejected, c, RejectReason::kSymbolHalted);
  const std::uint32_t ai = account_map_.find(c.account_id);
  const Account* acct = ai == FlatMap::kEmpty ? nullptr : &accounts_[ai];
  if (acct != nullptr && acct->kill) {
    return reject(EventType::kRejected, c, RejectReason::kKillSwitch);
  }
  if (order_map_.find(c.order_id) != FlatMap::kEmpty) {
    return reject(EventType::kRejected, c, RejectReason::kDuplicateOrderId);
  }
  if (live_ >= max_orders_) return reject(EventType::kRejected, c, RejectReason::kBookFull);
  const bool may_rest = !market && c.tif <= kDay;  // tif is valid (>= GTC) here
  if (may_rest) {
    const std::int64_t limit =
        acct != nullptr && acct->explicit_max ? acct->max_open : default_max_open_;
    if (limit > 0 && acct != nullptr && static_cast<std::int64_t>(acct->orders.size()) >= limit) {
      return reject(EventType::kRejected, c, RejectReason::kMaxOpenOrders);
    }
  }
  if (c.post_only == 1) {
    const bool takes = c.side == kBuy ? !b.asks.prices.empty() && b.asks.prices.back() <= c.price
                                      : !b.bids.prices.empty() && b.bids.prices.back() >= c.price;
    if (takes) return reject(EventType::kRejected, c, RejectReason::kPostOnlyWouldTake);
  }
  if (market && (c.side == kBuy ? b.asks.levels.empty() : b.bids.levels.empty())) {
    return reject(EventType::kRejected, c, RejectReason::kMarketNoLiquidity);
  }
  // live_ < max_orders_ <= pool capacity, so a slot is always available here.
  const std::uint32_t ti = pool_.alloc();
  Order& t = pool_[ti];
  // Written as one aggregate so the compiler merges the narrow fields into wide stores;
  // the links, account and level are set when (if) the order rests.
  t = Order{c.order_id, c.account_id, market ? 0 : c.price, c.qty, 0, kNil, kNil, kNil, kNil, kNil,
            c.side,     c.tif,        c.post_only,          c.stp};
  pool_.ts(ti) = c.ts;
  if (c.tif == kFok && fillable(b, t, market) < c.qty) {
    pool_.free(ti);
    return reject(EventType::kRejected, c, RejectReason::kFokCannotFill);
  }
  order_event(EventType::kAccepted, c.symbol_id, t, 0, c.qty, c.qty);
  // A passive add (the most common command) does not reach the opposite best: one compare
  // here spares it the call into the matching loop.
  const BookSide& opp = c.side == kBuy ? b.asks : b.bids;
  const bool crosses =
      !opp.prices.empty() &&
      (market || (c.side == kBuy ? c.price >= opp.prices.back() : c.price <= opp.prices.back()));
  const bool canceled = crosses && match(bi, ti, market);
  finish_taker(bi, ti, canceled, may_rest, ai);
}

void Engine::on_cancel(const Command& c) {
  const std::size_t slot = order_map_.find_slot(c.order_id);
  if (slot == FlatMap::kNoSlot) [[unlikely]] {
    return reject(EventType::kCancelRejected, c, RejectReason::kUnknownOrder);
  }
  const std::uint32_t oi = order_map_.value_at(slot);
  const Order& o = pool_[oi];
  if (o.account_id != c.account_id) [[unlikely]] {
    return reject(EventType::kCancelRejected, c, RejectReason::kUnknownOrder);
  }
  touch(o.level);
  order_event(EventType::kCanceled, symbol_of(o), o, code(CancelReason::kUser), o.leaves, 0);
  order_map_.erase_at(slot);
  detach(oi);
  pool_.free(oi);
}

void Engine::on_amend(const Command& c) {
  const std::uint32_t oi = order_map_.find(c.order_id);
  if (oi == FlatMap::kEmpty || pool_[oi].account_id != c.account_id) {
    return reject(EventType::kAmendRejected, c, RejectReason::kUnknownOrder);
  }
  Order& o = pool_[oi];
  const std::uint32_t bi = levels_[o.level].book;
  const Book& b = books_[bi];
  if (c.qty <= 0) return reject(EventType::kAmendRejected, c, RejectReason::kInvalidQuantity);
  if (c.qty > b.spec.max_qty) {
    return reject(EventType::kAmendRejected, c, RejectReason::kQuantityOutOfRange);
  }
  if (c.price <= 0) return reject(EventType::kAmendRejected, c, RejectReason::kPriceNotPositive);
  if (b.spec.status == kHalted) {
    return reject(EventType::kAmendRejected, c, RejectReason::kSymbolHalted);
  }
  if (accounts_[o.account].kill) {
    return reject(EventType::kAmendRejected, c, RejectReason::kKillSwitch);
  }
  if (c.price != o.price) {
    if (out_of_band(b, c.price)) {
      return reject(EventType::kAmendRejected, c, RejectReason::kPriceOutOfBand);
    }
    if (o.post_only == 1) {
      const bool takes = o.side == kBuy ? !b.asks.prices.empty() && b.asks.prices.back() <= c.price
                                        : !b.bids.prices.empty() && b.bids.prices.back() >= c.price;
      if (takes) return reject(EventType::kAmendRejected, c, RejectReason::kPostOnlyWouldTake);
    }
  }
  const std::uint32_t symbol_id = b.spec.symbol_id;
  touch(o.level);
  if (c.price == o.price && c.qty <= o.leaves) {
    // Reducing in place keeps time priority: only the level aggregate changes.
    levels_[o.level].total -= o.leaves - c.qty;
    o.leaves = c.qty;
    order_event(EventType::kAmended, symbol_id, o, 0, c.qty, c.qty);
    return;
  }
  unlink(oi);
  o.price = c.price;
  o.leaves = c.qty;
  order_event(EventType::kAmended, symbol_id, o, 0, c.qty, c.qty);
  const bool canceled = match(bi, oi, false);
  // Only GTC/DAY limit orders rest, so an amended order may always rest again.
  finish_taker(bi, oi, canceled, true, o.account);
}

void Engine::cancel_orders(std::vector<std::uint32_t>& orders, EventType type,
                           CancelReason reason) {
  std::sort(orders.begin(), orders.end(), [this](std::uint32_t a, std::uint32_t b) {
    return pool_[a].order_id < pool_[b].order_id;
  });
  for (const std::uint32_t oi : orders) {
    const Order& o = pool_[oi];
    touch(o.level);
    order_event(type, symbol_of(o), o, type == EventType::kExpired ? 0 : code(reason), o.leaves, 0);
    drop(oi);
  }
  orders.clear();
}

void Engine::on_cancel_all(const Command& c) {
  const std::uint32_t ai = account_map_.find(c.account_id);
  if (ai == FlatMap::kEmpty) return;
  scratch_.clear();
  for (const std::uint32_t oi : accounts_[ai].orders) {
    if (c.symbol_id == 0 || symbol_of(pool_[oi]) == c.symbol_id) scratch_.push_back(oi);
  }
  cancel_orders(scratch_, EventType::kCanceled, CancelReason::kUser);
}

void Engine::on_kill_switch(const Command& c) {
  if (c.qty != 0 && c.qty != 1) return;
  if (c.qty == 0) {
    const std::uint32_t ai = account_map_.find(c.account_id);
    if (ai != FlatMap::kEmpty) accounts_[ai].kill = false;
    return;
  }
  const std::uint32_t ai = account_for(c.account_id);
  accounts_[ai].kill = true;
  scratch_ = accounts_[ai].orders;
  cancel_orders(scratch_, EventType::kCanceled, CancelReason::kKillSwitch);
}

void Engine::on_max_open(const Command& c) {
  if (c.qty < 0) return;
  Account& a = accounts_[account_for(c.account_id)];
  a.explicit_max = true;
  a.max_open = c.qty;
}

void Engine::on_instrument_status(const Command& c) {
  const std::uint32_t bi = book_map_.find(c.symbol_id);
  if (bi == FlatMap::kEmpty || (c.qty != kTrading && c.qty != kHalted)) return;
  books_[bi].spec.status = static_cast<std::uint8_t>(c.qty);
}

void Engine::on_expire_day(const Command& c) {
  scratch_.clear();
  auto collect = [this](const Book& b) {
    for (const BookSide* s : {&b.bids, &b.asks}) {
      for (const std::uint32_t li : s->levels) {
        for (std::uint32_t oi = levels_[li].head; oi != kNil; oi = pool_[oi].next) {
          if (pool_[oi].tif == kDay) scratch_.push_back(oi);
        }
      }
    }
  };
  if (c.symbol_id == 0) {
    for (const Book& b : books_) collect(b);
  } else {
    const std::uint32_t bi = book_map_.find(c.symbol_id);
    if (bi == FlatMap::kEmpty) return;
    collect(books_[bi]);
  }
  cancel_orders(scratch_, EventType::kExpired, CancelReason::kUser);
}

}  // namespace hft
