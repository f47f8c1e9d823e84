// floodgate/core/outcome.hpp: what one call's answer means. The one
// vocabulary every adapter classifies into and every component acts on.
//
// An adapter turns each reply (or the lack of one) into exactly one kind:
//
//   kind           what happened                                  the credential   the call
//   success        the server did it                              counts a success done
//   flood_wait     told to wait N seconds (FLOOD_WAIT_N, 429)     cools N seconds  moves on at once
//   not_sent       the request never reached the server (connect  counts a failure backs off, retried
//                  or TLS failed, nothing written, 503)                            anywhere
//   maybe_applied  the request was written, the answer was lost   counts a failure retried only if the
//                  (read timeout, connection reset mid-reply,                      call is idempotent;
//                  an unreadable body, most 5xx)                                   else outcome_unknown
//   auth_failed    the server rejected the credential (401,       disabled         moves on at once
//                  revoked session)
//   rejected       the request itself cannot succeed (400, 404,   not held against ends with `error()`
//                  a bad certificate, a local file error)         it
//
// `outcome_traits(kind)` is that table in code: the pool (core/pool.hpp) reads
// its first column, the retry executor (async/retry_executor.hpp) its second.
// No other place in the library switches on the kind.
//
//   lease.report(floodgate::Outcome<>::flood_wait(std::chrono::seconds(35)));
//   return floodgate::Outcome<Message>::success(std::move(message));   // from a retry-executor op
//
// Waits from servers are clamped to `kMaxServerWait` (saturating, never
// wrapping), so a `FLOOD_WAIT_9300000000` is a very long cooldown, not an
// overflowed clock.
#pragma once

#include "floodgate/core/error.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

namespace floodgate {

enum class OutcomeKind : std::uint8_t { success, flood_wait, not_sent, maybe_applied, auth_failed, rejected };

/// Whether a flood wait binds the whole credential or only the destination
/// (chat, symbol) the call was addressed to.
enum class CooldownScope : std::uint8_t { credential, destination };

/// The longest wait floodgate takes from a server (366 days); longer ones are
/// clamped to it. Keeps every time-point sum far from overflow.
inline constexpr std::chrono::seconds kMaxServerWait{std::chrono::hours(24 * 366)};

/// A server-supplied wait in whole seconds, clamped to [0, kMaxServerWait].
constexpr std::chrono::seconds clamp_server_wait(std::int64_t seconds) noexcept {
  return std::chrono::seconds(std::clamp<std::int64_t>(seconds, 0, kMaxServerWait.count()));
}

/// What a kind means for the credential and for the call.
struct OutcomeTraits {
  // For the pool's health record.
  bool counts_as_failure;  ///< a failure of the credential (health, consecutive failures, ejection)
  bool disables;           ///< the credential is taken out of rotation
  bool cools;              ///< the credential (or credential × destination) cools for the wait
  // For the retry executor.
  bool ends_call;          ///< the call ends with this outcome (its value or its error)
  bool backs_off;          ///< a retry waits for the backoff first (else it moves on at once)
  bool may_be_applied;     ///< a retry would repeat a request the server may have acted on
};

constexpr OutcomeTraits outcome_traits(OutcomeKind kind) noexcept {
  switch (kind) {
    case OutcomeKind::success: return {false, false, false, true, false, false};
    case OutcomeKind::flood_wait: return {false, false, true, false, false, false};
    case OutcomeKind::not_sent: return {true, false, false, false, true, false};
    case OutcomeKind::maybe_applied: return {true, false, false, false, true, true};
    case OutcomeKind::auth_failed: return {true, true, false, false, false, false};
    case OutcomeKind::rejected: return {false, false, false, true, false, false};
  }
  return {true, false, false, true, false, false};
}

constexpr const char* to_string(OutcomeKind kind) noexcept {
  switch (kind) {
    case OutcomeKind::success: return "success";
    case OutcomeKind::flood_wait: return "flood_wait";
    case OutcomeKind::not_sent: return "not_sent";
    case OutcomeKind::maybe_applied: return "maybe_applied";
    case OutcomeKind::auth_failed: return "auth_failed";
    case OutcomeKind::rejected: return "rejected";
  }
  return "unknown";
}

template <class T = void>
class Outcome;

/// One call's classified answer, without a value: what `Lease::report` takes.
template <>
class Outcome<void> {
 public:
  static Outcome success() { return Outcome(OutcomeKind::success); }
  /// Cool for `wait` (clamped to kMaxServerWait), for the credential or only the call's destination.
  template <class Rep, class Period>
  static Outcome flood_wait(std::chrono::duration<Rep, Period> wait, CooldownScope scope = CooldownScope::credential,
                            std::string description = {}) {
    Outcome o(OutcomeKind::flood_wait, std::move(description));
    o.wait_ = clamp_wait(wait);
    o.scope_ = scope;
    return o;
  }
  static Outcome not_sent(std::string description) { return Outcome(OutcomeKind::not_sent, std::move(description)); }
  static Outcome maybe_applied(std::string description) {
    return Outcome(OutcomeKind::maybe_applied, std::move(description));
  }
  static Outcome auth_failed(std::string description) {
    return Outcome(OutcomeKind::auth_failed, std::move(description));
  }
  /// Ends the call with `error` (errc::bad_request when the server refused the request).
  static Outcome rejected(std::string description, std::error_code error = make_error_code(errc::bad_request)) {
    Outcome o(OutcomeKind::rejected, std::move(description));
    o.error_ = error;
    return o;
  }

