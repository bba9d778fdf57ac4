// State hash, snapshot and restore.
#include <vector>

#include "bindings.hpp"

namespace hft::py {

void bind_snapshot(CoreClass& cls) {
  cls.def(
      "state_hash",
      [](Core& self) {
        std::lock_guard<std::mutex> lock(self.mu);
        return self.engine.state_hash();
      },
      "64-bit hash of the whole state as specified in docs/engine-semantics.md.");

  cls.def(
      "snapshot",
      [](Core& self) {
        std::vector<std::uint8_t> image;
        {
          std::lock_guard<std::mutex> lock(self.mu);
          image = self.engine.snapshot();
        }
        return nb::bytes(image.data(), image.size());
      },
      "Versioned, checksummed binary image of the full state (not the event buffer).");

  cls.def(
      "restore",
      [](Core& self, nb::handle data) {
        BufferView view(data);
        std::lock_guard<std::mutex> lock(self.mu);
        self.engine.restore(view.data(), view.size());
      },
      nb::arg("data"), nb::sig("def restore(self, data: typing_extensions.Buffer) -> None"),
      "Load a snapshot into an empty core. Raises ValueError on malformed data or when the core\n"
      "already holds instruments (and then changes nothing).");
}

}  // namespace hft::py
