// Order entry checks: every reject reason, in the documented order, and what acceptance emits.
#include <limits>

#include "helpers.hpp"

namespace hft::test {
namespace {

class SubmitTest : public EngineTest {};

TEST_F(SubmitTest, AcceptedRestingLimitEmitsAcceptedThenBookChange) {
  const auto evs = submit({.id = 5, .account = 9, .side = kSell, .price = 101, .qty = 7, .ts = 42});
  ASSERT_EQ(evs.size(), 2u);
  EXPECT_EQ(evs[0].type, ev(EventType::kAccepted));
  EXPECT_EQ(evs[0].order_id, 5u);
  EXPECT_EQ(evs[0].account_id, 9u);
  EXPECT_EQ(evs[0].side, kSell);
  EXPECT_EQ(evs[0].price, 101);
  EXPECT_EQ(evs[0].qty, 7);
  EXPECT_EQ(evs[0].leaves_qty, 7);
  EXPECT_EQ(evs[0].book_seq, 0u);
  EXPECT_EQ(evs[0].ts, 42);
  EXPECT_EQ(evs[1].type, ev(EventType::kBookChange));
  EXPECT_EQ(evs[1].side, kSell);
  EXPECT_EQ(evs[1].price, 101);
  EXPECT_EQ(evs[1].qty, 7);
  EXPECT_EQ(evs[1].order_count, 1u);
  EXPECT_EQ(evs[1].book_seq, 1u);
  EXPECT_EQ(evs[1].ts, 42);
  EXPECT_EQ(engine_.live_orders(), 1u);
}

TEST_F(SubmitTest, UnknownSymbolEchoesCommand) {
  const auto evs = submit({.id = 1, .symbol = 77});
  expect_reject(evs, RejectReason::kUnknownSymbol);
  EXPECT_EQ(evs[0].symbol_id, 77u);
  EXPECT_EQ(evs[0].price, 100);
  EXPECT_EQ(evs[0].qty, 10);
  EXPECT_EQ(evs[0].leaves_qty, 0);
}

TEST_F(SubmitTest, EnumChecksInOrder) {
  expect_reject(submit({.id = 1, .side = 0, .tif = 9, .type = 9}), RejectReason::kInvalidSide);
  expect_reject(submit({.id = 1, .side = 3}), RejectReason::kInvalidSide);
  expect_reject(submit({.id = 1, .tif = 9, .type = 3}), RejectReason::kInvalidType);
  expect_reject(submit({.id = 1, .tif = 0}), RejectReason::kInvalidTimeInForce);
  expect_reject(submit({.id = 1, .tif = 5}), RejectReason::kInvalidTimeInForce);
  expect_reject(submit({.id = 1, .stp = 4}), RejectReason::kInvalidStpMode);
  expect_reject(submit({.id = 1, .post_only = 2}), RejectReason::kInvalidPostOnly);
  expect_reject(submit({.id = 1, .tif = kIoc, .post_only = 1}), RejectReason::kInvalidPostOnly);
  expect_reject(submit({.id = 1, .tif = kFok, .post_only = 1}), RejectReason::kInvalidPostOnly);
  expect_reject(submit({.id = 1, .type = kMarket, .post_only = 1}), RejectReason::kInvalidPostOnly);
  EXPECT_EQ(engine_.live_orders(), 0u);
}

TEST_F(SubmitTest, QuantityAndPriceChecks) {
  expect_reject(submit({.id = 1, .qty = 0}), RejectReason::kInvalidQuantity);
  expect_reject(submit({.id = 1, .qty = -5}), RejectReason::kInvalidQuantity);
  expect_reject(submit({.id = 1, .qty = 1'000'001}), RejectReason::kQuantityOutOfRange);
  expect_reject(submit({.id = 1, .price = 0}), RejectReason::kPriceNotPositive);
  expect_reject(submit({.id = 1, .price = -1}), RejectReason::kPriceNotPositive);
  // Quantity is checked before price.
  expect_reject(submit({.id = 1, .price = 0, .qty = 0}), RejectReason::kInvalidQuantity);
}

TEST_F(SubmitTest, QuantityRangeUsesInstrumentLimits) {
  InstrumentSpec s;
  s.symbol_id = 3;
  s.symbol = "CCC";
  s.min_qty = 5;
  s.max_qty = 10;
  engine_.add_instrument(s);
  expect_reject(submit({.id = 1, .qty = 4, .symbol = 3}), RejectReason::kQuantityOutOfRange);
  expect_reject(submit({.id = 1, .qty = 11, .symbol = 3}), RejectReason::kQuantityOutOfRange);
  EXPECT_EQ(submit({.id = 1, .qty = 5, .symbol = 3})[0].type, ev(EventType::kAccepted));
  EXPECT_EQ(submit({.id = 2, .qty = 10, .symbol = 3})[0].type, ev(EventType::kAccepted));
}

TEST_F(SubmitTest, MarketOrderPriceIgnoredAndCarriedAsZero) {
  submit({.id = 1, .account = 2, .side = kSell, .price = 100, .qty = 5});
  const auto evs = submit({.id = 2, .price = -7, .qty = 5, .type = kMarket});
  ASSERT_GE(evs.size(), 2u);
  EXPECT_EQ(evs[0].type, ev(EventType::kAccepted));
  EXPECT_EQ(evs[0].price, 0);
  EXPECT_EQ(evs[1].type, ev(EventType::kTrade));
  EXPECT_EQ(evs[1].price, 100);
  // A rejected market order carries 0 as well.
  const auto rej = submit({.id = 3, .price = 55, .qty = 0, .type = kMarket});
  expect_reject(rej, RejectReason::kInvalidQuantity);
  EXPECT_EQ(rej[0].price, 0);
}

TEST_F(SubmitTest, PriceBand) {
  InstrumentSpec s;
  s.symbol_id = 4;
  s.symbol = "BAND";
  s.max_qty = 100;
  s.band_bps = 500;  // 5%
  s.reference_price = 1000;
  engine_.add_instrument(s);
  EXPECT_EQ(submit({.id = 1, .price = 1050, .qty = 1, .symbol = 4})[0].type,
            ev(EventType::kAccepted));
  EXPECT_EQ(submit({.id = 2, .price = 950, .qty = 1, .symbol = 4})[0].type,
            ev(EventType::kAccepted));
  expect_reject(submit({.id = 3, .price = 1051, .qty = 1, .symbol = 4}),
                RejectReason::kPriceOutOfBand);
  expect_reject(submit({.id = 3, .price = 949, .qty = 1, .symbol = 4}),
                RejectReason::kPriceOutOfBand);
  // Market orders have no price to check.
  EXPECT_EQ(submit({.id = 4, .side = kSell, .qty = 1, .type = kMarket, .symbol = 4})[0].type,
            ev(EventType::kAccepted));
}

TEST_F(SubmitTest, BandMovesWithLastTradePrice) {
  InstrumentSpec s;
  s.symbol_id = 4;
  s.symbol = "BAND";
  s.max_qty = 100;
  s.band_bps = 1000;  // 10%
  s.reference_price = 100;
  engine_.add_instrument(s);
  submit({.id = 1, .account = 2, .side = kSell, .price = 110, .qty = 1, .symbol = 4});
  submit({.id = 2, .price = 110, .qty = 1, .symbol = 4});  // trades at 110
  EXPECT_EQ(engine_.instruments()[2].reference_price, 110);
  EXPECT_EQ(submit({.id = 3, .price = 121, .qty = 1, .symbol = 4})[0].type,
            ev(EventType::kAccepted));
  expect_reject(submit({.id = 4, .price = 122, .qty = 1, .symbol = 4}),
                RejectReason::kPriceOutOfBand);
}

TEST_F(SubmitTest, BandNearInt64LimitsDoesNotOverflow) {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  // With four live orders at most, a level may hold quantities up to INT64_MAX / 4 each.
  engine_ = Engine(4, 0);
  constexpr std::int64_t kQty = kMax / 4;
  InstrumentSpec s;
  s.symbol_id = 4;
  s.symbol = "HUGE";
  s.max_qty = kQty;
  s.band_bps = kMax;
  s.reference_price = kMax - 1;
  engine_.add_instrument(s);
  EXPECT_EQ(submit({.id = 1, .price = 1, .qty = kQty, .symbol = 4})[0].type,
            ev(EventType::kAccepted));
  EXPECT_EQ(submit({.id = 2, .side = kSell, .price = kMax, .qty = kQty, .symbol = 4})[0].type,
            ev(EventType::kAccepted));
  s.symbol_id = 5;
  s.symbol = "TIGHT";
  s.band_bps = 1;
  s.reference_price = kMax;
  engine_.add_instrument(s);
  expect_reject(submit({.id = 3, .price = 1, .qty = 1, .symbol = 5}),
                RejectReason::kPriceOutOfBand);
  EXPECT_EQ(submit({.id = 4, .price = kMax, .qty = 1, .symbol = 5})[0].type,
            ev(EventType::kAccepted));
}

TEST_F(SubmitTest, HaltedAfterPriceChecks) {
  simple(CommandKind::kSetInstrumentStatus, 0, 1, 2);
  expect_reject(submit({.id = 1, .price = 0}), RejectReason::kPriceNotPositive);
  expect_reject(submit({.id = 1}), RejectReason::kSymbolHalted);
  simple(CommandKind::kSetInstrumentStatus, 0, 1, 9);  // unknown status ignored
  expect_reject(submit({.id = 1}), RejectReason::kSymbolHalted);
  simple(CommandKind::kSetInstrumentStatus, 0, 1, 1);
  EXPECT_EQ(submit({.id = 1})[0].type, ev(EventType::kAccepted));
}

TEST_F(SubmitTest, KillSwitchBeforeDuplicate) {
  submit({.id = 1});
  expect_reject(submit({.id = 1}), RejectReason::kDuplicateOrderId);
  simple(CommandKind::kSetKillSwitch, 1, 0, 1);
  expect_reject(submit({.id = 1}), RejectReason::kKillSwitch);
  simple(CommandKind::kSetKillSwitch, 1, 0, 0);
  EXPECT_EQ(submit({.id = 1})[0].type, ev(EventType::kAccepted));
}

TEST_F(SubmitTest, DuplicateIdAcrossAccountsAndSymbols) {
  submit({.id = 1, .account = 1, .symbol = 1});
  expect_reject(submit({.id = 1, .account = 2, .side = kSell, .price = 500, .symbol = 2}),
                RejectReason::kDuplicateOrderId);
}

TEST_F(SubmitTest, MaxOpenOrdersOnlyForRestingOrders) {
  simple(CommandKind::kSetMaxOpenOrders, 1, 0, 2);
  submit({.id = 1, .price = 90});
  submit({.id = 2, .price = 91});
  expect_reject(submit({.id = 3, .price = 92}), RejectReason::kMaxOpenOrders);
  expect_reject(submit({.id = 3, .price = 92, .tif = kDay}), RejectReason::kMaxOpenOrders);
  // IOC never rests, so it is not limited.
  const auto ioc = submit({.id = 3, .price = 92, .tif = kIoc});
  EXPECT_EQ(ioc[0].type, ev(EventType::kAccepted));
  EXPECT_EQ(ioc[1].reason, cr(CancelReason::kIocRemainder));
  cancel(1);
  EXPECT_EQ(submit({.id = 3, .price = 92})[0].type, ev(EventType::kAccepted));
  // 0 = unlimited.
  simple(CommandKind::kSetMaxOpenOrders, 1, 0, 0);
  EXPECT_EQ(submit({.id = 4, .price = 93})[0].type, ev(EventType::kAccepted));
  // Negative values are ignored.
  simple(CommandKind::kSetMaxOpenOrders, 1, 0, -1);
  EXPECT_EQ(submit({.id = 5, .price = 94})[0].type, ev(EventType::kAccepted));
}

TEST(EngineDefaults, DefaultMaxOpenOrders) {
  Engine e(100, 1);
  InstrumentSpec s;
  s.symbol_id = 1;
  s.symbol = "A";
  s.max_qty = 10;
  e.add_instrument(s);
  Command c{};
  c.kind = 1;
  c.symbol_id = 1;
  c.side = 1;
  c.type = 1;
  c.tif = 1;
  c.price = 10;
  c.qty = 1;
  c.account_id = 1;
  c.order_id = 1;
  e.execute(c);
  c.order_id = 2;
  e.execute(c);
  ASSERT_EQ(e.events().back().type, ev(EventType::kRejected));
  EXPECT_EQ(e.events().back().reason, rr(RejectReason::kMaxOpenOrders));
}

TEST_F(SubmitTest, PostOnly) {
  submit({.id = 1, .account = 2, .side = kSell, .price = 105});
  expect_reject(submit({.id = 2, .price = 105, .post_only = 1}), RejectReason::kPostOnlyWouldTake);
  expect_reject(submit({.id = 2, .price = 106, .post_only = 1}), RejectReason::kPostOnlyWouldTake);
  // Own orders count too.
  expect_reject(submit({.id = 2, .account = 2, .price = 105, .post_only = 1}),
                RejectReason::kPostOnlyWouldTake);
  const auto ok = submit({.id = 2, .price = 104, .post_only = 1});
  EXPECT_EQ(ok[0].type, ev(EventType::kAccepted));
  expect_reject(submit({.id = 3, .side = kSell, .price = 104, .post_only = 1}),
                RejectReason::kPostOnlyWouldTake);
  EXPECT_EQ(submit({.id = 3, .side = kSell, .price = 105, .post_only = 1, .stp = 3})[0].type,
            ev(EventType::kAccepted));
}

TEST_F(SubmitTest, MarketNoLiquidity) {
  expect_reject(submit({.id = 1, .type = kMarket}), RejectReason::kMarketNoLiquidity);
  submit({.id = 2, .side = kBuy, .price = 90});
  expect_reject(submit({.id = 1, .type = kMarket}), RejectReason::kMarketNoLiquidity);
}

TEST_F(SubmitTest, InvalidCommandKindIsDetected) {
  Command cmds[3]{};
  cmds[0].kind = 1;
  cmds[1].kind = 8;
  cmds[2].kind = 9;
  EXPECT_EQ(Engine::first_invalid_command(cmds, 2), 2u);
  EXPECT_EQ(Engine::first_invalid_command(cmds, 3), 2u);
  cmds[0].kind = 0;
  EXPECT_EQ(Engine::first_invalid_command(cmds, 3), 0u);
}

TEST(Instruments, ValidationLeavesEngineUnchanged) {
  Engine e;
  InstrumentSpec s;
  s.symbol_id = 1;
  s.symbol = "A";
  s.max_qty = 10;
  e.add_instrument(s);
  const auto before = e.state_hash();
  auto bad = [&](auto mutate) {
    InstrumentSpec t;
    t.symbol_id = 2;
    t.symbol = "B";
    t.max_qty = 10;
    mutate(t);
    EXPECT_THROW(e.add_instrument(t), std::invalid_argument);
  };
  bad([](InstrumentSpec& t) { t.symbol_id = 1; });
  bad([](InstrumentSpec& t) { t.symbol = "A"; });
  bad([](InstrumentSpec& t) { t.symbol = ""; });
  bad([](InstrumentSpec& t) { t.symbol_id = 0; });
  bad([](InstrumentSpec& t) { t.min_qty = 0; });
  bad([](InstrumentSpec& t) { t.min_qty = 11; });
  bad([](InstrumentSpec& t) { t.band_bps = -1; });
  bad([](InstrumentSpec& t) { t.reference_price = -1; });
  bad([](InstrumentSpec& t) { t.status = 3; });
  EXPECT_EQ(e.instruments().size(), 1u);
  EXPECT_EQ(e.state_hash(), before);
  EXPECT_THROW(Engine(0, 0), std::invalid_argument);
  EXPECT_THROW(Engine(10, -1), std::invalid_argument);
}

TEST(Instruments, MaxQtyTimesMaxOrdersMustFitInt64) {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  constexpr std::uint64_t kOrders = 1000;
  Engine e(kOrders, 0);
  InstrumentSpec s;
  s.symbol_id = 1;
  s.symbol = "A";
  s.max_qty = kMax / static_cast<std::int64_t>(kOrders) + 1;
  const auto before = e.state_hash();
  EXPECT_THROW(e.add_instrument(s), std::invalid_argument);
  EXPECT_TRUE(e.instruments().empty());
  EXPECT_EQ(e.state_hash(), before);
  // The largest allowed max_qty: a full level of max_qty orders sums to exactly <= INT64_MAX.
  s.max_qty = kMax / static_cast<std::int64_t>(kOrders);
  e.add_instrument(s);
  ASSERT_EQ(e.instruments().size(), 1u);
  EXPECT_EQ(e.instruments()[0].max_qty, s.max_qty);
  // One order can take max_qty = INT64_MAX only in an engine of a single order.
  Engine one(1, 0);
  s.max_qty = kMax;
  one.add_instrument(s);
  Engine two(2, 0);
  EXPECT_THROW(two.add_instrument(s), std::invalid_argument);
}

}  // namespace
}  // namespace hft::test
