// Snapshot image of the whole engine state and its validating loader.
//
// Layout (little endian), version 1:
//   "HFTSNAP\0", u32 version, u32 reserved(0), u64 max_orders, i64 default_max_open_orders,
//   u64 next_trade_id, u32 n_instruments, then per instrument (ascending symbol id):
//     u32 symbol_id, u32 name_len, name bytes, i64 min_qty, i64 max_qty, i64 band_bps,
//     i64 reference_price, u8 status, u64 book_seq, then bids and asks, each:
//       u32 n_levels, per level best first: i64 price, u32 n_orders, per order oldest first:
//         u64 order_id, u64 account_id, i64 leaves, i64 filled, i64 ts, u8 tif,
//         u8 post_only, u8 stp
//   u32 n_accounts, per account (ascending id): u64 id, u8 kill, u8 explicit_max, i64 max_open
//   u64 checksum: the state-hash word mix over every preceding byte, 8 bytes at a time.
#include <algorithm>
#include <bit>
#include <cstring>
#include <stdexcept>
#include <string>

#include "hft/engine.hpp"

namespace hft {

namespace {

static_assert(std::endian::native == std::endian::little,
              "snapshot encoding assumes little endian");

constexpr char kMagic[8] = {'H', 'F', 'T', 'S', 'N', 'A', 'P', '\0'};
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kOrderBytes = 8 * 5 + 3;
constexpr std::size_t kLevelBytes = 8 + 4;

std::uint64_t checksum(const std::uint8_t* p, std::size_t n) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  auto mix = [&h](std::uint64_t w) {
    h ^= w;
    h *= 0x100000001b3ULL;
    h ^= h >> 29;
  };
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    mix(w);
  }
  std::uint64_t tail = 0;
  std::memcpy(&tail, p + i, n - i);
  mix(tail ^ (static_cast<std::uint64_t>(n) << 56));
  return h;
}

class Writer {
 public:
  template <class T>
  void put(T v) {
    const auto at = buf_.size();
    buf_.resize(at + sizeof(T));
    std::memcpy(buf_.data() + at, &v, sizeof(T));
  }
  void bytes(const std::string& s) { buf_.insert(buf_.end(), s.begin(), s.end()); }
  std::vector<std::uint8_t>& buf() { return buf_; }

 private:
  std::vector<std::uint8_t> buf_;
};

class Reader {
 public:
  Reader(const std::uint8_t* p, std::size_t n) : p_(p), n_(n) {}
  template <class T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + at_, sizeof(T));
    at_ += sizeof(T);
    return v;
  }
  std::string str(std::size_t len, const char* what) {
    need(len, what);
    std::string s(reinterpret_cast<const char*>(p_ + at_), len);
    at_ += len;
    return s;
  }
  /// Rejects counts that cannot fit in the remaining bytes before anything is allocated.
  void need_items(std::uint64_t count, std::size_t item_bytes, const char* what) const {
    if (count > (n_ - at_) / item_bytes) fail(std::string("truncated snapshot: ") + what);
  }
  [[nodiscard]] std::size_t remaining() const { return n_ - at_; }
  [[noreturn]] static void fail(const std::string& msg) { throw std::invalid_argument(msg); }

 private:
  void need(std::size_t k, const char* what) const {
    if (n_ - at_ < k) fail(std::string("truncated snapshot: ") + what);
  }
  const std::uint8_t* p_;
  std::size_t n_;
  std::size_t at_ = 0;
};

}  // namespace

