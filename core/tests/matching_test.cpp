// Matching: price-time priority, the classic traps, TIFs, self-trade prevention, event order.
#include <limits>

#include "helpers.hpp"

namespace hft::test {
namespace {

class MatchingTest : public EngineTest {};

TEST_F(MatchingTest, CancelHeadMiddleTailThenSweep) {
  for (std::uint64_t id = 1; id <= 6; ++id) {
    submit({.id = id, .account = 2, .side = kSell, .price = 100, .qty = static_cast<int>(id)});
  }
  cancel(1, 2);  // head
  cancel(3, 2);  // middle
  cancel(6, 2);  // tail
  ASSERT_EQ(asks().size(), 1u);
  EXPECT_EQ(asks()[0].qty, 2 + 4 + 5);
  EXPECT_EQ(asks()[0].order_count, 3u);
  const auto evs = submit({.id = 10, .price = 100, .qty = 11});
  const auto trades = of_type(evs, EventType::kTrade);
  ASSERT_EQ(trades.size(), 3u);
  EXPECT_EQ(trades[0].maker_order_id, 2u);
  EXPECT_EQ(trades[1].maker_order_id, 4u);
  EXPECT_EQ(trades[2].maker_order_id, 5u);
  EXPECT_TRUE(asks().empty());
  EXPECT_TRUE(bids().empty());
  EXPECT_EQ(engine_.live_orders(), 0u);
}

TEST_F(MatchingTest, MultiLevelSweepWithExactBoundaryFill) {
  submit({.id = 1, .account = 2, .side = kSell, .price = 101, .qty = 3});
  submit({.id = 2, .account = 2, .side = kSell, .price = 102, .qty = 4});
  submit({.id = 3, .account = 2, .side = kSell, .price = 103, .qty = 5});
  const auto evs = submit({.id = 9, .price = 103, .qty = 7});
  const auto trades = of_type(evs, EventType::kTrade);
  ASSERT_EQ(trades.size(), 2u);
  EXPECT_EQ(trades[0].price, 101);
  EXPECT_EQ(trades[0].qty, 3);
  EXPECT_EQ(trades[0].leaves_qty, 4);
  EXPECT_EQ(trades[1].price, 102);
  EXPECT_EQ(trades[1].qty, 4);
  EXPECT_EQ(trades[1].leaves_qty, 0);
  EXPECT_EQ(trades[1].maker_leaves_qty, 0);
  // Exactly filled at the boundary: the third level is untouched and nothing rests.
  ASSERT_EQ(asks().size(), 1u);
  EXPECT_EQ(asks()[0].price, 103);
  EXPECT_EQ(asks()[0].qty, 5);
  EXPECT_TRUE(bids().empty());
  const auto changes = of_type(evs, EventType::kBookChange);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].price, 101);
  EXPECT_EQ(changes[0].qty, 0);
  EXPECT_EQ(changes[1].price, 102);
  EXPECT_EQ(changes[1].qty, 0);
}

TEST_F(MatchingTest, MarketableLimitStopsAtItsPriceAndRestsTheRest) {
  submit({.id = 1, .account = 2, .side = kSell, .price = 101, .qty = 3});
  submit({.id = 2, .account = 2, .side = kSell, .price = 103, .qty = 3});
  const auto evs = submit({.id = 9, .price = 102, .qty = 10});
  ASSERT_EQ(of_type(evs, EventType::kTrade).size(), 1u);
  ASSERT_EQ(bids().size(), 1u);
  EXPECT_EQ(bids()[0].price, 102);
  EXPECT_EQ(bids()[0].qty, 7);
  EXPECT_EQ(engine_.best_ask(1)->first, 103);
  const auto o = engine_.order(9);
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->filled_qty, 3);
  EXPECT_EQ(o->leaves_qty, 7);
  EXPECT_EQ(o->qty, 10);
}

