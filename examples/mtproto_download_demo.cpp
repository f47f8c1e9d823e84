// mtproto_download_demo: download the file of a Telegram message by its link,
// through a pool of MTProto sessions that steps around flood waits.
//
//   mtproto_download_demo https://t.me/some_channel/123
//
// With TDLib installed (libtdjson, see docs/mtproto.md) and api_id/api_hash
// pairs in the environment or ./.env (TELEGRAM_API_ID, TELEGRAM_API_HASH, then
// _2 … _10), it logs each account in (a bot with TELEGRAM_BOT_TOKEN, else a
// user: phone, code and password are asked on the terminal, once; the login
// is kept in ~/.floodgate/sessions/<account>/) and downloads the file.
//
// Without them it runs against the fake libtdjson built next to it
// (libfake_tdjson.so; or --fake PATH, or FLOODGATE_FAKE_TDJSON) with three
// accounts whose replies carry injected flood waits, and shows the pool
// moving each download to a session that may still send, with the status
// table after every step.
//
// A download is two requests that must run on one session (TDLib's file ids
// are local to the session that resolved the message): the link is resolved
// by a movable request, the file is then downloaded bound to the session that
// resolved it. If that session is told to wait, the whole download starts
// over on another one.
#include <floodgate/telegram/credentials.hpp>
#include <floodgate/core/format.hpp>
#include <floodgate/telegram/mtproto_pool.hpp>
#include <floodgate/core/cooldown_store.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <fmt/format.h>

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace tg = floodgate::telegram;
using nlohmann::json;

namespace {

constexpr int kMaxDownloadAttempts = 4;

// The file of a message's content, if it has one (the largest size of a photo).
std::optional<std::int64_t> file_of(const json& content) {
  const auto type = tg::td_type(content);
  auto id_at = [&](const char* object, const char* file) -> std::optional<std::int64_t> {
    if (!content.contains(object) || !content[object].contains(file)) return std::nullopt;
    return content[object][file].value("id", std::int64_t{0});
  };
  if (type == "messageDocument") return id_at("document", "document");
  if (type == "messageVideo") return id_at("video", "video");
  if (type == "messageAudio") return id_at("audio", "audio");
  if (type == "messageAnimation") return id_at("animation", "animation");
  if (type == "messageVoiceNote") return id_at("voice_note", "voice");
  if (type == "messagePhoto" && content.contains("photo") && !content["photo"].value("sizes", json::array()).empty()) {
    return content["photo"]["sizes"].back()["photo"].value("id", std::int64_t{0});
  }
  return std::nullopt;
}

// Where TDLib put a downloaded file: file.local.path.
std::string local_path(const json& file) {
  const auto local = file.is_object() ? file.find("local") : file.end();
  if (local == file.end() || !local->is_object() || !local->contains("path")) return "(no local path in the reply)";
  return local->at("path").is_string() ? local->at("path").get<std::string>() : "(no local path in the reply)";
}

std::string explain(std::error_code ec, const tg::MtprotoPool::Result& result) {
  std::string text = ec.message();
  if (!result.description.empty()) text += fmt::format(" ({})", result.description);
  if (result.earliest) {
    const auto wait = std::chrono::ceil<std::chrono::seconds>(*result.earliest - std::chrono::steady_clock::now());
    text += fmt::format("; a session is free again in {}s", wait.count());
  }
  return text;
}

// Resolves `link` on whichever session may send, then downloads its file on
// that same session. Returns the local path, or why not.
std::string download(tg::MtprotoPool& pool, const std::string& link) {
  for (int attempt = 1; attempt <= kMaxDownloadAttempts; ++attempt) {
    auto [ec, info] =
        pool.async_send({{"@type", "getMessageLinkInfo"}, {"url", link}}, {.destination = link}, asio::use_future).get();
    if (ec) return "cannot resolve the link: " + explain(ec, info);
    const auto& message = info.value->value("message", json());
    const auto file = message.is_object() ? file_of(message.value("content", json())) : std::nullopt;
    if (!file) return fmt::format("{} has no downloadable file (or {} cannot see it)", link, info.credential);
    fmt::print("  resolved on {} (after {} attempt(s)); file {}\n", info.credential, info.attempts, *file);

    auto [download_ec, downloaded] = pool.async_send(
        {{"@type", "downloadFile"}, {"file_id", *file}, {"priority", 1}, {"offset", 0}, {"limit", 0}, {"synchronous", true}},
        {.bound_to = info.credential}, asio::use_future).get();
    if (!download_ec) return fmt::format("downloaded by {} to {}", downloaded.credential, local_path(*downloaded.value));
    fmt::print("  download on {} refused: {}\n", info.credential, explain(download_ec, downloaded));
    if (download_ec != floodgate::errc::all_credentials_cooling) return "download failed";
    // That session must wait: start over, so the pool picks another one.
  }
  return "gave up after several sessions were told to wait";
}

// ---- the fake library (no TDLib, no credentials) ------------------------

fs::path fake_library_path(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--fake") return argv[i + 1];
  }
  if (const char* env = std::getenv("FLOODGATE_FAKE_TDJSON")) return env;
  return fs::read_symlink("/proc/self/exe").parent_path() / "libfake_tdjson.so";
}

