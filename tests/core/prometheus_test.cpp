// The Prometheus page of one or several sources, checked by a parser of the
// text exposition format (0.0.4) written here: promtool is not in Debian.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "floodgate/core/pool.hpp"
#include "floodgate/core/prometheus.hpp"

using namespace floodgate;
using namespace std::chrono_literals;

namespace {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;  // unescaped values
  double value = 0;
};

/// The exposition format's rules, as promtool checks them: line syntax, metric
/// and label names, label escapes, float values; HELP and TYPE at most once per
/// family and before its samples; a family's samples in one block; no series twice.
class ExpositionParser {
 public:
  std::vector<Sample> parse(const std::string& text) {
    std::vector<Sample> samples;
    std::size_t start = 0;
    int number = 0;
    if (!text.empty() && text.back() != '\n') fail(0, "the page must end with a newline");
    while (start < text.size()) {
      const auto end = text.find('\n', start);
      line_ = text.substr(start, end - start);
      number_ = ++number;
      start = end + 1;
      if (line_.empty()) continue;
      if (line_.starts_with("# HELP ") || line_.starts_with("# TYPE ")) {
        directive();
      } else if (line_.front() == '#') {
        continue;  // a comment
      } else {
        samples.push_back(sample());
      }
    }
    return samples;
  }

 private:
  [[noreturn]] void fail(int number, const std::string& why) const {
    throw std::runtime_error(fmt::format("line {}: {}: '{}'", number, why, line_));
  }
  [[noreturn]] void fail(const std::string& why) const { fail(number_, why); }

  static bool is_metric_name(std::string_view n) {
    auto first = [](char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':'; };
    if (n.empty() || !first(n[0])) return false;
    for (char c : n) {
      if (!first(c) && !std::isdigit(static_cast<unsigned char>(c))) return false;
    }
    return true;
  }
  static bool is_label_name(std::string_view n) {
    return is_metric_name(n) && n.find(':') == std::string_view::npos;
  }

  void directive() {
    const bool help = line_[2] == 'H';
    const auto rest = line_.substr(7);
    const auto space = rest.find(' ');
    const auto name = rest.substr(0, space);
    if (!is_metric_name(name)) fail("invalid metric name");
    auto& family = families_[name];
    if (family.sampled) fail("HELP/TYPE after the family's samples");
    if (help) {
      if (family.help) fail("second HELP for one family");
      family.help = true;
    } else {
      if (family.type) fail("second TYPE for one family");
      family.type = true;
      const auto type = space == std::string::npos ? "" : rest.substr(space + 1);
      if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" && type != "untyped") {
        fail("unknown metric type");
      }
    }
    enter(name);
  }

  /// Samples and directives of one family come in one block.
  void enter(const std::string& name) {
    if (name == current_) return;
    if (finished_.count(name)) fail("family " + name + " continued after another began");
    if (!current_.empty()) finished_.insert(current_);
    current_ = name;
  }

  Sample sample() {
    Sample s;
    std::size_t i = 0;
    while (i < line_.size() && line_[i] != '{' && line_[i] != ' ') ++i;
    s.name = line_.substr(0, i);
    if (!is_metric_name(s.name)) fail("invalid metric name");
    if (i < line_.size() && line_[i] == '{') {
      ++i;
      while (i < line_.size() && line_[i] != '}') {
        const auto eq = line_.find('=', i);
        if (eq == std::string::npos) fail("label without '='");
        const auto label = line_.substr(i, eq - i);
        if (!is_label_name(label)) fail("invalid label name");
        if (eq + 1 >= line_.size() || line_[eq + 1] != '"') fail("label value not quoted");
        std::string value;
        std::size_t j = eq + 2;
        for (;; ++j) {
          if (j >= line_.size()) fail("unterminated label value");
          const char c = line_[j];
          if (c == '"') break;
          if (c == '\\') {
            if (++j >= line_.size()) fail("dangling escape");
            if (line_[j] == 'n') value += '\n';
            else if (line_[j] == '\\' || line_[j] == '"') value += line_[j];
            else fail("invalid escape");
          } else {
            value += c;
          }
        }
        if (!s.labels.emplace(label, value).second) fail("label given twice");
        i = j + 1;
        if (i < line_.size() && line_[i] == ',') ++i;
      }
      if (i >= line_.size()) fail("unterminated label set");
      ++i;
    }
    if (i >= line_.size() || line_[i] != ' ') fail("no value");
    const auto value_text = line_.substr(i + 1, line_.find(' ', i + 1) - (i + 1));
    std::size_t used = 0;
    try {
      s.value = std::stod(value_text, &used);
    } catch (const std::exception&) {
      fail("invalid value");
    }
    if (used != value_text.size()) fail("invalid value");
    auto& family = families_[s.name];
    family.sampled = true;
    enter(s.name);
    if (!series_.insert(fmt::format("{}{}", s.name, fmt::join(labels_text(s), ","))).second) fail("series given twice");
    return s;
  }

  static std::vector<std::string> labels_text(const Sample& s) {
    std::vector<std::string> out;
    for (const auto& [k, v] : s.labels) out.push_back(k + "=" + v);
    return out;
  }

  struct Family {
    bool help = false;
    bool type = false;
    bool sampled = false;
  };
  std::string line_;
  int number_ = 0;
  std::map<std::string, Family> families_;
  std::string current_;
  std::set<std::string> finished_;
  std::set<std::string> series_;
};