TEST_F(MatchingTest, TradesAtMakerPriceBothDirections) {
  submit({.id = 1, .account = 2, .side = kSell, .price = 100, .qty = 1});
  auto t = of_type(submit({.id = 2, .price = 120, .qty = 1}), EventType::kTrade);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].price, 100);
  EXPECT_EQ(t[0].side, kBuy);
  submit({.id = 3, .account = 2, .side = kBuy, .price = 100, .qty = 1});
  t = of_type(submit({.id = 4, .side = kSell, .price = 80, .qty = 1}), EventType::kTrade);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].price, 100);
  EXPECT_EQ(t[0].side, kSell);
  EXPECT_EQ(t[0].maker_order_id, 3u);
  EXPECT_EQ(t[0].maker_account_id, 2u);
  EXPECT_EQ(t[0].account_id, 1u);
}

TEST_F(MatchingTest, IocResidualCanceledNeverRests) {
  submit({.id = 1, .account = 2, .side = kSell, .price = 100, .qty = 2});
  const auto evs = submit({.id = 2, .price = 100, .qty = 5, .tif = kIoc});
  ASSERT_EQ(evs.size(), 4u);
  EXPECT_EQ(evs[0].type, ev(EventType::kAccepted));
  EXPECT_EQ(evs[1].type, ev(EventType::kTrade));
  EXPECT_EQ(evs[2].type, ev(EventType::kCanceled));
  EXPECT_EQ(evs[2].reason, cr(CancelReason::kIocRemainder));
  EXPECT_EQ(evs[2].qty, 3);
  EXPECT_EQ(evs[2].leaves_qty, 0);
  EXPECT_EQ(evs[3].type, ev(EventType::kBookChange));
  EXPECT_TRUE(bids().empty());
  EXPECT_FALSE(engine_.order(2).has_value());
  // An IOC that cannot trade at all is canceled whole, with no book change.
  const auto none = submit({.id = 3, .price = 90, .qty = 5, .tif = kIoc});
  ASSERT_EQ(none.size(), 2u);
  EXPECT_EQ(none[1].reason, cr(CancelReason::kIocRemainder));
  EXPECT_EQ(none[1].qty, 5);
}

TEST_F(MatchingTest, MarketOrderWithGtcBehavesAsIoc) {
  submit({.id = 1, .account = 2, .side = kSell, .price = 100, .qty = 2});
  submit({.id = 2, .account = 2, .side = kSell, .price = 200, .qty = 2});
  const auto evs = submit({.id = 3, .qty = 6, .tif = kGtc, .type = kMarket});
  EXPECT_EQ(of_type(evs, EventType::kTrade).size(), 2u);
  const auto c = of_type(evs, EventType::kCanceled);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].reason, cr(CancelReason::kIocRemainder));
  EXPECT_EQ(c[0].qty, 2);
  EXPECT_EQ(engine_.live_orders(), 0u);
}

TEST_F(MatchingTest, FokFillsCompletelyOrRejects) {
  submit({.id = 1, .account = 2, .side = kSell, .price = 100, .qty = 2});
  submit({.id = 2, .account = 2, .side = kSell, .price = 101, .qty = 2});
  expect_reject(submit({.id = 3, .price = 100, .qty = 3, .tif = kFok}),
                RejectReason::kFokCannotFill);
  expect_reject(submit({.id = 3, .qty = 5, .tif = kFok, .type = kMarket}),
                RejectReason::kFokCannotFill);
  EXPECT_EQ(asks().size(), 2u);
  const auto evs = submit({.id = 3, .price = 101, .qty = 4, .tif = kFok});
  EXPECT_EQ(of_type(evs, EventType::kTrade).size(), 2u);
  EXPECT_TRUE(of_type(evs, EventType::kCanceled).empty());
  EXPECT_TRUE(asks().empty());
}

