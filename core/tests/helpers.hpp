// Small builders shared by the core tests: one command in, that command's events out.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "hft/engine.hpp"

namespace hft::test {

constexpr std::uint8_t kBuy = 1;
constexpr std::uint8_t kSell = 2;
constexpr std::uint8_t kLimit = 1;
constexpr std::uint8_t kMarket = 2;
constexpr std::uint8_t kGtc = 1;
constexpr std::uint8_t kDay = 2;
constexpr std::uint8_t kIoc = 3;
constexpr std::uint8_t kFok = 4;

constexpr std::uint8_t ev(EventType t) { return static_cast<std::uint8_t>(t); }
constexpr std::uint16_t rr(RejectReason r) { return static_cast<std::uint16_t>(r); }
constexpr std::uint16_t cr(CancelReason r) { return static_cast<std::uint16_t>(r); }

struct Order {
  std::uint64_t id;
  std::uint64_t account = 1;
  std::uint8_t side = kBuy;
  std::int64_t price = 100;
  std::int64_t qty = 10;
  std::uint8_t tif = kGtc;
  std::uint8_t type = kLimit;
  std::uint8_t post_only = 0;
  std::uint8_t stp = 0;
  std::uint32_t symbol = 1;
  std::int64_t ts = 0;
};

class EngineTest : public ::testing::Test {
 protected:
  explicit EngineTest(std::uint64_t max_orders = 4096) : engine_(max_orders, 0) {
    InstrumentSpec s;
    s.symbol_id = 1;
    s.symbol = "AAA";
    s.min_qty = 1;
    s.max_qty = 1'000'000;
    engine_.add_instrument(s);
    s.symbol_id = 2;
    s.symbol = "BBB";
    engine_.add_instrument(s);
  }

  std::vector<Event> run(const Command& c) {
    engine_.clear_events();
    engine_.execute(c, 0);
    return engine_.events();
  }

  std::vector<Event> submit(const Order& o) {
    Command c{};
    c.kind = static_cast<std::uint8_t>(CommandKind::kSubmit);
    c.order_id = o.id;
    c.account_id = o.account;
    c.symbol_id = o.symbol;
    c.side = o.side;
    c.type = o.type;
    c.tif = o.tif;
    c.price = o.price;
    c.qty = o.qty;
    c.post_only = o.post_only;
    c.stp = o.stp;
    c.ts = o.ts;
    return run(c);
  }

  std::vector<Event> cancel(std::uint64_t id, std::uint64_t account = 1) {
    Command c{};
    c.kind = static_cast<std::uint8_t>(CommandKind::kCancel);
    c.order_id = id;
    c.account_id = account;
    return run(c);
  }

  std::vector<Event> amend(std::uint64_t id, std::int64_t price, std::int64_t qty,
                           std::uint64_t account = 1) {
    Command c{};
    c.kind = static_cast<std::uint8_t>(CommandKind::kAmend);
    c.order_id = id;
    c.account_id = account;
    c.price = price;
    c.qty = qty;
    return run(c);
  }

  std::vector<Event> simple(CommandKind kind, std::uint64_t account, std::uint32_t symbol,
                            std::int64_t qty) {
    Command c{};
    c.kind = static_cast<std::uint8_t>(kind);
    c.account_id = account;
    c.symbol_id = symbol;
    c.qty = qty;
    return run(c);
  }

  std::vector<LevelInfo> bids(std::uint32_t symbol = 1) {
    std::vector<LevelInfo> b;
    std::vector<LevelInfo> a;
    engine_.depth(symbol, 1000, b, a);
    return b;
  }
  std::vector<LevelInfo> asks(std::uint32_t symbol = 1) {
    std::vector<LevelInfo> b;
    std::vector<LevelInfo> a;
    engine_.depth(symbol, 1000, b, a);
    return a;
  }

  static std::vector<Event> of_type(const std::vector<Event>& evs, EventType t) {
    std::vector<Event> out;
    for (const Event& e : evs) {
      if (e.type == ev(t)) out.push_back(e);
    }
    return out;
  }

  Engine engine_;
};

/// The only event is a REJECTED with this reason.
inline void expect_reject(const std::vector<Event>& evs, RejectReason reason,
                          EventType type = EventType::kRejected) {
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].type, ev(type));
  EXPECT_EQ(evs[0].reason, rr(reason));
}

}  // namespace hft::test