  OutcomeKind kind() const noexcept { return kind_; }
  OutcomeTraits traits() const noexcept { return outcome_traits(kind_); }
  /// The wait of a flood_wait, in nanoseconds (never more than kMaxServerWait).
  std::chrono::nanoseconds wait() const noexcept { return wait_; }
  CooldownScope scope() const noexcept { return scope_; }
  /// The server's words (adapters build it from the reply: never a secret).
  const std::string& description() const noexcept { return description_; }
  /// The error a `rejected` call ends with.
  std::error_code error() const noexcept { return error_; }

  /// The same outcome with another wait (the executor adds its jitter).
  Outcome& set_wait(std::chrono::nanoseconds wait) noexcept {
    wait_ = clamp_wait(wait);
    return *this;
  }

 protected:
  explicit Outcome(OutcomeKind kind, std::string description = {})
      : kind_(kind), description_(std::move(description)) {}

 private:
  template <class Rep, class Period>
  static std::chrono::nanoseconds clamp_wait(std::chrono::duration<Rep, Period> wait) noexcept {
    // Compare in the caller's unit first: converting a huge wait to nanoseconds would overflow.
    if (wait <= std::chrono::duration<Rep, Period>::zero()) return std::chrono::nanoseconds::zero();
    if (std::chrono::duration<double>(wait) >= std::chrono::duration<double>(kMaxServerWait)) return kMaxServerWait;
    return std::chrono::ceil<std::chrono::nanoseconds>(wait);
  }

  OutcomeKind kind_;
  CooldownScope scope_ = CooldownScope::credential;
  std::chrono::nanoseconds wait_{0};
  std::string description_;
  std::error_code error_;
};

/// An outcome that carries the call's value on success: what a retry-executor
/// operation returns. Converts to `Outcome<>` (slicing off the value) for reports.
template <class T>
class Outcome : public Outcome<void> {
 public:
  using value_type = T;

  static Outcome success(T value) {
    Outcome o(Outcome<void>::success());
    o.value_.emplace(std::move(value));
    return o;
  }
  template <class Rep, class Period>
  static Outcome flood_wait(std::chrono::duration<Rep, Period> wait, CooldownScope scope = CooldownScope::credential,
                            std::string description = {}) {
    return Outcome(Outcome<void>::flood_wait(wait, scope, std::move(description)));
  }
  static Outcome not_sent(std::string description) { return Outcome(Outcome<void>::not_sent(std::move(description))); }
  static Outcome maybe_applied(std::string description) {
    return Outcome(Outcome<void>::maybe_applied(std::move(description)));
  }
  static Outcome auth_failed(std::string description) {
    return Outcome(Outcome<void>::auth_failed(std::move(description)));
  }
  static Outcome rejected(std::string description, std::error_code error = make_error_code(errc::bad_request)) {
    return Outcome(Outcome<void>::rejected(std::move(description), error));
  }

  /// The same classification as `plain`, without a value (for any kind but success).
  explicit Outcome(Outcome<void> plain) : Outcome<void>(std::move(plain)) {}

  /// The value of a success.
  T& value() & { return *value_; }
  T&& value() && { return std::move(*value_); }

 private:
  std::optional<T> value_;
};

}  // namespace floodgate