TEST_F(MatchingTest, FokFillableIgnoresOwnOrdersUnderStp) {
  submit({.id = 1, .account = 1, .side = kSell, .price = 100, .qty = 5});
  submit({.id = 2, .account = 2, .side = kSell, .price = 100, .qty = 3});
  // CANCEL_MAKER: own order adds nothing, the walk continues.
  expect_reject(submit({.id = 3, .price = 100, .qty = 4, .tif = kFok}),
                RejectReason::kFokCannotFill);
  // CANCEL_TAKER stops at the own order: nothing fillable.
  expect_reject(submit({.id = 3, .price = 100, .qty = 1, .tif = kFok, .stp = 1}),
                RejectReason::kFokCannotFill);
  // NONE: own orders count.
  const auto evs = submit({.id = 3, .price = 100, .qty = 8, .tif = kFok, .stp = 3});
  EXPECT_EQ(of_type(evs, EventType::kTrade).size(), 2u);
  EXPECT_TRUE(asks().empty());
}

TEST_F(MatchingTest, FokCancelMakerCancelsOwnAndFills) {
  submit({.id = 1, .account = 1, .side = kSell, .price = 100, .qty = 5});
  submit({.id = 2, .account = 2, .side = kSell, .price = 100, .qty = 3});
  const auto evs = submit({.id = 3, .price = 100, .qty = 3, .tif = kFok});
  ASSERT_EQ(evs.size(), 4u);
  EXPECT_EQ(evs[1].type, ev(EventType::kCanceled));
  EXPECT_EQ(evs[1].order_id, 1u);
  EXPECT_EQ(evs[1].reason, cr(CancelReason::kSelfTrade));
  EXPECT_EQ(evs[2].type, ev(EventType::kTrade));
  EXPECT_EQ(evs[3].type, ev(EventType::kBookChange));
  EXPECT_EQ(evs[3].qty, 0);
}

TEST_F(MatchingTest, StpCancelTakerLeavesMakerAndBookUntouched) {
  submit({.id = 1, .account = 2, .side = kSell, .price = 100, .qty = 2});
  submit({.id = 2, .account = 1, .side = kSell, .price = 100, .qty = 2});
  submit({.id = 3, .account = 2, .side = kSell, .price = 100, .qty = 2});
  const auto evs = submit({.id = 9, .price = 100, .qty = 5, .stp = 1});
  ASSERT_EQ(evs.size(), 4u);
  EXPECT_EQ(evs[1].type, ev(EventType::kTrade));
  EXPECT_EQ(evs[2].type, ev(EventType::kCanceled));
  EXPECT_EQ(evs[2].order_id, 9u);
  EXPECT_EQ(evs[2].reason, cr(CancelReason::kSelfTrade));
  EXPECT_EQ(evs[2].qty, 3);
  EXPECT_EQ(evs[3].type, ev(EventType::kBookChange));
  EXPECT_EQ(evs[3].qty, 4);
  EXPECT_EQ(evs[3].order_count, 2u);
  // First maker is own: no trade, no book change at all.
  const auto only = submit({.id = 10, .price = 100, .qty = 1, .stp = 1});
  ASSERT_EQ(only.size(), 2u);
  EXPECT_EQ(only[1].type, ev(EventType::kCanceled));
  EXPECT_EQ(asks()[0].qty, 4);
}

TEST_F(MatchingTest, StpCancelBoth) {
  submit({.id = 1, .account = 1, .side = kSell, .price = 100, .qty = 2});
  submit({.id = 2, .account = 2, .side = kSell, .price = 100, .qty = 2});
  const auto evs = submit({.id = 9, .price = 100, .qty = 5, .stp = 2});
  ASSERT_EQ(evs.size(), 4u);
  EXPECT_EQ(evs[1].order_id, 1u);
  EXPECT_EQ(evs[1].reason, cr(CancelReason::kSelfTrade));
  EXPECT_EQ(evs[1].qty, 2);
  EXPECT_EQ(evs[2].order_id, 9u);
  EXPECT_EQ(evs[2].reason, cr(CancelReason::kSelfTrade));
  EXPECT_EQ(evs[2].qty, 5);
  EXPECT_EQ(evs[3].qty, 2);
  EXPECT_EQ(evs[3].order_count, 1u);
  EXPECT_FALSE(engine_.order(9).has_value());
}