using TestPool = CredentialPool<std::string, BestHealth, ManualClock>;

}  // namespace

TEST_CASE("the exposition parser refuses what promtool refuses", "[prometheus]") {
  const std::vector<std::string> bad = {
      "my-bot_up 1\n",
      "# HELP a_up x\n# HELP a_up y\na_up 1\n",
      "# TYPE a_up gauge\n# TYPE a_up gauge\na_up 1\n",
      "a_up{x=\"1\"} 1\na_up{x=\"1\"} 2\n",
      "a_up 1\nb_up 1\na_up{x=\"2\"} 1\n",
      "a_up{x=\"a\\q\"} 1\n",
      "a_up one\n",
      "a_up 1",
  };
  for (const auto& page : bad) {
    INFO(page);
    CHECK_THROWS_AS(ExpositionParser().parse(page), std::runtime_error);
  }
  CHECK(ExpositionParser().parse("# HELP a_up x\n# TYPE a_up gauge\na_up{pool=\"q\\\"\\\\\\n\"} NaN\n").size() == 1);
}

TEST_CASE("two pools and a third source on one page: valid, HELP and TYPE once per family", "[prometheus]") {
  ManualClock clock;
  TestPool bots({}, clock);
  bots.add({"bot-1", std::string("a")});
  bots.add({"bot-2", std::string("b")});
  TestPool accounts({}, clock);
  accounts.add({"account \"main\"\n", std::string("c")});  // an id that needs escapes
  accounts.acquire()->flood_wait(30s);
  bots.acquire()->success(10ms);

  PrometheusRegistry registry("mybot");
  registry.add("bots", [&] { return bots.snapshot(); });
  registry.add("mtproto", [&] { return accounts.snapshot(); });
  registry.add("kite\\live", [] { return std::vector<HealthSnapshot>{}; });  // a manager with no keys yet

  const auto page = registry.text();
  INFO(page);
  std::vector<Sample> samples;
  REQUIRE_NOTHROW(samples = ExpositionParser().parse(page));
  std::size_t help_lines = 0;
  for (std::size_t at = page.find("# HELP mybot_up "); at != std::string::npos;
       at = page.find("# HELP mybot_up ", at + 1)) {
    ++help_lines;
  }
  CHECK(help_lines == 1);
  // 13 families x 3 credentials.
  CHECK(samples.size() == 13 * 3);
  std::map<std::pair<std::string, std::string>, double> up;
  for (const auto& s : samples) {
    if (s.name == "mybot_up") up[{s.labels.at("pool"), s.labels.at("credential")}] = s.value;
  }
  CHECK(up.at({"bots", "bot-1"}) == 1);
  CHECK(up.at({"bots", "bot-2"}) == 1);
  CHECK(up.at({"mtproto", "account \"main\"\n"}) == 0);  // cooling; the id came back through the escapes
}

TEST_CASE("an invalid prefix is refused with a clear error, a duplicate pool too", "[prometheus]") {
  try {
    PrometheusRegistry registry("my-bot");
    FAIL("accepted");
  } catch (const Error& e) {
    const std::string what = e.what();
    CHECK(what.find("'my-bot'") != std::string::npos);
    CHECK(what.find("'my_bot'") != std::string::npos);  // what to use instead
  }
  CHECK_THROWS_AS(PrometheusRegistry("9lives"), Error);
  CHECK_THROWS_AS(PrometheusRegistry(""), Error);
  CHECK_NOTHROW(PrometheusRegistry("ns:my_bot"));
  CHECK_THROWS_AS(prometheus_text({}, {.prefix = "my bot"}), Error);

  PrometheusRegistry registry;
  registry.add("bots", [] { return std::vector<HealthSnapshot>{}; });
  CHECK_THROWS_AS(registry.add("bots", [] { return std::vector<HealthSnapshot>{}; }), Error);
  CHECK(registry.remove("bots"));
  CHECK_FALSE(registry.remove("bots"));
}

TEST_CASE("prometheus_text of one pool is a valid page too", "[prometheus]") {
  ManualClock clock;
  TestPool pool({}, clock);
  pool.add({"A", std::string("a")});
  const auto snapshots = pool.snapshot();
  CHECK(ExpositionParser().parse(prometheus_text(snapshots)).size() == 13);
  CHECK(ExpositionParser().parse(prometheus_text(snapshots, {.pool = "p\"q"})).at(0).labels.at("pool") == "p\"q");
}
