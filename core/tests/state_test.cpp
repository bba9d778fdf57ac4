// Data structures under stress, pool exhaustion, state hash, snapshot and restore.
#include <algorithm>
#include <cstring>
#include <random>
#include <unordered_map>

#include "helpers.hpp"
#include "hft/flat_map.hpp"

namespace hft::test {
namespace {

TEST(FlatMap, MatchesUnorderedMapUnderRandomInsertErase) {
  FlatMap m;
  std::unordered_map<std::uint64_t, std::uint32_t> ref;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200000; ++i) {
    const std::uint64_t k = rng() % 5000;
    if (rng() % 3 == 0) {
      EXPECT_EQ(m.erase(k), ref.erase(k) == 1);
    } else {
      const auto v = static_cast<std::uint32_t>(rng() % 1000000);
      m.put(k, v);
      ref[k] = v;
    }
  }
  EXPECT_EQ(m.size(), ref.size());
  for (std::uint64_t k = 0; k < 5000; ++k) {
    const auto it = ref.find(k);
    EXPECT_EQ(m.find(k), it == ref.end() ? FlatMap::kEmpty : it->second);
  }
}

TEST(OrderPool, ReusesSlotsAndRefusesWhenFull) {
  OrderPool p(3);
  const auto a = p.alloc();
  const auto b = p.alloc();
  const auto c = p.alloc();
  EXPECT_EQ(p.alloc(), kNil);
  p.free(b);
  EXPECT_EQ(p.alloc(), b);
  EXPECT_NE(a, c);
  EXPECT_EQ(p.in_use(), 3u);
}

class SmallBookTest : public EngineTest {
 protected:
  SmallBookTest() : EngineTest(3) {}
};

TEST_F(SmallBookTest, BookFullRejectsCleanly) {
  submit({.id = 1, .price = 90});
  submit({.id = 2, .price = 91});
  submit({.id = 3, .side = kSell, .price = 120});
  const auto before = engine_.state_hash();
  expect_reject(submit({.id = 4, .price = 92}), RejectReason::kBookFull);
  // Even an order that would only trade is refused: the check precedes matching.
  expect_reject(submit({.id = 4, .price = 120, .tif = kIoc}), RejectReason::kBookFull);
  EXPECT_EQ(engine_.state_hash(), before);
  EXPECT_EQ(engine_.live_orders(), 3u);
  cancel(3);
  EXPECT_EQ(submit({.id = 4, .price = 92})[0].type, ev(EventType::kAccepted));
  const auto b = bids();
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].price, 92);
  EXPECT_EQ(b[2].price, 90);
}

class StateTest : public EngineTest {
 protected:
  void random_flow(std::uint64_t seed, int n) {
    std::mt19937_64 rng(seed);
    for (int i = 0; i < n; ++i) {
      const auto r = rng() % 100;
      const std::uint64_t id = 1 + rng() % 300;
      const std::uint64_t account = 1 + rng() % 5;
      if (r < 60) {
        submit({.id = id,
                .account = account,
                .side = static_cast<std::uint8_t>(1 + rng() % 2),
                .price = 90 + static_cast<std::int64_t>(rng() % 21),
                .qty = 1 + static_cast<std::int64_t>(rng() % 20),
                .tif = static_cast<std::uint8_t>(1 + rng() % 4),
                .type = static_cast<std::uint8_t>(rng() % 10 == 0 ? 2 : 1),
                .stp = static_cast<std::uint8_t>(rng() % 4),
                .symbol = static_cast<std::uint32_t>(1 + rng() % 2),
                .ts = i});
      } else if (r < 80) {
        cancel(id, account);
      } else if (r < 95) {
        amend(id, account, 90 + static_cast<std::int64_t>(rng() % 21),
              1 + static_cast<std::int64_t>(rng() % 20));
      } else if (r < 97) {
        simple(CommandKind::kCancelAll, account, static_cast<std::uint32_t>(rng() % 3), 0);
      } else if (r < 98) {
        simple(CommandKind::kSetMaxOpenOrders, account, 0, static_cast<std::int64_t>(rng() % 30));
      } else {
        simple(CommandKind::kExpireDay, 0, static_cast<std::uint32_t>(rng() % 3), 0);
      }
      check_invariants();
    }
  }

