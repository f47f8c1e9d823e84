#include "floodgate/http/rate_limit_headers.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <ctime>
#include <iomanip>
#include <locale>
#include <map>
#include <sstream>
#include <string>

#include "floodgate/core/outcome.hpp"

namespace floodgate::http {

namespace {

using std::chrono::nanoseconds;

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

bool contains_ci(std::string_view haystack, std::string_view lowercase_needle) {
  return std::search(haystack.begin(), haystack.end(), lowercase_needle.begin(), lowercase_needle.end(),
                     [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; }) !=
         haystack.end();
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

/// The whole of `text` as a finite, non-negative number.
std::optional<double> parse_number(std::string_view text) {
  text = trim(text);
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value) || value < 0) return std::nullopt;
  return value;
}

/// Seconds as nanoseconds, clamped to kMaxServerWait (never overflowing).
nanoseconds from_seconds(double seconds) {
  if (!(seconds > 0)) return nanoseconds::zero();
  if (seconds >= static_cast<double>(kMaxServerWait.count())) return kMaxServerWait;
  return nanoseconds(static_cast<std::int64_t>(std::ceil(seconds * 1e9)));
}

nanoseconds until(WallTime when, WallTime now) {
  if (when <= now) return nanoseconds::zero();
  return from_seconds(std::chrono::duration<double>(when - now).count());
}

/// Fields read by std::get_time, as a UTC time point, with the calendar
/// arithmetic of <chrono> (year_month_day), not our own.
std::optional<WallTime> to_time_point(const std::tm& tm) {
  using namespace std::chrono;
  const year_month_day date{year{tm.tm_year + 1900}, month{static_cast<unsigned>(tm.tm_mon + 1)},
                            day{static_cast<unsigned>(tm.tm_mday)}};
  if (!date.ok() || tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 || tm.tm_sec < 0 ||
      tm.tm_sec > 60) {
    return std::nullopt;
  }
  const sys_seconds when = sys_days{date} + hours{tm.tm_hour} + minutes{tm.tm_min} + seconds{tm.tm_sec};
  // WallTime counts nanoseconds: it holds 1678 to 2261 only. Dates outside
  // saturate a day inside that range (room for an offset or a fraction of a
  // second), never wrap; a wait until then is clamped to kMaxServerWait anyway.
  constexpr sys_seconds earliest = ceil<seconds>(WallTime::min()) + days{1};
  constexpr sys_seconds latest = floor<seconds>(WallTime::max()) - days{1};
  return time_point_cast<system_clock::duration>(std::clamp(when, earliest, latest));
}

/// Reads `text` with a std::get_time `format`; `rest` receives what follows.
bool read_time(std::string_view text, const char* format, std::tm& tm, std::string& rest) {
  std::istringstream in{std::string(text)};
  in.imbue(std::locale::classic());
  tm = std::tm{};
  in >> std::get_time(&tm, format);
  if (in.fail()) return false;
  std::getline(in, rest, '\0');
  return true;
}

/// `text` that is one of the IMF-fixdate, RFC 850 or asctime forms, ending in "GMT" (asctime: nothing).
std::optional<WallTime> http_date(std::string_view text) {
  std::tm tm{};
  std::string rest;
  for (const char* format : {"%a, %d %b %Y %H:%M:%S", "%A, %d-%b-%y %H:%M:%S"}) {
    if (read_time(text, format, tm, rest) && trim(rest) == "GMT") return to_time_point(tm);
  }
  if (read_time(text, "%a %b %d %H:%M:%S %Y", tm, rest) && trim(rest).empty()) return to_time_point(tm);
  return std::nullopt;
}

}  // namespace

std::optional<WallTime> parse_http_date(std::string_view text) { return http_date(trim(text)); }

std::optional<WallTime> parse_rfc3339(std::string_view text) {
  std::string normalised(trim(text));
  if (normalised.size() < 20) return std::nullopt;
  if (normalised[10] == 't' || normalised[10] == ' ') normalised[10] = 'T';
  // The date and time must be exactly "YYYY-MM-DDTHH:MM:SS": get_time alone is lenient about widths.
  for (std::size_t i = 0; i < 19; ++i) {
    const bool digit = std::isdigit(static_cast<unsigned char>(normalised[i])) != 0;
    const bool separator = i == 4 || i == 7 || i == 10 || i == 13 || i == 16;
    if (digit == separator) return std::nullopt;
  }
  std::tm tm{};
  std::string ignored;
  if (!read_time(std::string_view(normalised).substr(0, 19), "%Y-%m-%dT%H:%M:%S", tm, ignored)) return std::nullopt;
  auto when = to_time_point(tm);
  if (!when) return std::nullopt;
  std::string_view rest = std::string_view(normalised).substr(19);
  if (!rest.empty() && rest.front() == '.') {  // fraction of a second
    std::size_t digits = 1;
    while (digits < rest.size() && std::isdigit(static_cast<unsigned char>(rest[digits]))) ++digits;
    if (digits == 1) return std::nullopt;
    const auto fraction = parse_number("0" + std::string(rest.substr(0, digits)));
    if (!fraction) return std::nullopt;
    *when += std::chrono::duration_cast<WallTime::duration>(std::chrono::duration<double>(*fraction));
    rest.remove_prefix(digits);
  }
  if (rest == "Z" || rest == "z") return when;
  if (rest.size() != 6 || (rest[0] != '+' && rest[0] != '-') || rest[3] != ':') return std::nullopt;
  int hours = 0;
  int minutes = 0;
  if (std::from_chars(rest.data() + 1, rest.data() + 3, hours).ptr != rest.data() + 3 ||
      std::from_chars(rest.data() + 4, rest.data() + 6, minutes).ptr != rest.data() + 6 || hours > 23 ||
      minutes > 59) {
    return std::nullopt;
  }
  const auto offset = std::chrono::hours(hours) + std::chrono::minutes(minutes);
  return rest[0] == '+' ? *when - offset : *when + offset;  // local = UTC + offset
}