TEST_F(MatchingTest, StpCancelMakerThenRestsAndNoneTrades) {
  submit({.id = 1, .account = 1, .side = kSell, .price = 100, .qty = 2});
  auto evs = submit({.id = 9, .price = 100, .qty = 5});
  EXPECT_EQ(evs[1].type, ev(EventType::kCanceled));
  EXPECT_EQ(evs[1].order_id, 1u);
  EXPECT_EQ(bids()[0].qty, 5);
  cancel(9);
  submit({.id = 1, .account = 1, .side = kSell, .price = 100, .qty = 2});
  evs = submit({.id = 9, .price = 100, .qty = 2, .stp = 3});
  ASSERT_EQ(of_type(evs, EventType::kTrade).size(), 1u);
  EXPECT_EQ(of_type(evs, EventType::kTrade)[0].maker_account_id, 1u);
}

TEST_F(MatchingTest, PartiallyFilledOrderKeepsItsPlace) {
  submit({.id = 1, .account = 2, .side = kSell, .price = 100, .qty = 10});
  submit({.id = 2, .account = 3, .side = kSell, .price = 100, .qty = 10});
  submit({.id = 5, .price = 100, .qty = 4});
  const auto t = of_type(submit({.id = 6, .price = 100, .qty = 7}), EventType::kTrade);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].maker_order_id, 1u);
  EXPECT_EQ(t[0].qty, 6);
  EXPECT_EQ(t[1].maker_order_id, 2u);
  EXPECT_EQ(t[1].qty, 1);
}

TEST_F(MatchingTest, EmptiedBestLevelDisappearsAtOnce) {
  submit({.id = 1, .account = 2, .side = kBuy, .price = 100, .qty = 1});
  submit({.id = 2, .account = 2, .side = kBuy, .price = 99, .qty = 1});
  submit({.id = 3, .side = kSell, .price = 100, .qty = 1});
  ASSERT_TRUE(engine_.best_bid(1).has_value());
  EXPECT_EQ(engine_.best_bid(1)->first, 99);
  EXPECT_EQ(bids().size(), 1u);
  cancel(2, 2);
  EXPECT_FALSE(engine_.best_bid(1).has_value());
  EXPECT_TRUE(bids().empty());
}

TEST_F(MatchingTest, CancelOrAmendOfFilledOrUnknownRejected) {
  submit({.id = 1, .account = 2, .side = kSell, .price = 100, .qty = 1});
  submit({.id = 2, .price = 100, .qty = 1});
  expect_reject(cancel(1, 2), RejectReason::kUnknownOrder, EventType::kCancelRejected);
  expect_reject(cancel(2, 1), RejectReason::kUnknownOrder, EventType::kCancelRejected);
  expect_reject(cancel(77, 1), RejectReason::kUnknownOrder, EventType::kCancelRejected);
  expect_reject(amend(1, 100, 1, 2), RejectReason::kUnknownOrder, EventType::kAmendRejected);
  submit({.id = 3, .price = 50, .qty = 1});
  // Another account's order looks unknown.
  expect_reject(cancel(3, 2), RejectReason::kUnknownOrder, EventType::kCancelRejected);
  expect_reject(amend(3, 50, 1, 2), RejectReason::kUnknownOrder, EventType::kAmendRejected);
  cancel(3);
  expect_reject(cancel(3), RejectReason::kUnknownOrder, EventType::kCancelRejected);
}

TEST_F(MatchingTest, IdsReusableAfterTheOrderIsGone) {
  submit({.id = 1, .account = 2, .side = kSell, .price = 100, .qty = 1});
  submit({.id = 2, .price = 100, .qty = 1});
  EXPECT_EQ(submit({.id = 1, .price = 90})[0].type, ev(EventType::kAccepted));
  EXPECT_EQ(submit({.id = 2, .price = 91})[0].type, ev(EventType::kAccepted));
  cancel(1);
  EXPECT_EQ(submit({.id = 1, .account = 5, .side = kSell, .price = 120})[0].type,
            ev(EventType::kAccepted));
  EXPECT_EQ(engine_.order(1)->account_id, 5u);
}