  void check_invariants() {
    std::size_t live = 0;
    for (std::uint32_t sym : {1u, 2u}) {
      std::vector<LevelInfo> b;
      std::vector<LevelInfo> a;
      engine_.depth(sym, 100000, b, a);
      for (std::size_t i = 1; i < b.size(); ++i) {
        ASSERT_GT(b[i - 1].price, b[i].price);
      }
      for (std::size_t i = 1; i < a.size(); ++i) {
        ASSERT_LT(a[i - 1].price, a[i].price);
      }
      if (!b.empty() && !a.empty()) {
        ASSERT_LT(b[0].price, a[0].price);
      }
      for (const auto& l : b) live += l.order_count;
      for (const auto& l : a) live += l.order_count;
    }
    ASSERT_EQ(live, engine_.live_orders());
  }
};

TEST_F(StateTest, SnapshotRoundTripPreservesStateAndBehaviour) {
  random_flow(11, 3000);
  simple(CommandKind::kSetKillSwitch, 4, 0, 1);
  simple(CommandKind::kSetMaxOpenOrders, 3, 0, 7);
  const auto image = engine_.snapshot();
  Engine copy(1, 0);
  copy.restore(image.data(), image.size());
  EXPECT_EQ(copy.state_hash(), engine_.state_hash());
  EXPECT_EQ(copy.snapshot(), image);
  EXPECT_EQ(copy.live_orders(), engine_.live_orders());
  EXPECT_EQ(copy.max_orders(), engine_.max_orders());
  // Both continue identically.
  Engine& original = engine_;
  std::mt19937_64 rng(5);
  for (int i = 0; i < 500; ++i) {
    Command c{};
    c.kind = 1;
    c.order_id = 1000 + rng() % 200;
    c.account_id = 1 + rng() % 5;
    c.symbol_id = 1 + static_cast<std::uint32_t>(rng() % 2);
    c.side = static_cast<std::uint8_t>(1 + rng() % 2);
    c.type = 1;
    c.tif = 1;
    c.price = 90 + static_cast<std::int64_t>(rng() % 21);
    c.qty = 1 + static_cast<std::int64_t>(rng() % 20);
    original.clear_events();
    copy.clear_events();
    original.execute(c);
    copy.execute(c);
    ASSERT_EQ(original.events().size(), copy.events().size());
    ASSERT_EQ(std::memcmp(original.events().data(), copy.events().data(),
                          original.events().size() * sizeof(Event)),
              0);
  }
  EXPECT_EQ(copy.state_hash(), original.state_hash());
}

TEST_F(StateTest, RestoreRejectsCorruptDataAndChangesNothing) {
  random_flow(3, 500);
  const auto image = engine_.snapshot();
  auto fails = [](const std::vector<std::uint8_t>& data) {
    Engine e(8, 0);
    const auto before = e.state_hash();
    EXPECT_THROW(e.restore(data.data(), data.size()), std::invalid_argument);
    EXPECT_EQ(e.state_hash(), before);
    EXPECT_TRUE(e.instruments().empty());
  };
  for (std::size_t len :
       {std::size_t{0}, std::size_t{7}, std::size_t{20}, image.size() / 2, image.size() - 1}) {
    fails(std::vector<std::uint8_t>(image.begin(), image.begin() + static_cast<long>(len)));
  }
  std::mt19937_64 rng(1);
  for (int i = 0; i < 300; ++i) {
    auto bad = image;
    bad[rng() % bad.size()] ^= static_cast<std::uint8_t>(1 + rng() % 255);
    fails(bad);
  }
  auto longer = image;
  longer.push_back(0);
  fails(longer);
  // Restoring into a non-empty engine is refused.
  EXPECT_THROW(engine_.restore(image.data(), image.size()), std::invalid_argument);
}

TEST_F(StateTest, HashDistinguishesStates) {
  const auto empty = engine_.state_hash();
  submit({.id = 1, .price = 90});
  const auto one = engine_.state_hash();
  EXPECT_NE(one, empty);
  amend(1, 90, 9);
  EXPECT_NE(engine_.state_hash(), one);
  cancel(1);
  // book_seq advanced, so the state is not the empty one.
  EXPECT_NE(engine_.state_hash(), empty);
  const auto h = engine_.state_hash();
  simple(CommandKind::kSetMaxOpenOrders, 3, 0, 0);
  EXPECT_NE(engine_.state_hash(), h);
}

TEST_F(StateTest, RandomFlowKeepsInvariants) { random_flow(99, 5000); }

}  // namespace
}  // namespace hft::test