std::vector<std::uint8_t> Engine::snapshot() const {
  Writer w;
  for (const char c : kMagic) w.put(c);
  w.put(kVersion);
  w.put(std::uint32_t{0});
  w.put(max_orders_);
  w.put(default_max_open_);
  w.put(next_trade_id_);
  w.put(static_cast<std::uint32_t>(books_by_symbol_.size()));
  for (const std::uint32_t bi : books_by_symbol_) {
    const Book& b = books_[bi];
    w.put(b.spec.symbol_id);
    w.put(static_cast<std::uint32_t>(b.spec.symbol.size()));
    w.bytes(b.spec.symbol);
    w.put(b.spec.min_qty);
    w.put(b.spec.max_qty);
    w.put(b.spec.band_bps);
    w.put(b.spec.reference_price);
    w.put(b.spec.status);
    w.put(b.book_seq);
    for (const BookSide* s : {&b.bids, &b.asks}) {
      w.put(static_cast<std::uint32_t>(s->levels.size()));
      for (std::size_t i = s->levels.size(); i-- > 0;) {
        const Level& lv = levels_[s->levels[i]];
        w.put(lv.price);
        w.put(lv.count);
        for (std::uint32_t oi = lv.head; oi != kNil; oi = pool_[oi].next) {
          const Order& o = pool_[oi];
          w.put(o.order_id);
          w.put(o.account_id);
          w.put(o.leaves);
          w.put(o.filled);
          w.put(pool_.ts(oi));
          w.put(o.tif);
          w.put(o.post_only);
          w.put(o.stp);
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
  w.put(static_cast<std::uint32_t>(flagged.size()));
  for (const Account* a : flagged) {
    w.put(a->id);
    w.put(static_cast<std::uint8_t>(a->kill));
    w.put(static_cast<std::uint8_t>(a->explicit_max));
    w.put(a->max_open);
  }
  std::vector<std::uint8_t>& buf = w.buf();
  w.put(checksum(buf.data(), buf.size()));
  return std::move(buf);
}

void Engine::restore(const std::uint8_t* data, std::size_t size) {
  if (!books_.empty() || live_ != 0) {
    throw std::invalid_argument("restore needs an empty core (no instruments, no orders)");
  }
  if (size < sizeof(kMagic) + 8 + 8) Reader::fail("snapshot too short");
  if (std::memcmp(data, kMagic, sizeof(kMagic)) != 0) Reader::fail("not an hft core snapshot");
  std::uint64_t stored;
  std::memcpy(&stored, data + size - 8, 8);
  if (checksum(data, size - 8) != stored) Reader::fail("snapshot checksum mismatch");

  Reader r(data + sizeof(kMagic), size - sizeof(kMagic) - 8);
  const auto version = r.get<std::uint32_t>("version");
  if (version != kVersion) {
    Reader::fail("unsupported snapshot version " + std::to_string(version));
  }
  if (r.get<std::uint32_t>("reserved") != 0) Reader::fail("bad snapshot header");
  const auto max_orders = r.get<std::uint64_t>("max_orders");
  const auto default_max_open = r.get<std::int64_t>("default_max_open_orders");
  if (max_orders < 1 || max_orders > kMaxOrdersLimit) Reader::fail("bad max_orders");
  if (default_max_open < 0) Reader::fail("bad default_max_open_orders");
  Engine e(max_orders, default_max_open);
  e.next_trade_id_ = r.get<std::uint64_t>("next_trade_id");
  if (e.next_trade_id_ < 1) Reader::fail("bad next_trade_id");

  const auto n_instruments = r.get<std::uint32_t>("instrument count");
  r.need_items(n_instruments, 4 + 4 + 8 * 4 + 1 + 8 + 8, "instruments");
  std::uint32_t prev_symbol = 0;
  for (std::uint32_t k = 0; k < n_instruments; ++k) {
    InstrumentSpec s;
    s.symbol_id = r.get<std::uint32_t>("symbol_id");
    if (s.symbol_id <= prev_symbol) Reader::fail("instruments not in ascending symbol id");
    prev_symbol = s.symbol_id;
    const auto name_len = r.get<std::uint32_t>("symbol length");
    s.symbol = r.str(name_len, "symbol");
    s.min_qty = r.get<std::int64_t>("min_qty");
    s.max_qty = r.get<std::int64_t>("max_qty");
    s.band_bps = r.get<std::int64_t>("band_bps");
    s.reference_price = r.get<std::int64_t>("reference_price");
    s.status = r.get<std::uint8_t>("status");
    try {
      e.add_instrument(s);
    } catch (const std::invalid_argument& ex) {
      Reader::fail(std::string("bad instrument: ") + ex.what());
    }
    const auto bi = static_cast<std::uint32_t>(e.books_.size() - 1);
    e.books_[bi].book_seq = r.get<std::uint64_t>("book_seq");
    for (const std::uint8_t side : {std::uint8_t{1}, std::uint8_t{2}}) {
      const auto n_levels = r.get<std::uint32_t>("level count");
      r.need_items(n_levels, kLevelBytes + kOrderBytes, "levels");
      std::int64_t prev_price = 0;
      for (std::uint32_t l = 0; l < n_levels; ++l) {
        const auto price = r.get<std::int64_t>("level price");
        if (price <= 0) Reader::fail("level price not positive");
        if (l > 0 && (side == 1 ? price >= prev_price : price <= prev_price)) {
          Reader::fail("levels not strictly ordered best first");
        }
        prev_price = price;
        const auto n_orders = r.get<std::uint32_t>("order count");
        if (n_orders == 0) Reader::fail("empty level");
        r.need_items(n_orders, kOrderBytes, "orders");
        std::int64_t total = 0;
        for (std::uint32_t q = 0; q < n_orders; ++q) {
          const auto order_id = r.get<std::uint64_t>("order_id");
          const auto account_id = r.get<std::uint64_t>("account_id");
          const auto leaves = r.get<std::int64_t>("leaves");
          const auto filled = r.get<std::int64_t>("filled");
          const auto ts = r.get<std::int64_t>("ts");
          const auto tif = r.get<std::uint8_t>("tif");
          const auto post_only = r.get<std::uint8_t>("post_only");
          const auto stp = r.get<std::uint8_t>("stp");
          if (leaves <= 0 || filled < 0 || leaves > INT64_MAX - filled) {
            Reader::fail("bad order quantities");
          }
          if (leaves > INT64_MAX - total) Reader::fail("level total overflows");
          total += leaves;
          if (tif != static_cast<std::uint8_t>(TimeInForce::kGtc) &&
              tif != static_cast<std::uint8_t>(TimeInForce::kDay)) {
            Reader::fail("resting order with a tif that cannot rest");
          }
          if (post_only > 1) Reader::fail("bad post_only");
          if (stp > static_cast<std::uint8_t>(StpMode::kNone)) Reader::fail("bad stp");
          if (e.order_map_.find(order_id) != FlatMap::kEmpty) Reader::fail("duplicate order id");
          if (e.live_ >= e.max_orders_) Reader::fail("more live orders than max_orders");
          const std::uint32_t oi = e.pool_.alloc();
          Order& o = e.pool_[oi];
          o = Order{order_id, account_id, price, leaves, filled, kNil,      kNil,
                    kNil,     kNil,       kNil,  side,   tif,    post_only, stp};
          e.pool_.ts(oi) = ts;
          e.rest(bi, oi, FlatMap::kEmpty);
        }
      }
    }
    e.touched_.clear();
    const Book& b = e.books_[bi];
    if (!b.bids.prices.empty() && !b.asks.prices.empty() &&
        b.bids.prices.back() >= b.asks.prices.back()) {
      Reader::fail("crossed book");
    }
  }

  const auto n_accounts = r.get<std::uint32_t>("account count");
  r.need_items(n_accounts, 8 + 1 + 1 + 8, "accounts");
  std::uint64_t prev_account = 0;
  for (std::uint32_t k = 0; k < n_accounts; ++k) {
    const auto id = r.get<std::uint64_t>("account id");
    const auto kill = r.get<std::uint8_t>("kill switch");
    const auto explicit_max = r.get<std::uint8_t>("explicit max");
    const auto max_open = r.get<std::int64_t>("max open orders");
    if (k > 0 && id <= prev_account) Reader::fail("accounts not in ascending id");
    prev_account = id;
    if (kill > 1 || explicit_max > 1 || max_open < 0 || (explicit_max == 0 && max_open != 0) ||
        (kill == 0 && explicit_max == 0)) {
      Reader::fail("bad account flags");
    }
    Account& a = e.accounts_[e.account_for(id)];
    a.kill = kill == 1;
    a.explicit_max = explicit_max == 1;
    a.max_open = max_open;
  }
  if (r.remaining() != 0) Reader::fail("trailing bytes in snapshot");
  *this = std::move(e);
}

}  // namespace hft
