// Fixed-number enums and the two flat records shared with Python (COMMAND_DTYPE and
// EVENT_DTYPE in src/hft/engine/types.py). The layouts are part of the batch, journal
// and gRPC contracts: the static_asserts below fail the build if they drift.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hft {

enum class Side : std::uint8_t { kBuy = 1, kSell = 2 };
enum class OrderType : std::uint8_t { kLimit = 1, kMarket = 2 };
enum class TimeInForce : std::uint8_t { kGtc = 1, kDay = 2, kIoc = 3, kFok = 4 };
enum class StpMode : std::uint8_t {
  kCancelMaker = 0,
  kCancelTaker = 1,
  kCancelBoth = 2,
  kNone = 3
};
enum class InstrumentStatus : std::uint8_t { kTrading = 1, kHalted = 2 };

enum class CommandKind : std::uint8_t {
  kSubmit = 1,
  kCancel = 2,
  kAmend = 3,
  kCancelAll = 4,
  kSetKillSwitch = 5,
  kSetMaxOpenOrders = 6,
  kSetInstrumentStatus = 7,
  kExpireDay = 8,
};

enum class EventType : std::uint8_t {
  kAccepted = 1,
  kRejected = 2,
  kTrade = 3,
  kCanceled = 4,
  kAmended = 5,
  kExpired = 6,
  kCancelRejected = 7,
  kAmendRejected = 8,
  kBookChange = 9,
};

enum class RejectReason : std::uint16_t {
  kNone = 0,
  kUnknownSymbol = 1,
  kSymbolHalted = 2,
  kInvalidSide = 3,
  kInvalidType = 4,
  kInvalidTimeInForce = 5,
  kInvalidStpMode = 6,
  kInvalidPostOnly = 7,
  kInvalidQuantity = 8,
  kQuantityOutOfRange = 9,
  kPriceNotPositive = 10,
  kPriceOutOfBand = 11,
  kPostOnlyWouldTake = 12,
  kFokCannotFill = 13,
  kMarketNoLiquidity = 14,
  kDuplicateOrderId = 15,
  kMaxOpenOrders = 16,
  kKillSwitch = 17,
  kUnknownOrder = 18,
  kBookFull = 19,
};

enum class CancelReason : std::uint16_t {
  kUser = 1,
  kIocRemainder = 2,
  kSelfTrade = 3,
  kKillSwitch = 4,
};

/// One command of the batch path (COMMAND_DTYPE). Prices in ticks, quantities in lots.
struct Command {
  std::uint8_t kind;
  std::uint8_t side;
  std::uint8_t type;
  std::uint8_t tif;
  std::uint8_t stp;
  std::uint8_t post_only;
  std::uint16_t pad0;
  std::uint32_t symbol_id;
  std::uint32_t pad1;
  std::uint64_t order_id;
  std::uint64_t account_id;
  std::int64_t price;
  std::int64_t qty;
  std::int64_t ts;
};

/// One event (EVENT_DTYPE); field meanings per type are in docs/engine-semantics.md.
struct Event {
  std::uint8_t type;
  std::uint8_t side;
  std::uint16_t reason;
  std::uint32_t symbol_id;
  std::uint32_t cmd_index;
  std::uint32_t order_count;
  std::uint64_t order_id;
  std::uint64_t account_id;
  std::int64_t price;
  std::int64_t qty;
  std::int64_t leaves_qty;
  std::uint64_t maker_order_id;
  std::uint64_t maker_account_id;
  std::int64_t maker_leaves_qty;
  std::uint64_t trade_id;
  std::uint64_t book_seq;
  std::int64_t ts;
};

static_assert(sizeof(Command) == 56 && alignof(Command) == 8);
static_assert(offsetof(Command, kind) == 0 && offsetof(Command, side) == 1);
static_assert(offsetof(Command, type) == 2 && offsetof(Command, tif) == 3);
static_assert(offsetof(Command, stp) == 4 && offsetof(Command, post_only) == 5);
static_assert(offsetof(Command, symbol_id) == 8 && offsetof(Command, order_id) == 16);
static_assert(offsetof(Command, account_id) == 24 && offsetof(Command, price) == 32);
static_assert(offsetof(Command, qty) == 40 && offsetof(Command, ts) == 48);

static_assert(sizeof(Event) == 104 && alignof(Event) == 8);
static_assert(offsetof(Event, type) == 0 && offsetof(Event, side) == 1);
static_assert(offsetof(Event, reason) == 2 && offsetof(Event, symbol_id) == 4);
static_assert(offsetof(Event, cmd_index) == 8 && offsetof(Event, order_count) == 12);
static_assert(offsetof(Event, order_id) == 16 && offsetof(Event, account_id) == 24);
static_assert(offsetof(Event, price) == 32 && offsetof(Event, qty) == 40);
static_assert(offsetof(Event, leaves_qty) == 48 && offsetof(Event, maker_order_id) == 56);
static_assert(offsetof(Event, maker_account_id) == 64 && offsetof(Event, maker_leaves_qty) == 72);
static_assert(offsetof(Event, trade_id) == 80 && offsetof(Event, book_seq) == 88);
static_assert(offsetof(Event, ts) == 96);

}  // namespace hft
