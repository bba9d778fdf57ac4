// Read-only queries: best prices, depth, orders, instruments, counters.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <optional>
#include <tuple>
#include <vector>

#include "bindings.hpp"

namespace hft::py {

namespace {

using OrderTuple = std::tuple<std::uint64_t, std::uint64_t, std::uint32_t, int, int, std::int64_t,
                              std::int64_t, std::int64_t, std::int64_t, int, int, std::int64_t>;
using LevelTuple = std::tuple<std::int64_t, std::int64_t, std::uint32_t>;

OrderTuple to_tuple(const OrderInfo& o) {
  return {o.order_id, o.account_id, o.symbol_id,  o.side,      o.tif, o.price,
          o.qty,      o.leaves_qty, o.filled_qty, o.post_only, o.stp, o.ts};
}

}  // namespace

void bind_queries(CoreClass& cls) {
  cls.def(
      "best_bid",
      [](Core& self, std::uint32_t symbol_id) {
        std::lock_guard<std::mutex> lock(self.mu);
        return self.engine.best_bid(symbol_id);
      },
      nb::arg("symbol_id"), "(price ticks, total qty lots) of the best bid, or None.");

  cls.def(
      "best_ask",
      [](Core& self, std::uint32_t symbol_id) {
        std::lock_guard<std::mutex> lock(self.mu);
        return self.engine.best_ask(symbol_id);
      },
      nb::arg("symbol_id"), "(price ticks, total qty lots) of the best ask, or None.");

  cls.def(
      "depth",
      [](Core& self, std::uint32_t symbol_id, std::uint32_t levels) {
        std::vector<LevelInfo> bids;
        std::vector<LevelInfo> asks;
        {
          std::lock_guard<std::mutex> lock(self.mu);
          self.engine.depth(symbol_id, levels, bids, asks);
        }
        std::pair<std::vector<LevelTuple>, std::vector<LevelTuple>> out;
        for (const LevelInfo& l : bids) out.first.emplace_back(l.price, l.qty, l.order_count);
        for (const LevelInfo& l : asks) out.second.emplace_back(l.price, l.qty, l.order_count);
        return out;
      },
      nb::arg("symbol_id"), nb::arg("levels"),
      "(bids, asks), each best first as (price ticks, qty lots, order_count), at most `levels`\n"
      "per side; empty for an unknown symbol.");

  cls.def(
      "order",
      [](Core& self, std::uint64_t order_id) -> std::optional<OrderTuple> {
        std::lock_guard<std::mutex> lock(self.mu);
        const auto o = self.engine.order(order_id);
        if (!o) return std::nullopt;
        return to_tuple(*o);
      },
      nb::arg("order_id"),
      "(order_id, account_id, symbol_id, side, tif, price, qty, leaves_qty, filled_qty,\n"
      "post_only, stp, ts) of a live order, or None. qty = filled + leaves (lots); ts is the\n"
      "submit command's (ns).");

  cls.def(
      "open_orders",
      [](Core& self, std::uint64_t account_id) {
        std::vector<OrderInfo> orders;
        {
          std::lock_guard<std::mutex> lock(self.mu);
          orders = self.engine.open_orders(account_id);
        }
        std::vector<OrderTuple> out;
        out.reserve(orders.size());
        for (const OrderInfo& o : orders) out.push_back(to_tuple(o));
        return out;
      },
      nb::arg("account_id"),
      "The account's live orders in ascending order id (tuples as order()).");

  cls.def(
      "instruments",
      [](Core& self) {
        std::vector<InstrumentSpec> specs;
        {
          std::lock_guard<std::mutex> lock(self.mu);
          specs = self.engine.instruments();
        }
        std::vector<std::tuple<std::uint32_t, std::string, std::int64_t, std::int64_t, std::int64_t,
                               std::int64_t, int>>
            out;
        for (const InstrumentSpec& s : specs) {
          out.emplace_back(s.symbol_id, s.symbol, s.min_qty, s.max_qty, s.band_bps,
                           s.reference_price, s.status);
        }
        return out;
      },
      "(symbol_id, symbol, min_qty, max_qty, band_bps, reference_price, status) in ascending\n"
      "id; reference_price is the last trade price (ticks) once the symbol has traded.");

  cls.def(
      "live_orders",
      [](Core& self) {
        std::lock_guard<std::mutex> lock(self.mu);
        return self.engine.live_orders();
      },
      "Number of resting orders in all books.");
}

}  // namespace hft::py
