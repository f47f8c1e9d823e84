#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <unistd.h>

using namespace floodgate;
namespace fs = std::filesystem;

TEST_CASE(".env lines: comments, export, quotes", "[env]") {
  using P = std::pair<std::string, std::string>;
  CHECK(Environment::parse_line("A=1") == P{"A", "1"});
  CHECK(Environment::parse_line("  export  B = two words  ") == P{"B", "two words"});
  CHECK(Environment::parse_line("C=\"quoted # not a comment\"") == P{"C", "quoted # not a comment"});
  CHECK(Environment::parse_line("D='single \\n raw'") == P{"D", "single \\n raw"});
  CHECK(Environment::parse_line("E=\"esc \\\" \\n\" # trailing") == P{"E", "esc \" \n"});
  CHECK(Environment::parse_line("F=value # comment") == P{"F", "value"});
  CHECK(Environment::parse_line("G=") == P{"G", ""});
  CHECK(Environment::parse_line("# comment") == P{});
  CHECK(Environment::parse_line("   ") == P{});
  CHECK_FALSE(Environment::parse_line("no equals sign"));
  CHECK_FALSE(Environment::parse_line("1BAD=x"));
  CHECK_FALSE(Environment::parse_line("H=\"unterminated"));
  CHECK_FALSE(Environment::parse_line("I=\"x\" junk"));
}

TEST_CASE(".env: a tab before an inline comment ends the value", "[env]") {
  // Found under faults: `value<TAB>#comment` kept the comment in the value.
  using P = std::pair<std::string, std::string>;
  CHECK(Environment::parse_line("A=value\t# comment") == P{"A", "value"});
  CHECK(Environment::parse_line("B=value \t #comment") == P{"B", "value"});
  CHECK(Environment::parse_line("C=va#lue") == P{"C", "va#lue"});  // no blank before '#': part of the value
  CHECK(Environment::parse_line("D=\"x\"\t# comment") == P{"D", "x"});
}

TEST_CASE(".env: a file starting with a UTF-8 byte order mark loads", "[env]") {
  // Found under faults: Windows editors save a BOM and the first line was rejected.
  const auto file = fs::temp_directory_path() / ("floodgate-env-bom-" + std::to_string(::getpid()));
  std::ofstream(file, std::ios::binary) << "\xEF\xBB\xBFMULTITOKEN1=111:one\nMULTITOKEN2=222:two\n";
  auto env = Environment::from_values({});
  const bool loaded = env.load_dotenv(file);
  fs::remove(file);
  REQUIRE(loaded);
  CHECK(env.get("MULTITOKEN1") == "111:one");
  CHECK(env.get("MULTITOKEN2") == "222:two");
  // A BOM anywhere but the start of the file is still an error.
  CHECK_FALSE(Environment::parse_line("\xEF\xBB\xBF" "A=1"));
}

TEST_CASE("bot tokens: TELEGRAM_BOT_TOKEN and MULTITOKEN1..10 with gaps", "[env]") {
  auto env = Environment::from_values({{"TELEGRAM_BOT_TOKEN", "111:main"}, {"MULTITOKEN1", "222:one"},
                                       {"MULTITOKEN3", "333:three"}, {"MULTITOKEN10", "444:ten"},
                                       {"MULTITOKEN11", "ignored"}});
  const auto tokens = bot_tokens_from(env);
  REQUIRE(tokens.size() == 4);
  CHECK(tokens[0].id == "token-0");
  CHECK(tokens[1].id == "token-1");
  CHECK(tokens[2].id == "token-3");
  CHECK(tokens[3].id == "token-10");
  CHECK(tokens[3].payload.token.reveal() == "444:ten");
}

TEST_CASE("a repeated bot token is an error naming both variables", "[env]") {
  auto env = Environment::from_values({{"TELEGRAM_BOT_TOKEN", "123456789:SECRETVALUE"}, {"MULTITOKEN2", "123456789:SECRETVALUE"}});
  try {
    bot_tokens_from(env);
    FAIL("expected EnvError");
  } catch (const EnvError& e) {
    CHECK_THAT(e.what(), Catch::Contains("MULTITOKEN2") && Catch::Contains("TELEGRAM_BOT_TOKEN"));
    CHECK_THAT(e.what(), !Catch::Contains("SECRETVALUE"));
  }
}