// Three accounts: account1 is told FLOOD_WAIT_30 when it resolves a link,
// account2 "retry after 45" when it downloads, account3 answers everything.
void script_fake(const fs::path& library, std::vector<floodgate::Credential<floodgate::MtprotoApp>>& accounts) {
  void* fake = dlopen(library.c_str(), RTLD_NOW | RTLD_NOLOAD);
  auto script = fake ? reinterpret_cast<void (*)(const char*)>(dlsym(fake, "fake_td_script")) : nullptr;
  if (!script) throw floodgate::Error(fmt::format("{} is not the fake libtdjson", library.string()));
  const json document = {{"@type", "messageDocument"},
                         {"document", {{"file_name", "report.pdf"}, {"document", {{"@type", "file"}, {"id", 7}}}}}};
  const json link_info = {{"@type", "messageLinkInfo"}, {"is_public", true},
                          {"message", {{"@type", "message"}, {"id", 123}, {"content", document}}}};
  auto file = [](int account) {
    return json{{"@type", "file"}, {"id", 7},
                {"local", {{"path", fmt::format("/fake/account{}/files/documents/report.pdf", account)},
                           {"is_downloading_completed", true}}}};
  };
  const json flood = {{"@type", "error"}, {"code", 420}, {"message", "FLOOD_WAIT_30"}};
  const json too_many = {{"@type", "error"}, {"code", 429}, {"message", "Too Many Requests: retry after 45"}};
  for (int n = 1; n <= 3; ++n) {
    // Each type maps to the list of its replies, used in turn (the last one repeats).
    const json responses = {{"getMessageLinkInfo", json::array({n == 1 ? flood : link_info})},
                            {"downloadFile", json::array({n == 2 ? too_many : file(n)})}};
    script(json{{"api_id", 100 + n}, {"bot_token", "1000:demo"}, {"responses", responses}}.dump().c_str());
    accounts.push_back({fmt::format("account{}", n), {100 + n, floodgate::Secret(fmt::format("demo-hash-{}", n))}});
  }
}

// An io_context running on its own thread until this goes out of scope.
class IoThread {
 public:
  IoThread() : thread_([this] { io_.run(); }) {}
  ~IoThread() {
    work_.reset();
    thread_.join();
  }
  asio::any_io_executor executor() { return io_.get_executor(); }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::thread thread_;
};

