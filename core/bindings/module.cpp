// Module definition of hft._core and the layout() introspection used by the layout test.
#include <nanobind/stl/map.h>
#include <nanobind/stl/string.h>

#include <cstddef>
#include <map>
#include <string>

#include "bindings.hpp"

namespace hft::py {

BufferView::BufferView(nb::handle obj) {
  // PyBUF_SIMPLE asks for one contiguous block of bytes: numpy refuses it for a
  // non-contiguous array, which becomes the ValueError/TypeError raised below.
  if (PyObject_GetBuffer(obj.ptr(), &view_, PyBUF_SIMPLE) != 0) {
    PyErr_Clear();
    throw nb::type_error("expected a C-contiguous buffer (bytes, bytearray or numpy array)");
  }
}

BufferView::~BufferView() { PyBuffer_Release(&view_); }

void bind_layout(nb::module_& m) {
  m.def(
      "layout",
      []() {
        std::map<std::string, std::size_t> out;
#define HFT_FIELD(prefix, T, f) out[prefix "." #f] = offsetof(T, f)
        out["command.size"] = sizeof(Command);
        HFT_FIELD("command", Command, kind);
        HFT_FIELD("command", Command, side);
        HFT_FIELD("command", Command, type);
        HFT_FIELD("command", Command, tif);
        HFT_FIELD("command", Command, stp);
        HFT_FIELD("command", Command, post_only);
        HFT_FIELD("command", Command, symbol_id);
        HFT_FIELD("command", Command, order_id);
        HFT_FIELD("command", Command, account_id);
        HFT_FIELD("command", Command, price);
        HFT_FIELD("command", Command, qty);
        HFT_FIELD("command", Command, ts);
        out["event.size"] = sizeof(Event);
        HFT_FIELD("event", Event, type);
        HFT_FIELD("event", Event, side);
        HFT_FIELD("event", Event, reason);
        HFT_FIELD("event", Event, symbol_id);
        HFT_FIELD("event", Event, cmd_index);
        HFT_FIELD("event", Event, order_count);
        HFT_FIELD("event", Event, order_id);
        HFT_FIELD("event", Event, account_id);
        HFT_FIELD("event", Event, price);
        HFT_FIELD("event", Event, qty);
        HFT_FIELD("event", Event, leaves_qty);
        HFT_FIELD("event", Event, maker_order_id);
        HFT_FIELD("event", Event, maker_account_id);
        HFT_FIELD("event", Event, maker_leaves_qty);
        HFT_FIELD("event", Event, trade_id);
        HFT_FIELD("event", Event, book_seq);
        HFT_FIELD("event", Event, ts);
#undef HFT_FIELD
        return out;
      },
      "sizeof and field offsets (bytes) of Command and Event, e.g. {\"command.size\": 56,\n"
      "\"event.price\": 32, ...}; must equal COMMAND_DTYPE and EVENT_DTYPE.");
}

}  // namespace hft::py

NB_MODULE(_core, m) {
  namespace nb = nanobind;
  m.doc() =
      "The C++ matching core. Prices are integer ticks, quantities integer lots, timestamps\n"
      "ns from the caller. Semantics: docs/engine-semantics.md.";
  hft::py::bind_layout(m);
  hft::py::CoreClass cls(m, "Core",
                         "One matching engine: instruments, books, accounts and an event buffer.");
  hft::py::bind_commands(cls);
  hft::py::bind_queries(cls);
  hft::py::bind_snapshot(cls);
}
