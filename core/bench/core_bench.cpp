// Native benchmark of the matching core: replays a workload file (.npy of COMMAND_DTYPE
// records written by hft.bench.workload) without Python and prints one JSON object.
//
//   core_bench WORKLOAD.npy [--repeat R] [--chunk C] [--max-orders N]
//   core_bench --resting N
//
// Throughput passes run the stream through Engine::process in chunks (events cleared after
// each chunk, as a consumer draining them would) with no timer inside the loop. A separate
// latency pass times every command alone with rdtsc, converted to ns with the TSC rate
// calibrated against steady_clock over the throughput passes; the ~7 ns cost of the two
// rdtsc reads is included in the figures.
#include <sys/resource.h>
#include <time.h>
#include <x86intrin.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "hft/engine.hpp"

namespace {

using hft::Command;
using hft::Engine;

/// Reads a 1-d C-order .npy file of 56-byte structured records (NPY format v1, v2 or v3).
std::vector<Command> load_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  f.seekg(0, std::ios::end);
  const auto file_size = static_cast<std::size_t>(f.tellg());
  f.seekg(0, std::ios::beg);
  // Only the header is buffered; the records are read straight into their final array.
  std::vector<char> bytes(std::min<std::size_t>(file_size, 1u << 16));
  f.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot read " + path);
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0) {
    throw std::runtime_error(path + " is not an .npy file");
  }
  const auto major = static_cast<unsigned char>(bytes[6]);
  std::size_t header_len = 0;
  std::size_t offset = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) |
                 (static_cast<std::size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw std::runtime_error("truncated .npy header");
    for (int i = 0; i < 4; ++i) {
      header_len |= static_cast<std::size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    }
    offset = 12;
  } else {
    throw std::runtime_error("unsupported .npy version " + std::to_string(major));
  }
  if (bytes.size() < offset + header_len) throw std::runtime_error("truncated .npy header");
  const std::string header(bytes.data() + offset, header_len);
  if (header.find("'fortran_order': False") == std::string::npos) {
    throw std::runtime_error("workload must be C-ordered");
  }
  // The record layout must be COMMAND_DTYPE: its fields in order, ending with ts.
  std::size_t at = 0;
  for (const char* field :
       {"'kind'", "'side'", "'type'", "'tif'", "'stp'", "'post_only'", "'symbol_id'", "'order_id'",
        "'account_id'", "'price'", "'qty'", "'ts'"}) {
    at = header.find(field, at);
    if (at == std::string::npos) throw std::runtime_error("workload dtype is not COMMAND_DTYPE");
  }
  const auto shape_at = header.find("'shape': (");
  if (shape_at == std::string::npos) throw std::runtime_error("no shape in .npy header");
  const std::size_t n = std::strtoull(header.c_str() + shape_at + 10, nullptr, 10);
  const std::size_t data = offset + header_len;
  if (file_size - data != n * sizeof(Command)) {
    throw std::runtime_error("workload size does not match shape x 56-byte records");
  }
  std::vector<Command> cmds(n);
  f.seekg(static_cast<std::streamoff>(data), std::ios::beg);
  f.read(reinterpret_cast<char*>(cmds.data()), static_cast<std::streamsize>(n * sizeof(Command)));
  if (!f) throw std::runtime_error("cannot read the records of " + path);
  if (Engine::first_invalid_command(cmds.data(), n) != n) {
    throw std::runtime_error("workload contains an unknown command kind");
  }
  return cmds;
}

Engine make_engine(std::uint32_t symbols, std::uint64_t max_orders) {
  Engine e(max_orders, 0);
  for (std::uint32_t i = 1; i <= symbols; ++i) {
    hft::InstrumentSpec s;
    s.symbol_id = i;
    s.symbol = std::to_string(i);
    s.symbol.insert(0, 1, 'S');
    s.min_qty = 1;
    s.max_qty = 1'000'000'000;
    e.add_instrument(s);
  }
  return e;
}

/// CPU time of this thread: unlike wall time it does not grow while the scheduler runs
/// other processes, which keeps the figure meaningful on a shared machine.
double thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

