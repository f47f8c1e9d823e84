// floodgate/core/json.hpp: nlohmann::json serializers for the core's options,
// so a configuration file maps onto them.
//
//   auto options = nlohmann::json::parse(R"({"ejection": {"base_rest": "30s"}, "latency_smoothing": 0.3})")
//                      .get<floodgate::PoolOptions>();
//   nlohmann::json j = floodgate::RetryPolicy{};   // every field, in the form below
//
// Covered: PoolOptions (with EjectionPolicy), RetryPolicy, BackoffPolicy,
// KeyedLimiterOptions, StatusOptions, PrometheusOptions and Rate. Rules, for
// these and for every area's serializers built on them (net/, async/, http/,
// redis/, kite/, telegram/ json.hpp):
// - a key left out keeps the field's default; a key the struct does not have
//   is an error that names it and the keys it has (a typo never goes unnoticed);
// - durations are text, an integer and a unit: "30s", "500ms", "5min", "1h",
//   "250us", "100ns"; a bare number is seconds ("max_wait": 1.5 is 1500ms).
//   Written back as the largest unit that divides them exactly;
// - rates are text: "30/s", "20/min", "5/250ms" (`Rate::parse`);
// - a wrong type or value throws floodgate::Error naming the key's path
//   ("RetryPolicy.max_wait: …"); nlohmann's own exceptions never escape;
// - a `Secret` is written redacted ("2402****"), never in clear, so a written
//   config holding one does not read back into the same secret: reading a
//   redacted value ("2402****", "****") is an error that says so, rather than a
//   credential the service will refuse. An empty secret is written "";
// - a file path is text; a list is an array; an optional field is null or
//   left out when it holds nothing.
// A struct joins by naming its fields in a `describe(visitor, object)` found
// by ADL and by FLOODGATE_JSON_DESCRIBED(Type) in its namespace, which
// defines its to_json/from_json from that `describe`.
// Like the file cooldown store, this header is opt-in: the rest of the core
// does not include nlohmann/json.
#pragma once

#include "floodgate/core/backoff.hpp"
#include "floodgate/core/error.hpp"
#include "floodgate/core/format.hpp"
#include "floodgate/core/keyed_limiter.hpp"
#include "floodgate/core/pool.hpp"
#include "floodgate/core/prometheus.hpp"
#include "floodgate/core/rate.hpp"
#include "floodgate/core/retry_policy.hpp"
#include "floodgate/core/secret.hpp"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace floodgate::json_detail {

using Json = nlohmann::json;

template <class T>
struct is_duration : std::false_type {};
template <class Rep, class Period>
struct is_duration<std::chrono::duration<Rep, Period>> : std::true_type {};
template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
template <class T>
struct is_vector : std::false_type {};
template <class T>
struct is_vector<std::vector<T>> : std::true_type {};

/// "30s", "500ms", "5min": the largest unit that divides `d` exactly.
template <class Rep, class Period>
std::string duration_text(std::chrono::duration<Rep, Period> d) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  struct Unit {
    std::int64_t ns;
    const char* name;
  };
  constexpr Unit units[] = {{3'600'000'000'000, "h"}, {60'000'000'000, "min"}, {1'000'000'000, "s"},
                            {1'000'000, "ms"},        {1'000, "us"},           {1, "ns"}};
  if (ns == 0) return "0s";
  for (const auto& [size, name] : units) {
    if (ns % size == 0) return fmt::format("{}{}", ns / size, name);
  }
  return fmt::format("{}ns", ns);
}

/// Reads "30s", "500ms", "5min", "1h", "250us", "100ns" or a number of seconds.
inline std::chrono::nanoseconds parse_duration(const Json& j, const std::string& path) {
  using namespace std::chrono;
  const auto invalid = [&](std::string_view why) {
    return Error(fmt::format("{}: {} (durations are \"30s\", \"500ms\", \"5min\", \"1h\", \"250us\", \"100ns\" or a "
                             "number of seconds)",
                             path, why));
  };
  if (j.is_number()) {
    const double seconds = j.get<double>();
    if (!std::isfinite(seconds) || seconds < 0 || seconds > 1e9) throw invalid("not a duration");
    return duration_cast<nanoseconds>(duration<double>(seconds));
  }
  if (!j.is_string()) throw invalid(fmt::format("expected text or a number, got {}", j.type_name()));
  const auto text = j.get_ref<const std::string&>();
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 12) throw invalid(fmt::format("'{}' is not a duration", text));
  const std::int64_t count = std::stoll(text.substr(0, digits));
  const std::string_view unit = std::string_view(text).substr(digits);
  if (unit == "h") return hours(count);
  if (unit == "min" || unit == "m") return minutes(count);
  if (unit == "s") return seconds(count);
  if (unit == "ms") return milliseconds(count);
  if (unit == "us") return microseconds(count);
  if (unit == "ns") return nanoseconds(count);
  throw invalid(fmt::format("'{}' has no known unit", text));
}

