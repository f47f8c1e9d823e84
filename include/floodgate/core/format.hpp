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
//   (core/prometheus.hpp; PrometheusRegistry puts several pools on one page)
//
// Snapshots hold only ids, never payloads, so nothing here can print a secret.
#pragma once

#include "floodgate/core/health.hpp"
#include "floodgate/core/prometheus.hpp"  // prometheus_text, PrometheusRegistry

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