std::optional<std::chrono::nanoseconds> parse_go_duration(std::string_view text) {
  text = trim(text);
  if (text.empty()) return std::nullopt;
  if (text == "0") return nanoseconds::zero();
  double seconds = 0;
  while (!text.empty()) {
    std::size_t number_end = 0;
    while (number_end < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[number_end])) || text[number_end] == '.')) {
      ++number_end;
    }
    const auto number = parse_number(text.substr(0, number_end));
    if (!number) return std::nullopt;
    text.remove_prefix(number_end);
    static constexpr std::pair<std::string_view, double> kUnits[] = {
        {"ns", 1e-9}, {"us", 1e-6}, {"\xC2\xB5s", 1e-6}, {"ms", 1e-3}, {"s", 1}, {"m", 60}, {"h", 3600}};
    const auto unit = std::find_if(std::begin(kUnits), std::end(kUnits),
                                   [&](const auto& u) { return text.starts_with(u.first); });
    if (unit == std::end(kUnits)) return std::nullopt;
    seconds += *number * unit->second;
    text.remove_prefix(unit->first.size());
  }
  return from_seconds(seconds);
}

std::optional<std::chrono::nanoseconds> parse_retry_after(std::string_view value, WallTime now) {
  value = trim(value);
  if (!value.empty() && std::all_of(value.begin(), value.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    std::int64_t seconds = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec == std::errc::result_out_of_range) return kMaxServerWait;
    if (ec != std::errc() || end != value.data() + value.size()) return std::nullopt;
    return clamp_server_wait(seconds);
  }
  if (const auto date = http_date(value)) return until(*date, now);
  return std::nullopt;
}

std::optional<std::chrono::nanoseconds> parse_reset(std::string_view value, WallTime now) {
  value = trim(value);
  if (const auto number = parse_number(value)) {
    if (*number >= 1e9) {  // epoch seconds (compared as doubles: a huge value must not overflow a time point)
      return from_seconds(*number - std::chrono::duration<double>(now.time_since_epoch()).count());
    }
    return from_seconds(*number);
  }
  if (const auto duration = parse_go_duration(value)) return duration;
  if (const auto date = parse_rfc3339(value)) return until(*date, now);
  if (const auto date = http_date(value)) return until(*date, now);
  return std::nullopt;
}

std::optional<std::chrono::nanoseconds> announced_cooldown(const net::HttpHeaders& headers, WallTime now) {
  // Family: the header name without its "remaining"/"reset" word, e.g.
  // "x-ratelimit--requests" for x-ratelimit-remaining-requests and x-ratelimit-reset-requests.
  struct Family {
    bool exhausted = false;
    std::optional<nanoseconds> reset;
  };
  std::map<std::string, Family, std::less<>> families;
  std::optional<nanoseconds> longest;
  auto consider = [&](nanoseconds wait) { longest = longest ? std::max(*longest, wait) : wait; };

  for (const auto& [raw_name, value] : headers) {
    if (!contains_ci(raw_name, "ratelimit") && !contains_ci(raw_name, "rate-limit")) continue;  // most headers
    std::string name = lowercase(raw_name);
    if (const auto at = name.find("rate-limit"); at != std::string::npos) name.replace(at, 10, "ratelimit");
    if (name.find("ratelimit") == std::string::npos) continue;
    if (name == "ratelimit") {  // IETF draft: "limit=100, remaining=0, reset=50" (or r=0, t=50)
      std::optional<double> remaining;
      std::optional<double> reset;
      std::istringstream fields{std::string(value)};
      for (std::string field; std::getline(fields, field, ',');) {
        const auto equals = field.find('=');
        if (equals == std::string::npos) continue;
        const auto key = trim(std::string_view(field).substr(0, equals));
        const auto number = parse_number(std::string_view(field).substr(equals + 1));
        if (key == "remaining" || key == "r") remaining = number;
        if (key == "reset" || key == "t") reset = number;
      }
      if (remaining && *remaining == 0 && reset) consider(from_seconds(*reset));
      continue;
    }
    for (const std::string_view word : {"remaining", "reset"}) {
      const auto at = name.find(word);
      if (at == std::string::npos) continue;
      std::string family = name;
      family.erase(at, word.size());
      if (word == "remaining") {
        const auto number = parse_number(value);
        if (number && *number < 1) families[family].exhausted = true;  // "0", "0.0"
      } else if (!family.ends_with("-after")) {
        families[family].reset = parse_reset(value, now);
      } else {  // Discord's x-ratelimit-reset-after: seconds, belongs to x-ratelimit-remaining
        family.resize(family.size() - 6);
        if (const auto seconds = parse_number(value)) families[family].reset = from_seconds(*seconds);
      }
      break;
    }
  }
  for (const auto& [family, state] : families) {
    if (state.exhausted && state.reset) consider(*state.reset);
  }
  return longest;
}

}  // namespace floodgate::http
