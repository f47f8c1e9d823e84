// floodgate/core/error.hpp: the library's error codes.
//
// floodgate reports failures as `std::error_code` values in the
// `floodgate::category()` category, so they travel unchanged through Asio
// completion handlers (`void(std::error_code, T)`) and compare with
// `floodgate::errc` enumerators:
//
//   if (ec == floodgate::errc::all_credentials_cooling) show_retry_later();
//
// Codes with a standard meaning also compare equal to it, so generic code
// that knows only <system_error> reads them right:
//
//   errc::cancelled          == std::errc::operation_canceled
//   errc::deadline_exceeded  == std::errc::timed_out
//   errc::io_error           == std::errc::io_error
//
// Exceptions (thrown only for programming or configuration errors, such as an
// invalid limiter rate or a malformed .env entry) derive from `floodgate::Error`.
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>

namespace floodgate {

enum class errc {
  no_credentials = 1,        ///< the pool holds no credential at all
  all_credentials_disabled,  ///< every credential is disabled or ejected for good
  all_credentials_cooling,   ///< every usable credential is cooling; see the earliest time
  unknown_credential,        ///< no credential with that id
  duplicate_credential,      ///< a credential with that id already exists
  rate_limited,              ///< a limiter refused and waiting was not allowed
  too_many_waiters,          ///< a limiter's queue of waiters is full
  deadline_exceeded,         ///< the caller's deadline passed before the work could run
  attempts_exhausted,        ///< the retry policy's attempt budget is spent
  auth_failed,               ///< the service rejected the credential
  bad_request,               ///< the service rejected the request itself; never retried
  cancelled,                 ///< the caller cancelled the operation
  malformed_response,        ///< the service answered with data we cannot decode
  shut_down,                 ///< the component was stopped
  capacity_exceeded,         ///< a fixed capacity (connections, instruments, keys) is full
  store_corrupt,             ///< a persisted file could not be parsed
  io_error,                  ///< reading or writing a local file failed
  too_many_connections,      ///< the service refused one more connection for this credential
  outcome_unknown,           ///< the request was sent and its answer lost: it may have been applied,
                             ///< and the call was not safe to repeat (see docs/retry.md)
};

class ErrorCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "floodgate"; }
  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::no_credentials: return "the pool has no credentials";
      case errc::all_credentials_disabled: return "all credentials are disabled";
      case errc::all_credentials_cooling: return "all credentials are cooling down";
      case errc::unknown_credential: return "unknown credential id";
      case errc::duplicate_credential: return "a credential with this id already exists";
      case errc::rate_limited: return "rate limited";
      case errc::too_many_waiters: return "too many operations are waiting";
      case errc::deadline_exceeded: return "deadline exceeded";
      case errc::attempts_exhausted: return "retry attempts exhausted";
      case errc::auth_failed: return "authentication failed";
      case errc::bad_request: return "bad request";
      case errc::cancelled: return "operation cancelled";
      case errc::malformed_response: return "malformed response";
      case errc::shut_down: return "shut down";
      case errc::capacity_exceeded: return "capacity exceeded";
      case errc::store_corrupt: return "persisted state is corrupt";
      case errc::io_error: return "file I/O error";
      case errc::too_many_connections: return "too many connections for this credential";
      case errc::outcome_unknown: return "the request may have been applied; its answer was lost";
    }
    return "unknown floodgate error";
  }
  std::error_condition default_error_condition(int value) const noexcept override {
    switch (static_cast<errc>(value)) {
      case errc::cancelled: return std::make_error_condition(std::errc::operation_canceled);
      case errc::deadline_exceeded: return std::make_error_condition(std::errc::timed_out);
      case errc::io_error: return std::make_error_condition(std::errc::io_error);
      default: return {value, *this};
    }
  }
};

inline const std::error_category& category() noexcept {
  static const ErrorCategory instance;
  return instance;
}

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), category()};
}

/// Base of every exception floodgate throws. Messages never contain secrets:
/// they are built with fmt from `Secret` values, which redact themselves.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace floodgate

template <>
struct std::is_error_code_enum<floodgate::errc> : std::true_type {};