double current_rss_mb() {
  std::ifstream f("/proc/self/statm");
  std::size_t pages = 0;
  std::size_t resident = 0;
  f >> pages >> resident;
  return static_cast<double>(resident) * 4096.0 / (1024.0 * 1024.0);
}

std::string percentiles_json(std::vector<std::uint32_t>& cycles, double ns_per_cycle) {
  if (cycles.empty()) return "{\"count\": 0}";
  std::sort(cycles.begin(), cycles.end());
  auto pct = [&](double p) {
    const auto i = static_cast<std::size_t>(p * static_cast<double>(cycles.size() - 1));
    return static_cast<double>(cycles[i]) * ns_per_cycle;
  };
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "{\"count\": %zu, \"p50_ns\": %.0f, \"p99_ns\": %.0f, \"p999_ns\": %.0f, "
                "\"max_ns\": %.0f}",
                cycles.size(), pct(0.5), pct(0.99), pct(0.999),
                static_cast<double>(cycles.back()) * ns_per_cycle);
  return buf;
}

int replay(const std::string& path, int repeat, std::size_t chunk, std::uint64_t max_orders) {
  const std::vector<Command> cmds = load_npy(path);
  const std::size_t n = cmds.size();
  std::uint32_t symbols = 1;
  for (const Command& c : cmds) symbols = std::max(symbols, c.symbol_id);

  using Clock = std::chrono::steady_clock;
  std::vector<double> rates;
  std::vector<double> cpu_rates;
  std::uint64_t trades = 0;
  std::uint64_t events = 0;
  std::uint64_t hash = 0;
  std::uint64_t tsc_total = 0;
  double ns_total = 0;
  for (int r = 0; r < repeat; ++r) {
    Engine e = make_engine(symbols, max_orders);
    std::uint64_t ev = 0;
    const double cpu0 = thread_cpu_ns();
    const auto t0 = Clock::now();
    const std::uint64_t c0 = __rdtsc();
    for (std::size_t i = 0; i < n; i += chunk) {
      const std::size_t k = std::min(chunk, n - i);
      e.process(cmds.data() + i, k);
      ev += e.events().size();
      e.clear_events();
    }
    const std::uint64_t c1 = __rdtsc();
    const auto t1 = Clock::now();
    const double cpu1 = thread_cpu_ns();
    cpu_rates.push_back(static_cast<double>(n) / ((cpu1 - cpu0) * 1e-9));
    const double ns = std::chrono::duration<double, std::nano>(t1 - t0).count();
    rates.push_back(static_cast<double>(n) / (ns * 1e-9));
    tsc_total += c1 - c0;
    ns_total += ns;
    trades = e.trades();
    events = ev;
    hash = e.state_hash();
  }
  const double ns_per_cycle = ns_total / static_cast<double>(tsc_total);

  // Latency pass: every command timed alone.
  constexpr std::array<const char*, 9> kNames = {"",         "submit",     "cancel",
                                                 "amend",    "cancel_all", "kill_switch",
                                                 "max_open", "status",     "expire_day"};
  std::array<std::vector<std::uint32_t>, 9> by_kind;
  std::vector<std::uint32_t> all;
  all.reserve(n);
  {
    Engine e = make_engine(symbols, max_orders);
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint64_t a = __rdtsc();
      e.execute(cmds[i], static_cast<std::uint32_t>(i % chunk));
      const std::uint64_t b = __rdtsc();
      const auto d = static_cast<std::uint32_t>(std::min<std::uint64_t>(b - a, 0xFFFFFFFFu));
      all.push_back(d);
      by_kind[cmds[i].kind].push_back(d);
      if (i % chunk == chunk - 1) e.clear_events();
    }
  }
  std::vector<double> sorted_rates = rates;
  std::sort(sorted_rates.begin(), sorted_rates.end());
  const double median = sorted_rates[sorted_rates.size() / 2];
  const double best = sorted_rates.back();
  std::sort(cpu_rates.begin(), cpu_rates.end());
  const double cpu_median = cpu_rates[cpu_rates.size() / 2];

  std::vector<std::uint32_t> all_sorted = all;
  std::sort(all_sorted.begin(), all_sorted.end());
  auto pct = [&](double p) {
    if (all_sorted.empty()) return 0.0;
    const auto i = static_cast<std::size_t>(p * static_cast<double>(all_sorted.size() - 1));
    return static_cast<double>(all_sorted[i]) * ns_per_cycle;
  };
  std::printf("{\"ops\": %zu, \"repeat\": %d, \"seconds\": %.6f, \"ops_per_s\": %.0f, ", n, repeat,
              static_cast<double>(n) / median, median);
  std::printf("\"ops_per_s_best\": %.0f, \"ops_per_cpu_s\": %.0f, ", best, cpu_median);
  std::printf("\"p50_ns\": %.0f, \"p99_ns\": %.0f, \"p999_ns\": %.0f, ", pct(0.5), pct(0.99),
              pct(0.999));
  std::printf("\"max_ns\": %.0f, \"latency_ns\": {", all_sorted.empty() ? 0.0 : pct(1.0));
  bool first = true;
  for (std::size_t k = 1; k < by_kind.size(); ++k) {
    if (by_kind[k].empty()) continue;
    std::printf("%s\"%s\": %s", first ? "" : ", ", kNames[k],
                percentiles_json(by_kind[k], ns_per_cycle).c_str());
    first = false;
  }
  std::printf("}, \"trades\": %llu, \"events\": %llu, \"state_hash\": \"%016llx\", ",
              static_cast<unsigned long long>(trades), static_cast<unsigned long long>(events),
              static_cast<unsigned long long>(hash));
  std::printf("\"tsc_ghz\": %.3f, \"chunk\": %zu, \"peak_rss_mb\": %.1f}\n", 1.0 / ns_per_cycle,
              chunk, peak_rss_mb());
  return 0;
}