/// One field's value from JSON, checked.
template <class T>
void read_value(const Json& j, T& out, const std::string& path);

/// One field's value as JSON.
template <class T>
Json write_value(const T& value);

/// Visits a struct's fields for reading: `describe(reader, object)` calls it per field.
class Reader {
 public:
  Reader(const Json& j, std::string path) : j_(j), path_(std::move(path)) {
    if (!j_.is_object()) throw Error(fmt::format("{}: expected an object, got {}", path_, j_.type_name()));
  }
  template <class T>
  void operator()(std::string_view key, T& field) {
    known_.emplace_back(key);
    const auto it = j_.find(key);
    if (it != j_.end()) read_value(*it, field, fmt::format("{}.{}", path_, key));
  }
  /// Throws for a key no field has.
  void finish() const {
    for (const auto& [key, value] : j_.items()) {
      if (std::find(known_.begin(), known_.end(), key) == known_.end()) {
        throw Error(fmt::format("{}: unknown key '{}' (known keys: {})", path_, key, fmt::join(known_, ", ")));
      }
    }
  }

 private:
  const Json& j_;
  std::string path_;
  std::vector<std::string> known_;
};

/// Visits a struct's fields for writing.
class Writer {
 public:
  template <class T>
  void operator()(std::string_view key, const T& field) {
    j_[std::string(key)] = write_value(field);
  }
  Json take() { return std::move(j_); }

 private:
  Json j_ = Json::object();
};

/// A struct with a `describe(visitor, object)` found by ADL.
template <class T>
concept Described = requires(Reader& r, T& t) { describe(r, t); };

template <class T>
void read_object(const Json& j, T& out, std::string path) {
  Reader reader(j, std::move(path));
  describe(reader, out);
  reader.finish();
}
template <class T>
Json write_object(const T& value) {
  Writer writer;
  describe(writer, const_cast<T&>(value));  // describe names fields; the writer only reads them
  return writer.take();
}

template <class T>
void read_value(const Json& j, T& out, const std::string& path) {
  const auto wrong_type = [&](std::string_view expected) {
    return Error(fmt::format("{}: expected {}, got {}", path, expected, j.type_name()));
  };
  if constexpr (std::is_same_v<T, bool>) {
    if (!j.is_boolean()) throw wrong_type("true or false");
    out = j.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!j.is_number_integer()) throw wrong_type("an integer");
    if constexpr (std::is_unsigned_v<T>) {
      if (j.is_number_unsigned() ? j.get<std::uint64_t>() > std::numeric_limits<T>::max() : j.get<std::int64_t>() < 0) {
        throw Error(fmt::format("{}: {} is out of range (0 to {})", path, j.dump(), std::numeric_limits<T>::max()));
      }
    } else if (j.is_number_unsigned()  // nlohmann reads every non-negative integer as unsigned
                   ? j.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<T>::max())
                   : (j.get<std::int64_t>() < std::numeric_limits<T>::min() ||
                      j.get<std::int64_t>() > std::numeric_limits<T>::max())) {
      throw Error(fmt::format("{}: {} is out of range ({} to {})", path, j.dump(), std::numeric_limits<T>::min(),
                              std::numeric_limits<T>::max()));
    }
    out = j.get<T>();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!j.is_number()) throw wrong_type("a number");
    out = j.get<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!j.is_string()) throw wrong_type("text");
    out = j.get<std::string>();
  } else if constexpr (std::is_same_v<T, Secret>) {
    if (!j.is_string()) throw wrong_type("text");
    Secret secret(j.get<std::string>());
    // What write_value writes: read back, it would become a wrong credential
    // that fails only at the service, so it is refused here, where it is plain.
    if (secret.reveal() == secret.redacted()) {
      throw Error(fmt::format("{}: \"{}\" is a redacted secret (written configs hold secrets that way); "
                              "give the secret itself",
                              path, secret.redacted()));
    }
    out = std::move(secret);
  } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
    if (!j.is_string()) throw wrong_type("a file path as text");
    out = std::filesystem::path(j.get<std::string>());
  } else if constexpr (is_optional<T>::value) {
    if (j.is_null()) {
      out.reset();
    } else {
      typename T::value_type value{};
      read_value(j, value, path);
      out = std::move(value);
    }
  } else if constexpr (is_vector<T>::value) {
    if (!j.is_array()) throw wrong_type("an array");
    T values;
    for (std::size_t i = 0; i < j.size(); ++i) {
      typename T::value_type value{};
      read_value(j[i], value, fmt::format("{}[{}]", path, i));
      values.push_back(std::move(value));
    }
    out = std::move(values);
  } else if constexpr (is_duration<T>::value) {
    const auto read = parse_duration(j, path);
    const auto converted = std::chrono::duration_cast<T>(read);
    if (converted != read) {  // a seconds field given "1500ms": say so rather than cut it
      throw Error(fmt::format("{}: {} is not a whole number of {}", path, duration_text(read),
                              duration_text(T(1)).substr(1)));
    }
    out = converted;
  } else if constexpr (std::is_same_v<T, Rate>) {
    if (!j.is_string()) throw wrong_type("a rate as text (\"30/s\")");
    try {
      out = Rate::parse(j.get<std::string>());
    } catch (const Error& e) {
      throw Error(fmt::format("{}: {}", path, e.what()));
    }
  } else if constexpr (Described<T>) {
    read_object(j, out, path);
  } else {
    // A type with its own from_json (an adapter's), reached through nlohmann; its errors get the path.
    try {
      out = j.get<T>();
    } catch (const Error& e) {
      throw Error(fmt::format("{}: {}", path, e.what()));
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{}: {}", path, e.what()));
    }
  }
}

