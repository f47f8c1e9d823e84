// floodgate/redis/error.hpp: why a Redis command did not get an answer.
//
//   unavailable    no connection to Redis now (refused, unreachable, lost,
//                  backing off before the next attempt): the command was not sent
//   timeout        no answer within the command timeout: the command may have
//                  run; the connection is dropped and dialled again
//   connection_lost the connection broke after the command was written: it may
//                  have run
//   server_error   Redis answered with an error reply (its text is in the reply)
//   protocol_error Redis' bytes could not be decoded; the connection is dropped
// Wrong credentials end commands with floodgate::errc::auth_failed, closing
// the client with floodgate::errc::shut_down.
#pragma once

#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

#include "floodgate/core/error.hpp"

namespace floodgate::redis {

enum class errc {
  unavailable = 1,
  timeout,
  connection_lost,
  server_error,
  protocol_error,
};

const std::error_category& category() noexcept;

inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

/// Thrown when Redis is required (FailurePolicy::fail_closed) and cannot be
/// used; the message names the URL with its password redacted.
class RedisError : public floodgate::Error {
 public:
  RedisError(std::error_code code, const std::string& what) : Error(what), code_(code) {}
  std::error_code code() const noexcept { return code_; }

 private:
  std::error_code code_;
};

/// What floodgate does while Redis cannot be reached.
enum class FailurePolicy {
  /// Carry on with what this process knows (its local limiters, the file
  /// store given as fallback), log a warning, and share again once Redis is back.
  fail_open,
  /// Refuse: opening the store throws RedisError, a limiter check fails with
  /// redis::errc::unavailable. Nothing is sent on unshared state.
  fail_closed,
};
/// "fail_open" or "fail_closed", as in a JSON config (redis/json.hpp).
constexpr std::string_view to_string(FailurePolicy policy) noexcept {
  return policy == FailurePolicy::fail_open ? "fail_open" : "fail_closed";
}

}  // namespace floodgate::redis

template <>
struct std::is_error_code_enum<floodgate::redis::errc> : std::true_type {};
