// Amend rules, cancel-all, kill switch, expiry and halts.
#include "helpers.hpp"

namespace hft::test {
namespace {

class AmendTest : public EngineTest {};

TEST_F(AmendTest, QuantityDownKeepsPriority) {
  submit({.id = 1, .account = 2, .side = kSell, .price = 100, .qty = 10});
  submit({.id = 2, .account = 3, .side = kSell, .price = 100, .qty = 10});
  const auto evs = amend(1, 100, 4, 2);
  ASSERT_EQ(evs.size(), 2u);
  EXPECT_EQ(evs[0].type, ev(EventType::kAmended));
  EXPECT_EQ(evs[0].qty, 4);
  EXPECT_EQ(evs[0].leaves_qty, 4);
  EXPECT_EQ(evs[0].price, 100);
  EXPECT_EQ(evs[1].type, ev(EventType::kBookChange));
  EXPECT_EQ(evs[1].qty, 14);
  EXPECT_EQ(evs[1].order_count, 2u);
  const auto t = of_type(submit({.id = 5, .price = 100, .qty = 5}), EventType::kTrade);
  EXPECT_EQ(t[0].maker_order_id, 1u);
  EXPECT_EQ(t[0].qty, 4);
}

TEST_F(AmendTest, SameQuantityStillEmitsAmendedAndBookChange) {
  submit({.id = 1, .price = 100, .qty = 10});
  const auto evs = amend(1, 100, 10);
  ASSERT_EQ(evs.size(), 2u);
  EXPECT_EQ(evs[0].type, ev(EventType::kAmended));
  EXPECT_EQ(evs[1].type, ev(EventType::kBookChange));
  EXPECT_EQ(evs[1].qty, 10);
}

TEST_F(AmendTest, QuantityUpLosesPriority) {
  submit({.id = 1, .account = 2, .side = kSell, .price = 100, .qty = 10});
  submit({.id = 2, .account = 3, .side = kSell, .price = 100, .qty = 10});
  const auto evs = amend(1, 100, 11, 2);
  ASSERT_EQ(evs.size(), 2u);  // one BOOK_CHANGE for the level it left and re-joined
  EXPECT_EQ(evs[1].qty, 21);
  EXPECT_EQ(evs[1].order_count, 2u);
  const auto t = of_type(submit({.id = 5, .price = 100, .qty = 5}), EventType::kTrade);
  EXPECT_EQ(t[0].maker_order_id, 2u);
}

TEST_F(AmendTest, LoneOrderLevelRecreatedInOneCommandGetsOneBookChange) {
  submit({.id = 1, .price = 100, .qty = 10});
  auto evs = amend(1, 100, 15);
  ASSERT_EQ(evs.size(), 2u);
  EXPECT_EQ(evs[1].type, ev(EventType::kBookChange));
  EXPECT_EQ(evs[1].price, 100);
  EXPECT_EQ(evs[1].qty, 15);
  EXPECT_EQ(evs[1].order_count, 1u);
  // The freed level object is recycled for the new price within the same command: the old
  // price must still be reported gone.
  evs = amend(1, 101, 15);
  ASSERT_EQ(evs.size(), 3u);
  EXPECT_EQ(evs[1].price, 100);
  EXPECT_EQ(evs[1].qty, 0);
  EXPECT_EQ(evs[1].order_count, 0u);
  EXPECT_EQ(evs[2].price, 101);
  EXPECT_EQ(evs[2].qty, 15);
  EXPECT_EQ(evs[2].order_count, 1u);
  EXPECT_EQ(evs[2].book_seq, evs[1].book_seq + 1);
}

TEST_F(AmendTest, PriceChangeMayTradeAndKeepsFilled) {
  submit({.id = 1, .account = 2, .side = kSell, .price = 105, .qty = 3});
  submit({.id = 2, .price = 100, .qty = 10});
  submit({.id = 3, .account = 2, .side = kSell, .price = 101, .qty = 2});
  const auto evs = amend(2, 105, 8);
  ASSERT_EQ(evs.size(), 7u);
  EXPECT_EQ(evs[0].type, ev(EventType::kAmended));
  EXPECT_EQ(evs[0].price, 105);
  EXPECT_EQ(evs[1].type, ev(EventType::kTrade));
  EXPECT_EQ(evs[1].price, 101);
  EXPECT_EQ(evs[2].type, ev(EventType::kTrade));
  EXPECT_EQ(evs[2].price, 105);
  EXPECT_EQ(evs[2].leaves_qty, 3);
  // Book changes: old bid level, the two ask levels, the new bid level.
  EXPECT_EQ(evs[3].price, 100);
  EXPECT_EQ(evs[3].qty, 0);
  EXPECT_EQ(evs[4].price, 101);
  EXPECT_EQ(evs[5].price, 105);
  EXPECT_EQ(evs[5].side, kSell);
  EXPECT_EQ(evs[5].qty, 0);
  EXPECT_EQ(evs[6].price, 105);
  EXPECT_EQ(evs[6].side, kBuy);
  EXPECT_EQ(evs[6].qty, 3);
  const auto o = engine_.order(2);
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->price, 105);
  EXPECT_EQ(o->leaves_qty, 3);
  EXPECT_EQ(o->filled_qty, 5);
  EXPECT_EQ(o->qty, 8);
  ASSERT_EQ(bids().size(), 1u);
  EXPECT_EQ(bids()[0].price, 105);
}

TEST_F(AmendTest, FullyFilledByAmendLeavesTheBook) {
  submit({.id = 1, .account = 2, .side = kSell, .price = 101, .qty = 5});
  submit({.id = 2, .price = 100, .qty = 5});
  amend(2, 101, 5);
  EXPECT_FALSE(engine_.order(2).has_value());
  EXPECT_EQ(engine_.live_orders(), 0u);
  EXPECT_EQ(submit({.id = 2, .price = 100})[0].type, ev(EventType::kAccepted));
}

TEST_F(AmendTest, Checks) {
  InstrumentSpec s;
  s.symbol_id = 3;
  s.symbol = "BAND";
  s.min_qty = 2;
  s.max_qty = 20;
  s.band_bps = 1000;
  s.reference_price = 100;
  engine_.add_instrument(s);
  submit({.id = 1, .price = 100, .qty = 10, .post_only = 1, .symbol = 3});
  submit({.id = 2, .account = 2, .side = kSell, .price = 105, .qty = 10, .symbol = 3});
  auto rej = [&](std::int64_t price, std::int64_t qty, RejectReason r) {
    const auto evs = amend(1, price, qty);
    expect_reject(evs, r, EventType::kAmendRejected);
    EXPECT_EQ(evs[0].price, price);
    EXPECT_EQ(evs[0].qty, qty);
  };
  rej(100, 0, RejectReason::kInvalidQuantity);
  rej(100, 21, RejectReason::kQuantityOutOfRange);
  rej(0, 5, RejectReason::kPriceNotPositive);
  rej(111, 5, RejectReason::kPriceOutOfBand);
  rej(105, 5, RejectReason::kPostOnlyWouldTake);
  // Below min_qty is allowed for amends.
  EXPECT_EQ(amend(1, 100, 1)[0].type, ev(EventType::kAmended));
  simple(CommandKind::kSetInstrumentStatus, 0, 3, 2);
  rej(100, 1, RejectReason::kSymbolHalted);
  // Cancels work while halted.
  EXPECT_EQ(cancel(2, 2)[0].type, ev(EventType::kCanceled));
  simple(CommandKind::kSetInstrumentStatus, 0, 3, 1);
  simple(CommandKind::kSetKillSwitch, 1, 0, 1);
  EXPECT_FALSE(engine_.order(1).has_value());
}

class AccountTest : public EngineTest {};

TEST_F(AccountTest, CancelAllInAscendingOrderIdPerSymbol) {
  submit({.id = 5, .price = 90});
  submit({.id = 2, .price = 91, .symbol = 2});
  submit({.id = 9, .side = kSell, .price = 120});
  submit({.id = 1, .price = 92});
  submit({.id = 7, .account = 2, .price = 93});
  auto evs = simple(CommandKind::kCancelAll, 1, 1, 0);
  const auto c = of_type(evs, EventType::kCanceled);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].order_id, 1u);
  EXPECT_EQ(c[1].order_id, 5u);
  EXPECT_EQ(c[2].order_id, 9u);
  EXPECT_EQ(c[0].reason, cr(CancelReason::kUser));
  EXPECT_EQ(of_type(evs, EventType::kBookChange).size(), 3u);
  EXPECT_EQ(engine_.live_orders(), 2u);
  evs = simple(CommandKind::kCancelAll, 1, 0, 0);
  ASSERT_EQ(evs.size(), 2u);
  EXPECT_EQ(evs[0].order_id, 2u);
  EXPECT_TRUE(simple(CommandKind::kCancelAll, 1, 0, 0).empty());
  EXPECT_TRUE(simple(CommandKind::kCancelAll, 99, 0, 0).empty());
}