tg::AuthPromptHandler terminal_prompt() {
  return [](const tg::AuthPrompt& prompt, tg::AuthReply reply) {
    std::thread([prompt, reply] {
      static std::mutex console;
      std::lock_guard lock(console);
      const char* what = prompt.step == tg::AuthStep::phone_number ? "phone number (+…)"
                         : prompt.step == tg::AuthStep::code       ? "login code"
                         : prompt.step == tg::AuthStep::password   ? "2FA password"
                                                                   : "e-mail or e-mail code";
      fmt::print("{}: {}{}: ", prompt.session_id, what,
                 prompt.retry_reason.empty() ? "" : fmt::format(" (rejected: {})", prompt.retry_reason));
      std::fflush(stdout);
      std::string answer;
      // At the end of input the answer is empty, which cancels the login
      // (the session then needs user action) instead of asking forever.
      if (!std::getline(std::cin, answer)) {
        answer.clear();
        fmt::print("(end of input)\n");
      }
      reply(floodgate::Secret(answer));
    }).detach();
  };
}

}  // namespace

int main(int argc, char** argv) try {
  std::string link = "https://t.me/floodgate_demo/123";
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--fake") ++i;
    else link = argv[i];
  }

  auto env = floodgate::Environment::from_process();
  env.load_dotenv(".env");
  auto accounts = floodgate::mtproto_apps_from(env);
  std::shared_ptr<tg::TdjsonLibrary> library;
  if (!accounts.empty()) {
    try {
      library = tg::TdjsonLibrary::open();
    } catch (const tg::TdjsonLoadError& e) {
      fmt::print("{}\n-> running against the fake library instead\n\n", e.what());
      accounts.clear();
    }
  }
  const bool fake = accounts.empty();
  tg::MtprotoPool::Options options;
  std::optional<fs::path> scratch;
  if (fake) {
    const auto path = fake_library_path(argc, argv);
    library = tg::TdjsonLibrary::open({.path = path});
    script_fake(path, accounts);
    scratch = fs::temp_directory_path() / fmt::format("floodgate-demo-{}", ::getpid());
    options.session.sessions_root = *scratch / "sessions";
    options.session.bot_token = floodgate::Secret("1000:demo");
    fmt::print("No TDLib or no TELEGRAM_API_ID/TELEGRAM_API_HASH: using the fake library {}\n", path.string());
  } else if (auto token = env.get("TELEGRAM_BOT_TOKEN")) {
    options.session.bot_token = floodgate::Secret(*token);
  } else {
    options.session.prompt = terminal_prompt();
  }
  const fs::path store_file = fake ? *scratch / "cooldowns.json" : tg::default_sessions_root().parent_path() / "cooldowns.json";
  floodgate::CooldownStore store(store_file, floodgate::CooldownStore::OnCorrupt::warn_and_start_empty);
  options.store = &store;
  options.retry.max_wait = std::chrono::seconds(0);  // report a wait instead of sleeping through it

  int status = 0;
  {
    IoThread io;
    tg::TdjsonClient tdjson(io.executor(), library, {.request_timeout = std::chrono::minutes(10)});
    tg::MtprotoPool pool(tdjson, accounts, std::move(options));
    if (auto ec = pool.async_wait_ready(asio::use_future).get()) {
      // deadline_exceeded: no answer from Telegram yet (the sessions keep
      // trying); cancelled: a login needs a person; else all disabled.
      fmt::print("no session is logged in: {}\n{}", ec.message(), floodgate::status_table(pool.snapshot()));
      for (const auto& account : accounts) {
        const auto* session = pool.session(account.id);
        fmt::print("  {}: {}{}\n", account.id, tg::to_string(session->state()),
                   session->reason().empty() ? "" : fmt::format(" ({})", session->reason()));
      }
      status = 1;
    } else {
      fmt::print("{} session(s):\n{}\n", accounts.size(), floodgate::status_table(pool.snapshot()));
      for (int round = 1; round <= (fake ? 3 : 1); ++round) {
        fmt::print("download {} of {}\n", round, link);
        const auto outcome = download(pool, link);
        fmt::print("  {}\n{}\n", outcome, floodgate::status_table(pool.snapshot()));
      }
    }
    pool.async_close(asio::use_future).get();  // TDLib closes each database before the process exits
  }  // then the pool, the TdjsonClient (its receive thread last) and the I/O thread end
  if (scratch) fs::remove_all(*scratch);
  return status;
} catch (const std::exception& e) {
  std::cerr << "mtproto_download_demo: " << e.what() << '\n';
  return 1;
}