TEST_CASE("MTProto pairs: TELEGRAM_API_ID/HASH then _2.._10", "[env]") {
  auto env = Environment::from_values({{"TELEGRAM_API_ID", "12345"}, {"TELEGRAM_API_HASH", "0123456789abcdef"},
                                       {"TELEGRAM_API_ID_2", "67890"}, {"TELEGRAM_API_HASH_2", "fedcba9876543210"}});
  const auto apps = mtproto_apps_from(env);
  REQUIRE(apps.size() == 2);
  CHECK(apps[0].id == "account1");
  CHECK(apps[0].payload.api_id == 12345);
  CHECK(apps[1].id == "account2");
  CHECK(apps[1].payload.api_hash.reveal() == "fedcba9876543210");
}

TEST_CASE("half-configured pairs are errors naming the missing variable", "[env]") {
  auto message_of = [](std::map<std::string, std::string, std::less<>> values, auto loader) {
    try {
      loader(Environment::from_values(std::move(values)));
    } catch (const EnvError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(message_of({{"TELEGRAM_API_ID_3", "1"}}, mtproto_apps_from) ==
        "TELEGRAM_API_HASH_3 is missing (TELEGRAM_API_ID_3 is set)");
  CHECK(message_of({{"TELEGRAM_API_HASH", "abcdef0123456789"}}, mtproto_apps_from) ==
        "TELEGRAM_API_ID is missing (TELEGRAM_API_HASH is set)");
  CHECK(message_of({{"TELEGRAM_API_ID_2", "12x"}, {"TELEGRAM_API_HASH_2", "h"}}, mtproto_apps_from) ==
        "TELEGRAM_API_ID_2 must be a positive integer");
  CHECK(message_of({{"KITE_API_KEY_2", "k"}}, kite_keys_from) ==
        "KITE_ACCESS_TOKEN_2 is missing (KITE_API_KEY_2 is set)");
  CHECK(message_of({{"KITE_ACCESS_TOKEN", "t"}}, kite_keys_from) ==
        "KITE_API_KEY is missing (KITE_ACCESS_TOKEN is set)");
}

TEST_CASE("Kite keys: numbered, and unnumbered as API-1", "[env]") {
  auto numbered = kite_keys_from(Environment::from_values(
      {{"KITE_API_KEY_1", "key1"}, {"KITE_ACCESS_TOKEN_1", "tok1"}, {"KITE_API_KEY_4", "key4"}, {"KITE_ACCESS_TOKEN_4", "tok4"}}));
  REQUIRE(numbered.size() == 2);
  CHECK(numbered[1].id == "API-4");
  CHECK(numbered[1].payload.access_token.reveal() == "tok4");
  auto plain = kite_keys_from(Environment::from_values({{"KITE_API_KEY", "k"}, {"KITE_ACCESS_TOKEN", "t"}}));
  REQUIRE(plain.size() == 1);
  CHECK(plain[0].id == "API-1");
}

TEST_CASE("the process environment wins over .env, which fills the gaps", "[env]") {
  const auto path = fs::temp_directory_path() / "floodgate-env-test.env";
  std::ofstream(path) << "# bot settings\n"
                         "export FLOODGATE_TEST_A=from-file\n"
                         "FLOODGATE_TEST_B='file only'\n"
                         "\n";
  ::setenv("FLOODGATE_TEST_A", "from-process", 1);
  auto env = Environment::from_process();
  CHECK(env.load_dotenv(path));
  CHECK(env.get("FLOODGATE_TEST_A") == "from-process");
  CHECK(env.get("FLOODGATE_TEST_B") == "file only");
  CHECK_FALSE(env.get("FLOODGATE_TEST_NOT_SET"));
  CHECK_FALSE(env.load_dotenv("/nonexistent/.env"));
  ::unsetenv("FLOODGATE_TEST_A");

  std::ofstream(path) << "GOOD=1\nthis line is wrong\n";
  try {
    env.load_dotenv(path);
    FAIL("expected EnvError");
  } catch (const EnvError& e) {
    CHECK_THAT(e.what(), Catch::EndsWith(":2: expected KEY=value"));
  }
  fs::remove(path);
}