TEST_F(AccountTest, KillSwitchCancelsAndBlocks) {
  submit({.id = 3, .price = 90});
  submit({.id = 1, .price = 91, .symbol = 2});
  const auto evs = simple(CommandKind::kSetKillSwitch, 1, 0, 1);
  const auto c = of_type(evs, EventType::kCanceled);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].order_id, 1u);
  EXPECT_EQ(c[0].symbol_id, 2u);
  EXPECT_EQ(c[0].reason, cr(CancelReason::kKillSwitch));
  EXPECT_EQ(c[1].order_id, 3u);
  expect_reject(submit({.id = 4}), RejectReason::kKillSwitch);
  EXPECT_TRUE(simple(CommandKind::kSetKillSwitch, 1, 0, 5).empty());  // ignored
  expect_reject(submit({.id = 4}), RejectReason::kKillSwitch);
  simple(CommandKind::kSetKillSwitch, 1, 0, 0);
  EXPECT_EQ(submit({.id = 4})[0].type, ev(EventType::kAccepted));
}

TEST_F(AccountTest, ExpireDayOnlyDayOrdersAscendingId) {
  submit({.id = 4, .price = 90, .tif = kDay});
  submit({.id = 2, .side = kSell, .price = 110, .tif = kDay, .symbol = 2});
  submit({.id = 3, .price = 91, .tif = kGtc});
  submit({.id = 1, .account = 3, .side = kSell, .price = 111, .tif = kDay});
  auto evs = simple(CommandKind::kExpireDay, 0, 1, 0);
  auto x = of_type(evs, EventType::kExpired);
  ASSERT_EQ(x.size(), 2u);
  EXPECT_EQ(x[0].order_id, 1u);
  EXPECT_EQ(x[0].qty, 10);
  EXPECT_EQ(x[0].reason, 0u);
  EXPECT_EQ(x[1].order_id, 4u);
  EXPECT_TRUE(simple(CommandKind::kExpireDay, 0, 55, 0).empty());
  evs = simple(CommandKind::kExpireDay, 0, 0, 0);
  x = of_type(evs, EventType::kExpired);
  ASSERT_EQ(x.size(), 1u);
  EXPECT_EQ(x[0].order_id, 2u);
  EXPECT_EQ(engine_.live_orders(), 1u);
}

TEST_F(AccountTest, OpenOrdersAscendingAndOrderState) {
  submit({.id = 8, .price = 90, .ts = 5});
  submit({.id = 3,
          .side = kSell,
          .price = 110,
          .tif = kDay,
          .post_only = 1,
          .stp = 2,
          .symbol = 2,
          .ts = 6});
  const auto open = engine_.open_orders(1);
  ASSERT_EQ(open.size(), 2u);
  EXPECT_EQ(open[0].order_id, 3u);
  EXPECT_EQ(open[0].symbol_id, 2u);
  EXPECT_EQ(open[0].side, kSell);
  EXPECT_EQ(open[0].tif, kDay);
  EXPECT_EQ(open[0].post_only, 1);
  EXPECT_EQ(open[0].stp, 2);
  EXPECT_EQ(open[0].ts, 6);
  EXPECT_EQ(open[1].order_id, 8u);
  EXPECT_TRUE(engine_.open_orders(42).empty());
}

}  // namespace
}  // namespace hft::test
