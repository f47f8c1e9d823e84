// floodgate/core/prometheus.hpp: credential health in the Prometheus text
// exposition format (version 0.0.4).
//
// One source (a pool, a Kite manager: anything with HealthSnapshots):
//
//   response.body = floodgate::prometheus_text(pool.snapshot(), {.pool = "bots"});
//
// Several sources on one page: a registry. Each metric family appears once,
// with its `# HELP` and `# TYPE` lines, followed by the series of every
// source, told apart by their `pool` label:
//
//   floodgate::PrometheusRegistry metrics("mybot");   // names: mybot_requests_total, …
//   metrics.add("bots", [&] { return bots.snapshot(); });
//   metrics.add("mtproto", [&] { return accounts.snapshot(); });
//   metrics.add("kite", [&] { return kite->snapshot(); });
//   response.body = metrics.text();    // thread-safe; sources are read at each call
//
// Names are checked, not rewritten: a prefix must match the metric name rule
// `[a-zA-Z_:][a-zA-Z0-9_:]*` (so "my-bot" is refused: floodgate::Error names
// it and suggests "my_bot"); a silently rewritten name would not be the one
// the dashboards query. Label values (credential ids, pool names) may be any
// text: backslash, double quote and newline are escaped. A registry refuses a
// second source with the same pool name (its series would collide).
// Snapshots hold only ids, never payloads, so nothing here can print a secret.
#pragma once

#include "floodgate/core/error.hpp"
#include "floodgate/core/health.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <iterator>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace floodgate {

struct PrometheusOptions {
  std::string prefix = "floodgate";  ///< metric name prefix: [a-zA-Z_:][a-zA-Z0-9_:]*
  std::string pool;                  ///< if set, every series gets a pool="…" label
};

namespace detail {

/// Prometheus label values escape backslash, double quote and newline.
inline std::string label_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

/// Whether `name` is a valid metric name: [a-zA-Z_:][a-zA-Z0-9_:]*.
inline bool is_metric_name(std::string_view name) {
  const auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':'; };
  if (name.empty() || !letter(name.front())) return false;
  return std::all_of(name.begin(), name.end(), [&](char c) { return letter(c) || (c >= '0' && c <= '9'); });
}

/// Throws floodgate::Error unless `prefix` makes valid metric names.
inline void check_metric_prefix(std::string_view prefix) {
  if (is_metric_name(prefix)) return;
  std::string suggestion;
  for (char c : prefix) {
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':';
    suggestion += allowed ? c : '_';
  }
  if (suggestion.empty() || (suggestion.front() >= '0' && suggestion.front() <= '9')) suggestion.insert(0, "_");
  throw Error(fmt::format("invalid Prometheus metric prefix '{}': metric names match [a-zA-Z_:][a-zA-Z0-9_:]*; "
                          "use '{}' for instance",
                          prefix, suggestion));
}

/// One source's series: its pool label (empty: none) and its snapshots.
struct PrometheusSource {
  std::string_view pool;
  std::span<const HealthSnapshot> snapshots;
};

