// Core construction, commands, the batch path and the event buffer.
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bindings.hpp"

namespace hft::py {

namespace {

/// `process` keeps the GIL for batches up to this many commands (see there).
constexpr std::size_t kKeepGilUpTo = 64;

/// Enum-valued arguments arrive as Python ints; anything outside a byte cannot be a valid
/// enum value and maps to 255, which every enum check rejects with its specific reason.
std::uint8_t enum_byte(std::int64_t v) {
  return v < 0 || v > 254 ? std::uint8_t{255} : static_cast<std::uint8_t>(v);
}

std::size_t run(Core& self, const Command& c) {
  std::lock_guard<std::mutex> lock(self.mu);
  const std::size_t before = self.engine.events().size();
  self.engine.execute(c, 0);
  return self.engine.events().size() - before;
}

Command make(CommandKind kind) {
  Command c{};
  c.kind = static_cast<std::uint8_t>(kind);
  return c;
}

}  // namespace

void bind_commands(CoreClass& cls) {
  cls.def(
      nb::init<std::uint64_t, std::int64_t>(), nb::arg("max_orders") = 1u << 20,
      nb::arg("default_max_open_orders") = 0,
      "Create an empty core holding at most max_orders live orders; default_max_open_orders\n"
      "caps live GTC/DAY orders per account (0 = unlimited). Raises ValueError on out-of-range\n"
      "values.");

  cls.def(
      "add_instrument",
      [](Core& self, std::uint32_t symbol_id, const std::string& symbol, std::int64_t min_qty,
         std::int64_t max_qty, std::int64_t band_bps, std::int64_t reference_price,
         std::int64_t status) {
        InstrumentSpec s;
        s.symbol_id = symbol_id;
        s.symbol = symbol;
        s.min_qty = min_qty;
        s.max_qty = max_qty;
        s.band_bps = band_bps;
        s.reference_price = reference_price;
        s.status = enum_byte(status);
        std::lock_guard<std::mutex> lock(self.mu);
        self.engine.add_instrument(s);
      },
      nb::arg("symbol_id"), nb::arg("symbol"), nb::arg("min_qty"), nb::arg("max_qty"),
      nb::arg("band_bps"), nb::arg("reference_price"), nb::arg("status"),
      "Add an instrument (quantities in lots, reference_price in ticks, band in basis points, 0\n"
      "= none). Emits no event. Raises ValueError on a duplicate id/symbol or invalid values.");

  cls.def(
      "submit",
      [](Core& self, std::uint64_t order_id, std::uint64_t account_id, std::uint32_t symbol_id,
         std::int64_t side, std::int64_t type, std::int64_t tif, std::int64_t price,
         std::int64_t qty, std::int64_t post_only, std::int64_t stp, std::int64_t ts) {
        Command c = make(CommandKind::kSubmit);
        c.order_id = order_id;
        c.account_id = account_id;
        c.symbol_id = symbol_id;
        c.side = enum_byte(side);
        c.type = enum_byte(type);
        c.tif = enum_byte(tif);
        c.price = price;
        c.qty = qty;
        c.post_only = enum_byte(post_only);
        c.stp = enum_byte(stp);
        c.ts = ts;
        return run(self, c);
      },
      nb::arg("order_id"), nb::arg("account_id"), nb::arg("symbol_id"), nb::arg("side"),
      nb::arg("type"), nb::arg("tif"), nb::arg("price"), nb::arg("qty"), nb::arg("post_only") = 0,
      nb::arg("stp") = 0, nb::arg("ts") = 0,
      "Submit an order (price in ticks, ignored for market orders; qty in lots; ts in ns).\n"
      "Appends its events to the buffer and returns how many.");

  cls.def(
      "cancel",
      [](Core& self, std::uint64_t order_id, std::uint64_t account_id, std::int64_t ts) {
        Command c = make(CommandKind::kCancel);
        c.order_id = order_id;
        c.account_id = account_id;
        c.ts = ts;
        return run(self, c);
      },
      nb::arg("order_id"), nb::arg("account_id"), nb::arg("ts") = 0,
      "Cancel a live order of the account; returns the number of events appended.");

  cls.def(
      "amend",
      [](Core& self, std::uint64_t order_id, std::uint64_t account_id, std::int64_t price,
         std::int64_t qty, std::int64_t ts) {
        Command c = make(CommandKind::kAmend);
        c.order_id = order_id;
        c.account_id = account_id;
        c.price = price;
        c.qty = qty;
        c.ts = ts;
        return run(self, c);
      },
      nb::arg("order_id"), nb::arg("account_id"), nb::arg("price"), nb::arg("qty"),
      nb::arg("ts") = 0,
      "Amend a live order to a new price (ticks) and new leaves quantity (lots); returns the\n"
      "number of events appended.");

  cls.def(
      "cancel_all",
      [](Core& self, std::uint64_t account_id, std::uint32_t symbol_id, std::int64_t ts) {
        Command c = make(CommandKind::kCancelAll);
        c.account_id = account_id;
        c.symbol_id = symbol_id;
        c.ts = ts;
        return run(self, c);
      },
      nb::arg("account_id"), nb::arg("symbol_id") = 0, nb::arg("ts") = 0,
      "Cancel every live order of the account (on symbol_id, or all symbols when 0); returns\n"
      "the number of events appended.");

  cls.def(
      "set_kill_switch",
      [](Core& self, std::uint64_t account_id, bool enabled, std::int64_t ts) {
        Command c = make(CommandKind::kSetKillSwitch);
        c.account_id = account_id;
        c.qty = enabled ? 1 : 0;
        c.ts = ts;
        return run(self, c);
      },
      nb::arg("account_id"), nb::arg("enabled"), nb::arg("ts") = 0,
      "Set the account's kill switch; enabling cancels its live orders. Returns the number of\n"
      "events appended.");

  cls.def(
      "set_max_open_orders",
      [](Core& self, std::uint64_t account_id, std::int64_t max_open_orders, std::int64_t ts) {
        if (max_open_orders < 0) throw nb::value_error("max_open_orders must be >= 0");
        Command c = make(CommandKind::kSetMaxOpenOrders);
        c.account_id = account_id;
        c.qty = max_open_orders;
        c.ts = ts;
        return run(self, c);
      },
      nb::arg("account_id"), nb::arg("max_open_orders"), nb::arg("ts") = 0,
      "Override the engine default cap on live GTC/DAY orders for the account (0 = unlimited).\n"
      "Emits nothing; raises ValueError when negative.");

  cls.def(
      "set_instrument_status",
      [](Core& self, std::uint32_t symbol_id, std::int64_t status, std::int64_t ts) {
        Command c = make(CommandKind::kSetInstrumentStatus);
        c.symbol_id = symbol_id;
        c.qty = status;
        c.ts = ts;
        return run(self, c);
      },
      nb::arg("symbol_id"), nb::arg("status"), nb::arg("ts") = 0,
      "Set TRADING (1) or HALTED (2). Emits nothing; an unknown symbol or status is ignored.");

  cls.def(
      "expire_day",
      [](Core& self, std::uint32_t symbol_id, std::int64_t ts) {
        Command c = make(CommandKind::kExpireDay);
        c.symbol_id = symbol_id;
        c.ts = ts;
        return run(self, c);
      },
      nb::arg("symbol_id") = 0, nb::arg("ts") = 0,
      "Expire every live DAY order (of symbol_id, or all symbols when 0); returns the number of\n"
      "events appended.");

  cls.def(
      "process",
      [](Core& self, nb::handle commands) {
        BufferView view(commands);
        if (view.size() % sizeof(Command) != 0) {
          throw nb::value_error(("command buffer length " + std::to_string(view.size()) +
                                 " is not a multiple of the record size " +
                                 std::to_string(sizeof(Command)))
                                    .c_str());
        }
        const std::size_t n = view.size() / sizeof(Command);
        if (n > 0xFFFFFFFFu) throw nb::value_error("too many commands in one batch");
        const Command* cmds = reinterpret_cast<const Command*>(view.data());
        std::unique_ptr<Command[]> aligned;
        if (reinterpret_cast<std::uintptr_t>(view.data()) % alignof(Command) != 0) {
          // A byte slice may start at any address; copy rather than read misaligned records.
          aligned.reset(new Command[n]);
          std::memcpy(aligned.get(), view.data(), view.size());
          cmds = aligned.get();
        }
        const std::size_t bad = Engine::first_invalid_command(cmds, n);
        if (bad != n) {
          throw nb::value_error(("command " + std::to_string(bad) + " has unknown kind " +
                                 std::to_string(cmds[bad].kind))
                                    .c_str());
        }
        std::size_t appended;
        {
          // Releasing the GIL lets other threads (the journal writer, gRPC's poller) run
          // during a long batch; around a call of a microsecond it only invites a thread
          // switch, and the caller then waits to get the GIL back. Measured on the engine's
          // unary path: p99 processing 107 -> 65 us when single commands keep the GIL.
          std::optional<nb::gil_scoped_release> release;
          if (n > kKeepGilUpTo) release.emplace();
          std::lock_guard<std::mutex> lock(self.mu);
          const std::size_t before = self.engine.events().size();
          self.engine.process(cmds, n);
          appended = self.engine.events().size() - before;
        }
        return appended;
      },
      nb::arg("commands"), nb::sig("def process(self, commands: typing_extensions.Buffer) -> int"),
      "Run many commands given as C-contiguous COMMAND_DTYPE records (a uint8 or COMMAND_DTYPE\n"
      "numpy array, bytes, ...); their events carry cmd_index. Returns the number of events\n"
      "appended. Raises ValueError if the length is not a multiple of the record size or a\n"
      "command kind is unknown (then nothing is run), TypeError if not a contiguous buffer.");

  cls.def(
      "take_events",
      [](Core& self) {
        std::unique_ptr<std::uint8_t[]> copy;
        std::size_t n;
        {
          std::lock_guard<std::mutex> lock(self.mu);
          const std::vector<Event>& ev = self.engine.events();
          n = ev.size() * sizeof(Event);
          copy.reset(new std::uint8_t[n == 0 ? 1 : n]);
          if (n != 0) std::memcpy(copy.get(), ev.data(), n);
          self.engine.clear_events();
        }
        std::uint8_t* data = copy.release();
        nb::capsule owner(data, [](void* p) noexcept { delete[] static_cast<std::uint8_t*>(p); });
        return nb::ndarray<nb::numpy, std::uint8_t, nb::ndim<1>>(data, {n}, owner);
      },
      "Move the buffered events out as raw EVENT_DTYPE bytes (view with .view(EVENT_DTYPE)) and\n"
      "clear the buffer.");

  cls.def(
      "clear_events",
      [](Core& self) {
        std::lock_guard<std::mutex> lock(self.mu);
        self.engine.clear_events();
      },
      "Drop the buffered events.");

  cls.def(
      "pending_events",
      [](Core& self) {
        std::lock_guard<std::mutex> lock(self.mu);
        return self.engine.events().size();
      },
      "Number of buffered events.");
}

}  // namespace hft::py