int resting(std::uint64_t n) {
  const double before = current_rss_mb();
  Engine e = make_engine(1, std::max<std::uint64_t>(n, 1));
  std::vector<Command> batch(65536);
  const auto t0 = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < n;) {
    std::size_t k = 0;
    for (; k < batch.size() && i < n; ++k, ++i) {
      Command& c = batch[k];
      c = Command{};
      c.kind = 1;
      c.symbol_id = 1;
      c.type = 1;
      c.tif = 1;
      c.order_id = i + 1;
      c.account_id = i % 1000 + 1;
      c.side = static_cast<std::uint8_t>(i % 2 + 1);
      // Bids below 1,000,000 and asks above: nothing crosses; 20,000 levels in all.
      const auto depth = static_cast<std::int64_t>(i % 10'000 + 1);
      c.price = c.side == 1 ? 1'000'000 - depth : 1'000'000 + depth;
      c.qty = 10;
    }
    e.process(batch.data(), k);
    e.clear_events();
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<Command>().swap(batch);
  const double after = current_rss_mb();
  std::printf(
      "{\"resting_orders\": %zu, \"insert_ops_per_s\": %.0f, \"rss_mb\": %.1f, "
      "\"rss_before_mb\": %.1f, \"rss_for_orders_mb\": %.1f, \"bytes_per_order\": %.1f, "
      "\"peak_rss_mb\": %.1f}\n",
      e.live_orders(), static_cast<double>(n) / secs, after, before, after - before,
      n ? (after - before) * 1024.0 * 1024.0 / static_cast<double>(n) : 0.0, peak_rss_mb());
  return 0;
}

int usage() {
  std::fprintf(stderr,
               "usage: core_bench WORKLOAD.npy [--repeat R] [--chunk C] [--max-orders N]\n"
               "       core_bench --resting N\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string path;
    int repeat = 5;
    std::size_t chunk = 4096;
    std::uint64_t max_orders = 1u << 22;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> unsigned long long {
        if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
        return std::stoull(argv[++i]);
      };
      if (a == "--resting") {
        return resting(value());
      } else if (a == "--repeat") {
        repeat = static_cast<int>(std::max(1ULL, value()));
      } else if (a == "--chunk") {
        chunk = static_cast<std::size_t>(std::max(1ULL, value()));
      } else if (a == "--max-orders") {
        max_orders = value();
      } else if (!a.empty() && a[0] != '-' && path.empty()) {
        path = a;
      } else {
        return usage();
      }
    }
    if (path.empty()) return usage();
    return replay(path, repeat, chunk, max_orders);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "core_bench: %s\n", ex.what());
    return 1;
  }
}