/// Every family once, each with the series of every source.
inline std::string prometheus_page(std::string_view prefix, std::span<const PrometheusSource> sources) {
  check_metric_prefix(prefix);
  std::string out;
  auto family = [&](std::string_view name, std::string_view type, std::string_view help, auto value_of) {
    fmt::format_to(std::back_inserter(out), "# HELP {}_{} {}\n# TYPE {}_{} {}\n", prefix, name, help, prefix, name,
                   type);
    for (const auto& source : sources) {
      const std::string pool_label =
          source.pool.empty() ? "" : fmt::format(",pool=\"{}\"", label_escape(source.pool));
      for (const auto& s : source.snapshots) {
        fmt::format_to(std::back_inserter(out), "{}_{}{{credential=\"{}\"{}}} {}\n", prefix, name,
                       label_escape(s.id), pool_label, value_of(s));
      }
    }
  };
  using S = const HealthSnapshot&;
  family("requests_total", "counter", "Leases handed out.", [](S s) { return s.requests; });
  family("successes_total", "counter", "Calls reported successful.", [](S s) { return s.successes; });
  family("failures_total", "counter", "Calls reported failed (transient or auth).", [](S s) { return s.failures; });
  family("bad_requests_total", "counter", "Calls the service rejected as malformed.", [](S s) { return s.bad_requests; });
  family("flood_waits_total", "counter", "Flood waits (429, FLOOD_WAIT) received.", [](S s) { return s.flood_waits; });
  family("abandoned_total", "counter", "Leases dropped without a report.", [](S s) { return s.abandoned; });
  family("in_flight", "gauge", "Leases out now.", [](S s) { return s.in_flight; });
  family("up", "gauge", "1 if the credential is usable now.", [](S s) { return s.state == CredentialState::ready ? 1 : 0; });
  family("disabled", "gauge", "1 if the credential is disabled.",
         [](S s) { return s.state == CredentialState::disabled ? 1 : 0; });
  family("cooldown_seconds", "gauge", "Seconds until a cooling or resting credential is usable.",
         [](S s) { return std::chrono::duration<double>(s.cooldown_remaining).count(); });
  family("ejections", "gauge", "Current ejection multiplier after repeated failures.", [](S s) { return s.ejections; });
  family("success_rate", "gauge", "Smoothed success rate used for selection.", [](S s) { return s.smoothed_success_rate; });
  family("latency_seconds", "gauge", "Smoothed latency of successful calls.",
         [](S s) { return std::chrono::duration<double>(s.latency_ewma).count(); });
  return out;
}

}  // namespace detail

/// The snapshots of one source as a page. Throws floodgate::Error for an invalid prefix.
inline std::string prometheus_text(std::span<const HealthSnapshot> snapshots, const PrometheusOptions& options = {}) {
  const detail::PrometheusSource source{options.pool, snapshots};
  return detail::prometheus_page(options.prefix, std::span(&source, 1));
}

/// Several sources (pools, Kite managers) on one page; see the header comment.
class PrometheusRegistry {
 public:
  using Source = std::function<std::vector<HealthSnapshot>()>;

  /// Throws floodgate::Error for a prefix that does not make valid metric names.
  explicit PrometheusRegistry(std::string prefix = "floodgate") : prefix_(std::move(prefix)) {
    detail::check_metric_prefix(prefix_);
  }

  /// Adds a source whose series carry pool="`pool`". Throws floodgate::Error
  /// for an empty pool name or one already added.
  void add(std::string pool, Source snapshots) {
    if (pool.empty()) throw Error("Prometheus registry: a source needs a pool name (its series' pool label)");
    std::lock_guard lock(mutex_);
    for (const auto& [name, source] : sources_) {
      if (name == pool) throw Error(fmt::format("Prometheus registry: pool '{}' is already registered", pool));
    }
    sources_.emplace_back(std::move(pool), std::move(snapshots));
  }

  /// Removes the source named `pool`; false if there is none.
  bool remove(std::string_view pool) {
    std::lock_guard lock(mutex_);
    const auto it = std::find_if(sources_.begin(), sources_.end(), [&](const auto& s) { return s.first == pool; });
    if (it == sources_.end()) return false;
    sources_.erase(it);
    return true;
  }

  /// The page: every source read now. Sources are called under the registry's lock.
  std::string text() const {
    std::lock_guard lock(mutex_);
    std::vector<std::vector<HealthSnapshot>> taken;
    taken.reserve(sources_.size());
    for (const auto& [pool, source] : sources_) taken.push_back(source());
    std::vector<detail::PrometheusSource> views;
    views.reserve(sources_.size());
    for (std::size_t i = 0; i < sources_.size(); ++i) views.push_back({sources_[i].first, taken[i]});
    return detail::prometheus_page(prefix_, views);
  }

 private:
  std::string prefix_;
  mutable std::mutex mutex_;
  std::vector<std::pair<std::string, Source>> sources_;
};

}  // namespace floodgate
