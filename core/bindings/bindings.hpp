// Shared declarations of the nanobind layer (the only place that sees Python headers).
#pragma once

#include <nanobind/nanobind.h>

#include <mutex>

#include "hft/engine.hpp"

namespace hft::py {

namespace nb = nanobind;

/// The Python-visible core. process() runs without the GIL, so every method takes the mutex
/// to keep a concurrent call from another Python thread from racing with it.
struct Core {
  Core(std::uint64_t max_orders, std::int64_t default_max_open_orders)
      : engine(max_orders, default_max_open_orders) {}
  hft::Engine engine;
  std::mutex mu;
};

using CoreClass = nb::class_<Core>;

void bind_layout(nb::module_& m);
void bind_commands(CoreClass& cls);
void bind_queries(CoreClass& cls);
void bind_snapshot(CoreClass& cls);

/// A C-contiguous read-only view of any buffer-protocol object, released on scope exit.
class BufferView {
 public:
  explicit BufferView(nb::handle obj);
  ~BufferView();
  BufferView(const BufferView&) = delete;
  BufferView& operator=(const BufferView&) = delete;
  [[nodiscard]] const std::uint8_t* data() const {
    return static_cast<const std::uint8_t*>(view_.buf);
  }
  [[nodiscard]] std::size_t size() const { return static_cast<std::size_t>(view_.len); }

 private:
  Py_buffer view_{};
};

}  // namespace hft::py
