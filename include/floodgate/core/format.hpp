// floodgate/core/format.hpp: health snapshots as text for people and for
// Prometheus.
//
//   fmt::print("{}\n", snapshot);   // "API-1 ready: 147 requests, 98.5% success, …"
//   fmt::print("{}", floodgate::status_table(pool.snapshot()));
//     ✅ API-1: Ready (98.5% success, 147 requests)
//     ⏳ API-3: FloodWait until 22:45:00 (14m 58s left)
//     🩹 API-4: Resting after failures until 22:31:10 (ejected 2×)
//     ⛔ API-2: Disabled (authentication failed)
//   response.body = floodgate::prometheus_text(pool.snapshot(), {.pool = "telegram"});
//
// Snapshots hold only ids, never payloads, so nothing here can print a secret.
#pragma once

#include "floodgate/core/health.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <chrono>
#include <ctime>
#include <span>
#include <string>
#include <string_view>

namespace floodgate {

struct StatusOptions {
  bool utc = false;  ///< print times in UTC instead of the local time zone
};

namespace detail {
inline std::string clock_time(std::chrono::system_clock::time_point t, bool utc) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
  return utc ? fmt::format("{:%H:%M:%S}", fmt::gmtime(seconds)) : fmt::format("{:%H:%M:%S}", fmt::localtime(seconds));
}

/// "14m 58s", "2h 05m", "9s": rounded up, so "0s" is never shown for a cooldown in force.
inline std::string short_duration(std::chrono::nanoseconds d) {
  const auto total = std::chrono::ceil<std::chrono::seconds>(d).count();
  if (total >= 3600) return fmt::format("{}h {:02}m", total / 3600, (total % 3600) / 60);
  if (total >= 60) return fmt::format("{}m {:02}s", total / 60, total % 60);
  return fmt::format("{}s", total);
}

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
}  // namespace detail

/// One line of the status view.
inline std::string status_line(const HealthSnapshot& s, StatusOptions options = {}) {
  switch (s.state) {
    case CredentialState::ready:
      return fmt::format("✅ {}: Ready ({:.1f}% success, {} requests)", s.id, 100.0 * s.success_ratio(), s.requests);
    case CredentialState::cooling:
      return fmt::format("⏳ {}: FloodWait until {} ({} left)", s.id,
                         detail::clock_time(*s.cooldown_until, options.utc), detail::short_duration(s.cooldown_remaining));
    case CredentialState::ejected:
      return fmt::format("🩹 {}: Resting after failures until {} (ejected {}×)", s.id,
                         detail::clock_time(*s.cooldown_until, options.utc), s.ejections);
    case CredentialState::disabled:
      return fmt::format("⛔ {}: Disabled ({})", s.id, s.disabled_reason.empty() ? "by the application" : s.disabled_reason);
  }
  return s.id;
}

/// The status view: one line per credential, each ending in a newline.
inline std::string status_table(std::span<const HealthSnapshot> snapshots, StatusOptions options = {}) {
  std::string out;
  for (const auto& s : snapshots) {
    out += status_line(s, options);
    out += '\n';
  }
  return out;
}

struct PrometheusOptions {
  std::string prefix = "floodgate";  ///< metric name prefix
  std::string pool;                  ///< if set, every series gets a pool="…" label
};

/// The snapshots in the Prometheus text exposition format (version 0.0.4).
inline std::string prometheus_text(std::span<const HealthSnapshot> snapshots, const PrometheusOptions& options = {}) {
  std::string out;
  const std::string pool_label =
      options.pool.empty() ? "" : fmt::format(",pool=\"{}\"", detail::label_escape(options.pool));
  auto family = [&](std::string_view name, std::string_view type, std::string_view help, auto value_of) {
    fmt::format_to(std::back_inserter(out), "# HELP {}_{} {}\n# TYPE {}_{} {}\n", options.prefix, name, help,
                   options.prefix, name, type);
    for (const auto& s : snapshots) {
      fmt::format_to(std::back_inserter(out), "{}_{}{{credential=\"{}\"{}}} {}\n", options.prefix, name,
                     detail::label_escape(s.id), pool_label, value_of(s));
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

}  // namespace floodgate

/// `{}` on a snapshot: a one-line summary for logs.
template <>
struct fmt::formatter<floodgate::HealthSnapshot> : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(const floodgate::HealthSnapshot& s, FormatContext& ctx) const {
    return fmt::format_to(ctx.out(), "{} {}: {} requests, {:.1f}% success, {} flood waits, {} in flight", s.id,
                          floodgate::to_string(s.state), s.requests, 100.0 * s.success_ratio(), s.flood_waits,
                          s.in_flight);
  }
};
