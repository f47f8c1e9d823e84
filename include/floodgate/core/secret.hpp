// floodgate/core/secret.hpp: a string that refuses to be printed.
//
// Bot tokens, api_hash values and access tokens are held in `Secret`. It
// formats (fmt, operator<<) as its first four characters followed by "****",
// e.g. "2402****", which is enough to tell two tokens apart in a status table
// and useless to an attacker. Only `.reveal()` gives the value, so every place
// that sends a secret over the wire is easy to find with grep.
//
// There is deliberately no implicit conversion to std::string or
// std::string_view: a Secret cannot reach a log line or an exception message
// by accident.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

namespace floodgate {

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}

  Secret(const Secret&) = default;
  Secret& operator=(const Secret&) = default;
  Secret(Secret&& other) noexcept : value_(std::move(other.value_)) { other.wipe(); }
  Secret& operator=(Secret&& other) noexcept {
    if (this != &other) {
      wipe();
      value_ = std::move(other.value_);
      other.wipe();
    }
    return *this;
  }
  ~Secret() { wipe(); }

  /// The value itself. Call it only where the secret leaves the process for
  /// the service it belongs to (a URL, a header, a TDLib parameter).
  const std::string& reveal() const noexcept { return value_; }

  bool empty() const noexcept { return value_.empty(); }

  /// "2402****" for long values; "****" when the value is too short (< 8
  /// characters) for a prefix to be safe to show.
  std::string redacted() const {
    if (value_.size() < 8) return "****";
    return value_.substr(0, 4) + "****";
  }

  friend bool operator==(const Secret& a, const Secret& b) noexcept { return a.value_ == b.value_; }

  friend std::ostream& operator<<(std::ostream& os, const Secret& s) { return os << s.redacted(); }

 private:
  // Overwrites the buffer before it is released, so a freed token does not
  // linger in a core dump. volatile stops the compiler from eliding the stores.
  void wipe() noexcept {
    volatile char* p = value_.data();
    for (std::size_t i = 0; i < value_.size(); ++i) p[i] = '\0';
    value_.clear();
  }

  std::string value_;
};

}  // namespace floodgate

template <>
struct fmt::formatter<floodgate::Secret> : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(const floodgate::Secret& s, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(s.redacted(), ctx);
  }
};
