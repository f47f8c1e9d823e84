#include <floodgate/telegram/tdjson_client.hpp>

#include <floodgate/core/log.hpp>

#include "floodgate/async/detail/post_completion.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace floodgate::telegram {

namespace asio = boost::asio;

namespace {

// "@extra" of the requests shutdown() sends itself; their replies are expected.
constexpr std::string_view kInternalExtra = "floodgate.";

bool is_closed_state(const nlohmann::json& update) {
  if (td_type(update) != "updateAuthorizationState") return false;
  const auto state = update.find("authorization_state");
  return state != update.end() && td_type(*state) == "authorizationStateClosed";
}

}  // namespace

struct TdjsonClient::State {
  struct Client {
    executor_type update_executor;
    std::shared_ptr<const UpdateHandler> on_update;  // shared: a delivery in flight keeps it alive
    bool started = false;                            // has been sent a request
    bool closed = false;                             // reported authorizationStateClosed
  };

  struct Key {
    ClientId client;
    std::uint64_t extra;
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& key) const noexcept {
      return std::hash<std::uint64_t>{}(key.extra) ^ (static_cast<std::size_t>(key.client) << 1);
    }
  };

  // Built in place and moved only by construction: Boost 1.81's
  // any_completion_handler move *assignment* recurses endlessly (fixed in 1.82).
  struct Pending {
    PendingHandler handler;
    // Outstanding work, so that io_context::run() does not return while a
    // reply is awaited from the receive thread: on our executor, which runs
    // the completion first, and on the handler's, which it is dispatched to.
    executor_type io_work;
    asio::any_completion_executor handler_work;
    std::unique_ptr<asio::steady_timer> timeout;
  };

  State(executor_type ex, std::shared_ptr<TdjsonLibrary> lib, std::chrono::milliseconds poll)
      : executor(std::move(ex)),
        library(std::move(lib)),
        poll_seconds(std::chrono::duration<double>(poll).count()) {}

  void run();
  void handle(const TdjsonLibrary::Message& message);
  void deliver_update(ClientId client, nlohmann::json update);
  bool complete(const Key& key, std::error_code ec, nlohmann::json reply);
  void fail_where(std::error_code ec, const std::function<bool(const Key&)>& selected);

  // Completes a request that never reached the pending table.
  void post_completion(PendingHandler handler, std::error_code ec, nlohmann::json reply) {
    async::detail::post_completion(executor, std::move(handler), ec, std::move(reply));
  }

  const executor_type executor;
  const std::shared_ptr<TdjsonLibrary> library;
  const double poll_seconds;

  mutable std::mutex mutex;
  std::condition_variable started;  // the receive loop may begin: a first request was sent
  std::condition_variable closed;   // a client reported authorizationStateClosed
  bool sent_any = false;
  bool shutting_down = false;       // shutdown() began (it may still be closing clients)
  std::atomic<bool> stopping{false};  // the receive loop ends
  std::unordered_map<ClientId, Client> clients;
  std::unordered_map<Key, Pending, KeyHash> pending;

  std::atomic<std::uint64_t> next_extra{0};
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> malformed{0};
  std::atomic<std::uint64_t> unmatched{0};

  std::thread thread;
};

void TdjsonClient::State::run() {
  {
    // TDLib allows td_receive only once some client has been sent a request.
    std::unique_lock lock(mutex);
    started.wait(lock, [&] { return sent_any || stopping.load(); });
  }
  while (!stopping.load()) {
    auto message = library->receive(poll_seconds);
    if (!message) continue;
    try {
      handle(*message);
    } catch (const std::exception& e) {
      // Nothing TDLib sends may stop the loop that every client depends on.
      ++malformed;
      log(LogLevel::error, "tdjson: a message could not be handled ({}); dropped", e.what());
    }
  }
}

void TdjsonClient::State::handle(const TdjsonLibrary::Message& message) {
  ++received;
  auto reply = nlohmann::json::parse(message.json, nullptr, /*allow_exceptions=*/false);
  std::optional<ClientId> client = message.client_id;
  if (!client && reply.is_object()) {
    const auto id = reply.find("@client_id");
    if (id != reply.end() && id->is_number_integer()) client = id->get<ClientId>();
  }
  if (reply.is_discarded() || !reply.is_object() || !client) {
    ++malformed;
    log(LogLevel::warning, "tdjson: dropped a malformed message from {} ({} bytes)",
        library->path().filename().string(), std::strlen(message.json));
    return;
  }

  const auto extra = reply.find("@extra");
  if (extra == reply.end()) return deliver_update(*client, std::move(reply));
  if (extra->is_string() && extra->get_ref<const std::string&>().starts_with(kInternalExtra)) return;
  if (!extra->is_number_unsigned()) {
    ++unmatched;
    return;
  }
  const Key key{*client, extra->get<std::uint64_t>()};
  if (!complete(key, {}, std::move(reply))) ++unmatched;
}