template <class T>
Json write_value(const T& value) {
  if constexpr (std::is_same_v<T, Secret>) {
    // Never in clear; an empty one (none given) as "", so that it reads back as none.
    return value.reveal().empty() ? Json("") : Json(value.redacted());
  } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
    return value.string();
  } else if constexpr (is_optional<T>::value) {
    return value ? write_value(*value) : Json(nullptr);
  } else if constexpr (is_vector<T>::value) {
    Json array = Json::array();
    for (const auto& element : value) array.push_back(write_value(element));
    return array;
  } else if constexpr (is_duration<T>::value) {
    return duration_text(value);
  } else if constexpr (std::is_same_v<T, Rate>) {
    return value.to_string();
  } else if constexpr (Described<T>) {
    return write_object(value);
  } else {
    return Json(value);
  }
}

}  // namespace floodgate::json_detail

/// Defines `to_json` and `from_json` for `Type` from its `describe`; use it in
/// `Type`'s namespace (ADL finds them there). Errors name the path from `Type`:
/// "RetryPolicy.max_wait: …".
#define FLOODGATE_JSON_DESCRIBED(Type)                                                              \
  inline void to_json(nlohmann::json& j, const Type& o) { j = ::floodgate::json_detail::write_object(o); } \
  inline void from_json(const nlohmann::json& j, Type& o) { ::floodgate::json_detail::read_object(j, o, #Type); }

namespace floodgate {

// What each struct's JSON object holds: its fields under their C++ names.

template <class V>
void describe(V& v, EjectionPolicy& o) {
  v("consecutive_failures", o.consecutive_failures);
  v("base_rest", o.base_rest);
  v("max_rest", o.max_rest);
  v("successes_to_forgive", o.successes_to_forgive);
}
template <class V>
void describe(V& v, PoolOptions& o) {
  v("ejection", o.ejection);
  v("latency_smoothing", o.latency_smoothing);
}
template <class V>
void describe(V& v, RetryPolicy& o) {
  v("max_attempts", o.max_attempts);
  v("max_wait", o.max_wait);
  v("backoff_base", o.backoff_base);
  v("backoff_cap", o.backoff_cap);
  v("flood_jitter", o.flood_jitter);
  v("flood_jitter_cap", o.flood_jitter_cap);
}
template <class V>
void describe(V& v, KeyedLimiterOptions& o) {
  v("max_keys", o.max_keys);
  v("shards", o.shards);
}

template <class V>
void describe(V& v, BackoffPolicy& o) {
  v("floor", o.floor);
  v("cap", o.cap);
  v("healthy_after", o.healthy_after);
  v("max_attempts", o.max_attempts);
}
template <class V>
void describe(V& v, StatusOptions& o) {
  v("utc", o.utc);
}
template <class V>
void describe(V& v, PrometheusOptions& o) {
  v("prefix", o.prefix);
  v("pool", o.pool);
}

FLOODGATE_JSON_DESCRIBED(EjectionPolicy)
FLOODGATE_JSON_DESCRIBED(PoolOptions)
FLOODGATE_JSON_DESCRIBED(RetryPolicy)
FLOODGATE_JSON_DESCRIBED(BackoffPolicy)
FLOODGATE_JSON_DESCRIBED(KeyedLimiterOptions)
FLOODGATE_JSON_DESCRIBED(StatusOptions)
FLOODGATE_JSON_DESCRIBED(PrometheusOptions)

/// A rate is its text: "30/s".
inline void to_json(nlohmann::json& j, const Rate& rate) { j = rate.to_string(); }
inline void from_json(const nlohmann::json& j, Rate& rate) { json_detail::read_value(j, rate, "Rate"); }

}  // namespace floodgate