TEST_F(MatchingTest, PricesNearInt64Limits) {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  submit({.id = 1, .account = 2, .side = kSell, .price = kMax, .qty = 1'000'000});
  submit({.id = 2, .account = 2, .side = kSell, .price = kMax - 1, .qty = 1});
  submit({.id = 3, .account = 2, .side = kBuy, .price = 1, .qty = 1});
  EXPECT_EQ(asks().size(), 2u);
  EXPECT_EQ(asks()[0].price, kMax - 1);
  const auto evs = submit({.id = 4, .price = kMax, .qty = 2});
  const auto t = of_type(evs, EventType::kTrade);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].price, kMax - 1);
  EXPECT_EQ(t[1].price, kMax);
  auto m = of_type(submit({.id = 5, .side = kSell, .qty = 1, .type = kMarket}), EventType::kTrade);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].price, 1);
}

TEST_F(MatchingTest, BookSeqContiguousPerSymbolAndTradeIdEngineWide) {
  submit({.id = 1, .account = 2, .side = kSell, .price = 100, .qty = 1});
  submit({.id = 2, .account = 2, .side = kSell, .price = 100, .qty = 1, .symbol = 2});
  submit({.id = 3, .account = 2, .side = kSell, .price = 101, .qty = 1});
  auto a = submit({.id = 4, .price = 101, .qty = 2});
  auto b = submit({.id = 5, .price = 100, .qty = 1, .symbol = 2});
  // Symbol 1: two book changes (1, 2) then trade, trade, 2 book changes.
  std::uint64_t seq = 2;
  for (const Event& e : a) {
    if (e.type == ev(EventType::kTrade) || e.type == ev(EventType::kBookChange)) {
      EXPECT_EQ(e.book_seq, ++seq);
    } else {
      EXPECT_EQ(e.book_seq, 0u);
    }
  }
  EXPECT_EQ(seq, 6u);
  const auto ta = of_type(a, EventType::kTrade);
  const auto tb = of_type(b, EventType::kTrade);
  EXPECT_EQ(ta[0].trade_id, 1u);
  EXPECT_EQ(ta[1].trade_id, 2u);
  EXPECT_EQ(tb[0].trade_id, 3u);
  EXPECT_EQ(tb[0].book_seq, 2u);
  // Book changes come after all order events, in first-touched order.
  ASSERT_EQ(a.size(), 5u);
  EXPECT_EQ(a[3].price, 100);
  EXPECT_EQ(a[4].price, 101);
}

TEST_F(MatchingTest, BatchEventsCarryCommandIndex) {
  Command cmds[3]{};
  for (int i = 0; i < 3; ++i) {
    cmds[i].kind = 1;
    cmds[i].order_id = static_cast<std::uint64_t>(i + 1);
    cmds[i].account_id = static_cast<std::uint64_t>(i + 1);
    cmds[i].symbol_id = 1;
    cmds[i].side = i == 2 ? kBuy : kSell;
    cmds[i].type = 1;
    cmds[i].tif = 1;
    cmds[i].price = 100;
    cmds[i].qty = 1;
    cmds[i].ts = 1000 + i;
  }
  engine_.clear_events();
  engine_.process(cmds, 3);
  const auto& evs = engine_.events();
  ASSERT_EQ(evs.size(), 2u + 2u + 3u);
  EXPECT_EQ(evs[0].cmd_index, 0u);
  EXPECT_EQ(evs[2].cmd_index, 1u);
  EXPECT_EQ(evs[2].ts, 1001);
  for (std::size_t i = 4; i < evs.size(); ++i) {
    EXPECT_EQ(evs[i].cmd_index, 2u);
    EXPECT_EQ(evs[i].ts, 1002);
  }
}

}  // namespace
}  // namespace hft::test