void TdjsonClient::State::deliver_update(ClientId client, nlohmann::json update) {
  const bool closes = is_closed_state(update);
  executor_type update_executor;
  std::shared_ptr<const UpdateHandler> handler;
  {
    std::lock_guard lock(mutex);
    const auto it = clients.find(client);
    if (it == clients.end()) {
      ++unmatched;
      return;
    }
    update_executor = it->second.update_executor;
    handler = it->second.on_update;
    if (closes) it->second.closed = true;
  }
  if (closes) closed.notify_all();
  if (handler) {
    asio::post(update_executor, [handler, update = std::move(update)]() mutable { (*handler)(std::move(update)); });
  }
  if (closes) {
    // A closed instance answers nothing more: whatever still waits, ends now.
    fail_where(make_error_code(errc::shut_down), [client](const Key& key) { return key.client == client; });
    library->destroy_client(client);
  }
}

bool TdjsonClient::State::complete(const Key& key, std::error_code ec, nlohmann::json reply) {
  decltype(pending)::node_type node;
  {
    std::lock_guard lock(mutex);
    node = pending.extract(key);
  }
  if (node.empty()) return false;  // already completed (timeout, shutdown, close)
  auto& entry = node.mapped();
  if (entry.timeout) {
    // The timer belongs to the executor's threads: destroy (and so cancel) it there.
    asio::post(executor, [timer = std::move(entry.timeout)] {});
  }
  post_completion(std::move(entry.handler), ec, std::move(reply));
  return true;
}

void TdjsonClient::State::fail_where(std::error_code ec, const std::function<bool(const Key&)>& selected) {
  std::vector<Key> keys;
  {
    std::lock_guard lock(mutex);
    for (const auto& [key, entry] : pending) {
      if (selected(key)) keys.push_back(key);
    }
  }
  for (const auto& key : keys) complete(key, ec, nullptr);
}

TdjsonClient::TdjsonClient(executor_type executor, std::shared_ptr<TdjsonLibrary> library, Options options)
    : executor_(std::move(executor)),
      options_(options),
      state_(std::make_shared<State>(executor_, std::move(library), options.receive_poll)) {
  if (options_.tdlib_log_verbosity >= 0) {
    execute({{"@type", "setLogVerbosityLevel"}, {"new_verbosity_level", options_.tdlib_log_verbosity}});
  }
  if (!state_->library->claim_receiver()) {
    throw Error(fmt::format("tdjson: {} already has a TdjsonClient; TDLib allows one reader per process, "
                            "so share that one",
                            state_->library->path().string()));
  }
  try {
    state_->thread = std::thread([state = state_.get()] { state->run(); });
  } catch (...) {
    state_->library->release_receiver();  // shutdown() will not run: the object never existed
    throw;
  }
}

TdjsonClient::~TdjsonClient() { shutdown(); }

const TdjsonLibrary& TdjsonClient::library() const noexcept { return *state_->library; }

TdjsonClient::ClientId TdjsonClient::create_client(UpdateHandler on_update) {
  return create_client(asio::make_strand(executor_), std::move(on_update));
}

TdjsonClient::ClientId TdjsonClient::create_client(executor_type update_executor, UpdateHandler on_update) {
  const auto id = state_->library->create_client();
  std::shared_ptr<const UpdateHandler> handler;
  if (on_update) handler = std::make_shared<const UpdateHandler>(std::move(on_update));
  std::lock_guard lock(state_->mutex);
  state_->clients[id] = State::Client{std::move(update_executor), std::move(handler)};
  return id;
}

void TdjsonClient::clear_update_handler(ClientId client) {
  std::lock_guard lock(state_->mutex);
  if (const auto it = state_->clients.find(client); it != state_->clients.end()) it->second.on_update.reset();
}

void TdjsonClient::start_send(ClientId client, nlohmann::json request, std::chrono::milliseconds timeout,
                              PendingHandler handler) {
  auto& s = *state_;
  if (!request.is_object()) {
    return s.post_completion(std::move(handler), std::make_error_code(std::errc::invalid_argument), nullptr);
  }
  const State::Key key{client, ++s.next_extra};
  request["@extra"] = key.extra;
  std::string text;
  try {
    text = request.dump();
  } catch (const nlohmann::json::exception&) {  // e.g. a string that is not UTF-8
    return s.post_completion(std::move(handler), std::make_error_code(std::errc::invalid_argument), nullptr);
  }

  std::error_code refused;
  {
    std::lock_guard lock(s.mutex);
    const auto it = s.clients.find(client);
    if (s.stopping.load() || (it != s.clients.end() && it->second.closed)) {
      refused = make_error_code(errc::shut_down);
    } else if (it == s.clients.end()) {
      refused = std::make_error_code(std::errc::invalid_argument);
    } else {
      auto handler_work = asio::prefer(asio::get_associated_executor(handler, executor_),
                                       asio::execution::outstanding_work.tracked);
      State::Pending entry{std::move(handler), asio::prefer(executor_, asio::execution::outstanding_work.tracked),
                           std::move(handler_work), nullptr};
      if (timeout.count() > 0) {
        // Armed under the lock, so that the deadline cannot fire before the
        // entry exists, nor the entry complete while async_wait is starting.
        entry.timeout = std::make_unique<asio::steady_timer>(executor_, timeout);
        entry.timeout->async_wait([weak = std::weak_ptr<State>(state_), key](boost::system::error_code ec) {
          if (ec) return;  // cancelled: the reply came first
          if (auto state = weak.lock()) state->complete(key, make_error_code(errc::deadline_exceeded), nullptr);
        });
      }
      // TDLib has no way to recall a request: terminal or partial cancellation
      // ends the caller's wait and the reply, when it comes, is unmatched.
      if (auto slot = asio::get_associated_cancellation_slot(entry.handler); slot.is_connected()) {
        slot.assign([weak = std::weak_ptr<State>(state_), key](asio::cancellation_type type) {
          constexpr auto ends_now = asio::cancellation_type::terminal | asio::cancellation_type::partial;
          if ((type & ends_now) == asio::cancellation_type::none) return;
          if (auto state = weak.lock()) state->complete(key, make_error_code(errc::cancelled), nullptr);
        });
      }
      s.pending.emplace(key, std::move(entry));
      it->second.started = true;
      s.sent_any = true;
    }
  }
  // NOLINTNEXTLINE(bugprone-use-after-move): `handler` was moved only on the branch that leaves `refused` clear
  if (refused) return s.post_completion(std::move(handler), refused, nullptr);
  s.started.notify_one();
  s.library->send(client, text.c_str());
}

nlohmann::json TdjsonClient::execute(const nlohmann::json& request) {
  const auto reply = state_->library->execute(request.dump().c_str());
  auto parsed = nlohmann::json::parse(reply, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) throw Error("tdjson: td_execute returned a reply that is not JSON");
  return parsed;
}

bool TdjsonClient::wait_closed(ClientId client, std::chrono::milliseconds timeout) {
  auto& s = *state_;
  std::unique_lock lock(s.mutex);
  return s.closed.wait_for(lock, timeout, [&] {
    const auto it = s.clients.find(client);
    return it == s.clients.end() || it->second.closed || s.stopping.load();
  });
}

void TdjsonClient::shutdown() {
  auto& s = *state_;
  // First close what is still open, while the receive thread still runs:
  // TDLib aborts the process at exit if a client's database is still open.
  std::vector<ClientId> open;
  {
    std::lock_guard lock(s.mutex);
    if (s.shutting_down) return;
    s.shutting_down = true;
    for (auto& [id, client] : s.clients) {
      if (client.closed) continue;
      open.push_back(id);
      client.started = true;
    }
    if (!open.empty()) s.sent_any = true;
  }
  s.started.notify_all();
  for (const auto id : open) s.library->send(id, R"({"@type":"close","@extra":"floodgate.close"})");
  const auto deadline = std::chrono::steady_clock::now() + options_.close_timeout;
  std::optional<ClientId> wakeable;
  {
    std::unique_lock lock(s.mutex);
    auto all_closed = [&] {
      return std::all_of(open.begin(), open.end(), [&](ClientId id) { return s.clients.at(id).closed; });
    };
    if (!s.closed.wait_until(lock, deadline, all_closed)) {
      log(LogLevel::warning, "tdjson: {} TDLib client(s) did not close within {} ms; stopping anyway",
          std::count_if(open.begin(), open.end(), [&](ClientId id) { return !s.clients.at(id).closed; }),
          options_.close_timeout.count());
    }
    s.stopping = true;
    for (const auto& [id, client] : s.clients) {
      if (client.started && !client.closed) wakeable = id;
    }
  }
  s.started.notify_all();
  s.closed.notify_all();
  // td_receive may be blocked for receive_poll; a request's reply wakes it now.
  if (wakeable) s.library->send(*wakeable, R"({"@type":"testCallEmpty","@extra":"floodgate.wake"})");
  if (s.thread.joinable()) s.thread.join();
  s.library->release_receiver();
  s.fail_where(make_error_code(errc::shut_down), [](const State::Key&) { return true; });
}

TdjsonClient::Stats TdjsonClient::stats() const {
  const auto& s = *state_;
  std::lock_guard lock(s.mutex);
  return Stats{s.received.load(), s.malformed.load(), s.unmatched.load(), s.pending.size()};
}

}  // namespace floodgate::telegram
