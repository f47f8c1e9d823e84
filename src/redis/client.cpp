// RedisClient: all connection state lives on one strand. Public methods post
// there; Asio completions come back there. Each connection attempt has a
// generation number, and a completion from an older generation is ignored, so
// a socket torn down by a timeout cannot act on the connection after it.
#include "floodgate/redis/client.hpp"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <deque>
#include <mutex>
#include <optional>
#include <random>

#include "floodgate/core/error.hpp"
#include "floodgate/core/log.hpp"

namespace floodgate::redis {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

class RedisErrorCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "floodgate.redis"; }
  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::unavailable: return "Redis is unavailable";
      case errc::timeout: return "Redis did not answer in time";
      case errc::connection_lost: return "the connection to Redis was lost before its answer";
      case errc::server_error: return "Redis answered with an error";
      case errc::protocol_error: return "Redis sent data that is not RESP";
    }
    return "unknown Redis error";
  }
};

std::string encode(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  argv.reserve(args.size());
  lengths.reserve(args.size());
  for (const auto& a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  char* out = nullptr;
  const int n = redisFormatCommandArgv(&out, static_cast<int>(args.size()), argv.data(), lengths.data());
  if (n < 0 || out == nullptr) throw std::bad_alloc();
  std::string bytes(out, static_cast<std::size_t>(n));
  redisFreeCommand(out);
  return bytes;
}

RedisReply convert(const redisReply& r) {
  RedisReply out;
  switch (r.type) {
    case REDIS_REPLY_STRING: out.type = RedisReply::Type::string; break;
    case REDIS_REPLY_STATUS: out.type = RedisReply::Type::status; break;
    case REDIS_REPLY_ERROR: out.type = RedisReply::Type::error; break;
    case REDIS_REPLY_INTEGER: out.type = RedisReply::Type::integer; break;
    case REDIS_REPLY_ARRAY: out.type = RedisReply::Type::array; break;
    default: out.type = RedisReply::Type::nil; break;
  }
  if (r.type == REDIS_REPLY_INTEGER) out.integer = r.integer;
  if ((r.type == REDIS_REPLY_STRING || r.type == REDIS_REPLY_STATUS || r.type == REDIS_REPLY_ERROR) && r.str) {
    out.text.assign(r.str, r.len);
  }
  if (r.type == REDIS_REPLY_ARRAY) {
    out.elements.reserve(r.elements);
    for (std::size_t i = 0; i < r.elements; ++i) out.elements.push_back(convert(*r.element[i]));
  }
  return out;
}

std::string sha1_hex(std::string_view text) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  if (EVP_Digest(text.data(), text.size(), digest.data(), &size, EVP_sha1(), nullptr) != 1) {
    throw Error("SHA1 of a Redis script failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < size; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

}  // namespace

const std::error_category& category() noexcept {
  static const RedisErrorCategory instance;
  return instance;
}

std::optional<std::int64_t> RedisReply::as_integer() const {
  if (type == Type::integer) return integer;
  if (type != Type::string || text.empty() || text.size() > 20) return std::nullopt;
  std::int64_t value = 0;
  std::size_t i = text[0] == '-' ? 1 : 0;
  if (i == text.size()) return std::nullopt;
  for (; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    if (__builtin_mul_overflow(value, 10, &value) || __builtin_add_overflow(value, text[i] - '0', &value)) {
      return std::nullopt;
    }
  }
  return text[0] == '-' ? -value : value;
}

Script::Script(std::string source) {
  auto text = std::make_shared<Text>();
  text->sha1 = sha1_hex(source);
  text->source = std::move(source);
  text_ = std::move(text);
}

struct RedisClient::Impl : std::enable_shared_from_this<RedisClient::Impl> {
  using Callback = std::function<void(std::error_code, RedisReply)>;
  struct Pending {
    std::string bytes;
    Callback complete;
    Clock::time_point deadline;
    std::uint64_t operation = 0;  ///< the caller's operation it serves; 0: the client's own (handshake)
  };

  // One caller's command, or script call (up to three commands: EVALSHA,
  // SCRIPT LOAD, EVALSHA): completed once, on the strand.
  struct Operation {
    std::uint64_t id = 0;
    RedisClient::Completion completion;
    bool cancelled = false;  // set on the strand; an eval sends no further step

    void finish(std::error_code ec, RedisReply reply) {
      if (auto c = std::move(completion)) c->complete(ec, std::move(reply));
    }
    static Callback completer(const std::shared_ptr<Operation>& op) {
      return [op](std::error_code ec, RedisReply reply) { op->finish(ec, std::move(reply)); };
    }
  };
  enum class State { idle, connecting, handshaking, ready, waiting, closed };

  Impl(asio::any_io_executor executor, RedisUrl u, RedisClientOptions o)
      : strand(asio::make_strand(executor)),
        url(std::move(u)),
        options(std::move(o)),
        resolver(strand),
        deadline_timer(strand),
        backoff_timer(strand),
        backoff(o.reconnect),
        rng(std::random_device{}()) {
    if (url.tls) tls_context = net::make_client_tls_context(options.tls);
  }

  ~Impl() {
    if (reader) redisReaderFree(reader);
  }

  // ---- everything below runs on the strand ----

  void connect() {
    if (state == State::closed) return;
    state = State::connecting;
    const auto gen = ++generation;
    reset_transport();
    arm_connect_deadline(gen);
    resolver.async_resolve(url.host, std::to_string(url.port),
                           [self = shared_from_this(), gen](boost::system::error_code ec, const tcp::resolver::results_type& r) {
                             if (gen != self->generation) return;
                             if (ec) return self->attempt_failed("cannot resolve", ec.message(), errc::unavailable);
                             self->connect_to(r, gen);
                           });
  }

  void reset_transport() {
    boost::system::error_code ignored;
    if (tls_stream) tls_stream->lowest_layer().close(ignored);
    if (socket) socket->close(ignored);
    tls_stream.reset();
    socket.reset();
    if (reader) redisReaderFree(reader);
    reader = nullptr;
    writing = false;
  }

  tcp::socket& lowest() { return tls_stream ? tls_stream->next_layer() : *socket; }

  void connect_to(const tcp::resolver::results_type& endpoints, std::uint64_t gen) {
    if (url.tls) {
      tls_stream = std::make_shared<asio::ssl::stream<tcp::socket>>(strand, *tls_context);
    } else {
      socket = std::make_shared<tcp::socket>(strand);
    }
    // The connect operation refers to the socket until its handler has run; a
    // reset_transport meanwhile (the connect deadline, close) must not free it.
    std::shared_ptr<void> keep = tls_stream ? std::shared_ptr<void>(tls_stream) : std::shared_ptr<void>(socket);
    asio::async_connect(lowest(), endpoints,
                        [self = shared_from_this(), gen, keep = std::move(keep)](boost::system::error_code ec,
                                                                                const tcp::endpoint&) {
                          if (gen != self->generation) return;
                          if (ec) return self->attempt_failed("cannot connect to", ec.message(), errc::unavailable);
                          boost::system::error_code ignored;
                          self->lowest().set_option(tcp::no_delay(true), ignored);
                          if (!self->tls_stream) return self->transport_up(gen);
                          if (auto name_ec = net::set_tls_peer_name(self->tls_stream->native_handle(), self->url.host)) {
                            return self->attempt_failed("cannot verify", name_ec.message(), errc::unavailable);
                          }
                          self->tls_stream->async_handshake(
                              asio::ssl::stream_base::client,
                              [self, gen, keep = self->tls_stream](boost::system::error_code hec) {
                                if (gen != self->generation) return;
                                if (hec) return self->attempt_failed("TLS handshake failed with", hec.message(),
                                                                     errc::unavailable);
                                self->transport_up(gen);
                              });
                        });
  }

  // Connected: authenticate, select, subscribe; ready after the last reply.
  void transport_up(std::uint64_t gen) {
    state = State::handshaking;
    reader = redisReaderCreate();
    if (!reader) throw std::bad_alloc();
    std::vector<std::vector<std::string>> steps;
    if (!url.password.empty()) {
      if (url.user.empty()) {
        steps.push_back({"AUTH", url.password.reveal()});
      } else {
        steps.push_back({"AUTH", url.user, url.password.reveal()});
      }
    }
    if (url.db != 0) steps.push_back({"SELECT", std::to_string(url.db)});
    if (!channel.empty()) steps.push_back({"SUBSCRIBE", channel});
    if (steps.empty()) steps.push_back({"PING"});
    const auto deadline = Clock::now() + options.connect_timeout;
    for (std::size_t i = 0; i < steps.size(); ++i) {
      const bool last = i + 1 == steps.size();
      const std::string command = steps[i][0];
      in_flight.push_back(Pending{encode(steps[i]), [self = shared_from_this(), gen, last, command](
                                                        std::error_code ec, const RedisReply& reply) {
                                    if (gen != self->generation || ec) return;
                                    self->handshake_step(command, last, reply);
                                  },
                                  deadline});
      write_buffer += in_flight.back().bytes;
    }
    start_read(gen);
    write_pending(gen);
  }

  void handshake_step(const std::string& command, bool last, const RedisReply& reply) {
    if (reply.is_error()) {
      if (command == "AUTH") {
        // Redis' words (WRONGPASS…, NOPERM…) never contain the password.
        return attempt_failed("authentication refused by", reply.text, make_error_code(floodgate::errc::auth_failed));
      }
      return attempt_failed(command + " refused by", reply.text, errc::server_error);
    }
    if (!last) return;
    state = State::ready;
    connected.store(true);
    backoff.opened();
    last_failure = {};
    arm_deadline();
    {
      std::lock_guard lock(callbacks_mutex);
      if (ready_handler) ready_handler();
    }
    write_pending(generation);
  }

  void start_read(std::uint64_t gen) {
    auto on_read = [self = shared_from_this(), gen](boost::system::error_code ec, std::size_t n) {
      if (gen != self->generation) return;
      if (ec) return self->connection_broken(ec.message());
      self->on_bytes(n, gen);
    };
    if (tls_stream) {
      // An SSL operation refers to its stream until its handler runs: the
      // handler keeps it alive past a reset_transport.
      tls_stream->async_read_some(asio::buffer(read_buffer),
                                  [keep = tls_stream, on_read = std::move(on_read)](boost::system::error_code ec,
                                                                                    std::size_t n) mutable {
                                    on_read(ec, n);
                                  });
    } else {
      socket->async_read_some(asio::buffer(read_buffer), std::move(on_read));
    }
  }

  void on_bytes(std::size_t n, std::uint64_t gen) {
    backoff.data(Clock::now());
    if (redisReaderFeed(reader, read_buffer.data(), n) != REDIS_OK) return protocol_failure();
    for (;;) {
      void* raw = nullptr;
      if (redisReaderGetReply(reader, &raw) != REDIS_OK) return protocol_failure();
      if (!raw) break;
      RedisReply reply = convert(*static_cast<redisReply*>(raw));
      freeReplyObject(raw);
      deliver(std::move(reply));
      if (gen != generation) return;  // the reply ended this connection
    }
    start_read(gen);
  }

  void protocol_failure() {
    log(LogLevel::warning, "Redis at {}:{} sent data that is not RESP; reconnecting", url.host, url.port);
    fail_connection(errc::protocol_error);
  }

  void deliver(RedisReply reply) {
    const bool pushed = !channel.empty() && state == State::ready && reply.type == RedisReply::Type::array &&
                        reply.elements.size() == 3 && reply.elements[0].text == "message";
    if (pushed) {
      std::lock_guard lock(callbacks_mutex);
      if (message_handler) message_handler(reply.elements[2].text);
      return;
    }
    if (in_flight.empty()) return protocol_failure();  // an answer nobody asked for
    Pending p = std::move(in_flight.front());
    in_flight.pop_front();
    arm_deadline();
    p.complete({}, std::move(reply));
  }

  void write_pending(std::uint64_t gen) {
    if (writing || gen != generation) return;
    if (state == State::ready) {
      while (!queue.empty()) {
        write_buffer += queue.front().bytes;
        in_flight.push_back(std::move(queue.front()));
        queue.pop_front();
      }
      arm_deadline();
    }
    if (write_buffer.empty()) return;
    writing = true;
    auto bytes = std::make_shared<std::string>(std::move(write_buffer));
    write_buffer.clear();
    auto on_written = [self = shared_from_this(), gen, bytes](boost::system::error_code ec, std::size_t) {
      if (gen != self->generation) return;
      self->writing = false;
      if (ec) return self->connection_broken(ec.message());
      self->write_pending(gen);
    };
    if (tls_stream) {
      asio::async_write(*tls_stream, asio::buffer(*bytes),
                        [keep = tls_stream, on_written = std::move(on_written)](boost::system::error_code ec,
                                                                                std::size_t n) mutable {
                          on_written(ec, n);
                        });
    } else {
      asio::async_write(*socket, asio::buffer(*bytes), std::move(on_written));
    }
  }

  // One timer watches the earliest deadline: the handshake's while
  // connecting, else the oldest command's.
  void arm_connect_deadline(std::uint64_t gen) {
    deadline_timer.expires_after(options.connect_timeout);
    deadline_timer.async_wait([self = shared_from_this(), gen](boost::system::error_code ec) {
      if (ec || gen != self->generation) return;
      if (self->state == State::connecting || self->state == State::handshaking) {
        self->attempt_failed("no answer in time from", "connect timeout", errc::timeout);
      }
    });
  }

  void arm_deadline() {
    if (state != State::ready) return;
    std::optional<Clock::time_point> earliest;
    if (!in_flight.empty()) earliest = in_flight.front().deadline;
    if (!earliest) {
      deadline_timer.cancel();
      return;
    }
    if (deadline_armed && *earliest == armed_for) return;
    deadline_armed = true;
    armed_for = *earliest;
    deadline_timer.expires_at(*earliest);
    deadline_timer.async_wait([self = shared_from_this(), gen = generation](boost::system::error_code ec) {
      if (ec || gen != self->generation) return;
      self->deadline_armed = false;
      if (!self->in_flight.empty() && self->in_flight.front().deadline <= Clock::now()) {
        log(LogLevel::warning, "Redis at {}:{} did not answer within {} ms; reconnecting", self->url.host,
            self->url.port, self->options.command_timeout.count());
        return self->fail_connection(errc::timeout);
      }
      self->arm_deadline();
    });
  }

  void connection_broken(const std::string& why) {
    if (state == State::ready) {
      log(LogLevel::warning, "connection to Redis at {}:{} lost: {}; reconnecting", url.host, url.port, why);
      return fail_connection(errc::connection_lost);
    }
    attempt_failed("connection closed by", why, errc::unavailable);
  }

  void attempt_failed(const std::string& what, const std::string& why, std::error_code ec) {
    if (ec != last_failure) {  // one line per kind of failure, not one per attempt
      log(LogLevel::warning, "Redis: {} {}: {}", what, url.redacted(), why);
    }
    fail_connection(ec);
  }

  // Ends this connection: what was sent may have run, what was queued was not sent.
  void fail_connection(std::error_code ec) {
    if (state == State::closed) return;
    const bool was_ready = state == State::ready;
    ++generation;
    deadline_timer.cancel();
    deadline_armed = false;
    reset_transport();
    resolver.cancel();
    write_buffer.clear();
    connected.store(false);
    last_failure = ec;
    const std::error_code sent_ec = ec == errc::timeout || !was_ready ? ec : make_error_code(errc::connection_lost);
    auto in = std::move(in_flight);
    in_flight.clear();
    auto queued = std::move(queue);
    queue.clear();
    for (auto& p : in) p.complete(sent_ec, {});
    const std::error_code unsent_ec = ec == floodgate::errc::auth_failed ? ec : make_error_code(errc::unavailable);
    for (auto& p : queued) p.complete(unsent_ec, {});
    {
      std::lock_guard lock(callbacks_mutex);
      if (down_handler) down_handler(ec);
    }
    if (state == State::closed) return;
    const auto next = backoff.failed(Clock::now(), std::uniform_real_distribution<double>(0, 1)(rng));
    state = State::waiting;
    if (next.give_up) {
      log(LogLevel::error, "Redis: giving up on {} after {} failed attempts", url.redacted(), next.failures);
      return;
    }
    backoff_timer.expires_after(next.delay);
    backoff_timer.async_wait([self = shared_from_this()](boost::system::error_code tec) {
      if (!tec && self->state == State::waiting) self->connect();
    });
  }

  void enqueue(std::string bytes, Callback complete, std::uint64_t operation = 0) {
    switch (state) {
      case State::closed: return complete(make_error_code(floodgate::errc::shut_down), {});
      case State::idle:
      case State::waiting:
        return complete(last_failure == floodgate::errc::auth_failed ? last_failure : make_error_code(errc::unavailable),
                        {});
      default: break;
    }
    if (queue.size() + in_flight.size() >= options.max_pending) return complete(make_error_code(errc::unavailable), {});
    // Waiting for the connection counts against the connect deadline, not this one.
    queue.push_back(Pending{std::move(bytes), std::move(complete), Clock::now() + options.command_timeout, operation});
    if (state == State::ready) write_pending(generation);
  }

  // Runs on the caller's thread, in the initiating function: the slot's
  // handler only posts to the strand, where the operation is looked up.
  std::shared_ptr<Operation> make_operation(RedisClient::Completion completion) {
    auto op = std::make_shared<Operation>();
    op->id = next_operation.fetch_add(1, std::memory_order_relaxed);
    op->completion = std::move(completion);
    if (auto slot = op->completion->cancellation_slot(); slot.is_connected()) {
      slot.assign([weak = weak_from_this(), weak_op = std::weak_ptr<Operation>(op)](asio::cancellation_type type) {
        if (type == asio::cancellation_type::none) return;
        auto self = weak.lock();
        if (!self) return;
        asio::post(self->strand, [self, weak_op, type] {
          if (auto alive = weak_op.lock()) self->cancel(*alive, type);
        });
      });
    }
    return op;
  }

  // A command not written yet is dropped (never sent); a written one is not
  // recalled: on terminal or partial its caller is answered now and its
  // reply, which must still be read in order, goes nowhere.
  void cancel(Operation& op, asio::cancellation_type type) {
    if (!op.completion) return;  // already answered
    op.cancelled = true;
    const auto of_op = [&op](const Pending& p) { return p.operation == op.id; };
    const auto cancelled = make_error_code(floodgate::errc::cancelled);
    if (auto it = std::find_if(queue.begin(), queue.end(), of_op); it != queue.end()) {
      auto complete = std::move(it->complete);
      queue.erase(it);
      return complete(cancelled, {});
    }
    if (auto it = std::find_if(in_flight.begin(), in_flight.end(), of_op); it != in_flight.end()) {
      constexpr auto ends_now = asio::cancellation_type::terminal | asio::cancellation_type::partial;
      if ((type & ends_now) == asio::cancellation_type::none) return;  // total: its reply ends it
      auto complete = std::exchange(it->complete, [](std::error_code, const RedisReply&) {});
      it->operation = 0;
      return complete(cancelled, {});
    }
    op.finish(cancelled, {});  // not queued yet, or between the steps of a script call: nothing in flight
  }

  void shutdown() {
    if (state == State::closed) return;
    state = State::closed;
    ++generation;
    connected.store(false);
    deadline_timer.cancel();
    backoff_timer.cancel();
    resolver.cancel();
    reset_transport();
    auto in = std::move(in_flight);
    in_flight.clear();
    auto queued = std::move(queue);
    queue.clear();
    for (auto& p : in) p.complete(make_error_code(floodgate::errc::shut_down), {});
    for (auto& p : queued) p.complete(make_error_code(floodgate::errc::shut_down), {});
  }

  asio::strand<asio::any_io_executor> strand;
  RedisUrl url;
  RedisClientOptions options;
  std::shared_ptr<asio::ssl::context> tls_context;
  tcp::resolver resolver;
  std::shared_ptr<tcp::socket> socket;
  std::shared_ptr<asio::ssl::stream<tcp::socket>> tls_stream;  // shared with its pending operations
  redisReader* reader = nullptr;
  std::array<char, 16384> read_buffer{};
  std::string write_buffer;
  bool writing = false;
  std::deque<Pending> queue;      // not written yet
  std::deque<Pending> in_flight;  // written, waiting for their replies in order
  asio::steady_timer deadline_timer;
  bool deadline_armed = false;
  Clock::time_point armed_for{};
  asio::steady_timer backoff_timer;
  Backoff<Clock> backoff;
  std::mt19937_64 rng;
  State state = State::idle;
  std::uint64_t generation = 0;
  std::error_code last_failure;
  std::atomic<bool> connected{false};
  std::atomic<std::uint64_t> next_operation{1};

  std::string channel;
  std::mutex callbacks_mutex;  // held while a callback runs; close() takes it to clear them
  std::function<void(std::string_view)> message_handler;
  std::function<void()> ready_handler;
  std::function<void(std::error_code)> down_handler;
};

RedisClient::RedisClient(asio::any_io_executor executor, RedisUrl url, RedisClientOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(url), std::move(options))) {}

RedisClient::~RedisClient() { close(); }

void RedisClient::subscribe(std::string channel, std::function<void(std::string_view)> on_message) {
  std::lock_guard lock(impl_->callbacks_mutex);
  impl_->channel = std::move(channel);
  impl_->message_handler = std::move(on_message);
}

void RedisClient::on_ready(std::function<void()> handler) {
  std::lock_guard lock(impl_->callbacks_mutex);
  impl_->ready_handler = std::move(handler);
}

void RedisClient::on_down(std::function<void(std::error_code)> handler) {
  std::lock_guard lock(impl_->callbacks_mutex);
  impl_->down_handler = std::move(handler);
}

void RedisClient::start() {
  asio::post(impl_->strand, [impl = impl_] {
    if (impl->state == Impl::State::idle) impl->connect();
  });
}

void RedisClient::close() {
  {
    std::lock_guard lock(impl_->callbacks_mutex);  // waits for a running callback
    impl_->message_handler = nullptr;
    impl_->ready_handler = nullptr;
    impl_->down_handler = nullptr;
  }
  asio::post(impl_->strand, [impl = impl_] { impl->shutdown(); });
}

asio::any_io_executor RedisClient::get_executor() const noexcept { return impl_->strand; }

bool RedisClient::connected() const noexcept { return impl_->connected.load(); }

const RedisUrl& RedisClient::url() const noexcept { return impl_->url; }

void RedisClient::start_command(const std::vector<std::string>& args, Completion completion) {
  auto op = impl_->make_operation(std::move(completion));
  asio::post(impl_->strand, [impl = impl_, bytes = encode(args), op]() mutable {
    if (op->cancelled) return;  // answered by cancel()
    impl->enqueue(std::move(bytes), Impl::Operation::completer(op), op->id);
  });
}

void RedisClient::start_eval(Script script, std::vector<std::string> keys, std::vector<std::string> args,
                             Completion completion) {
  std::vector<std::string> call{"EVALSHA", script.sha1(), std::to_string(keys.size())};
  for (auto& k : keys) call.push_back(std::move(k));
  for (auto& a : args) call.push_back(std::move(a));
  auto op = impl_->make_operation(std::move(completion));
  auto bytes = encode(call);
  asio::post(impl_->strand, [impl = impl_, script = std::move(script), bytes = std::move(bytes), op]() mutable {
    if (op->cancelled) return;
    std::weak_ptr<Impl> weak = impl;
    // NOSCRIPT: Redis does not know the script (restarted, flushed): it did not run; load it, call again.
    impl->enqueue(
        bytes,
        [weak, script, bytes, op](std::error_code ec, RedisReply reply) mutable {
          auto self = weak.lock();
          if (ec || !self || !reply.is_error() || !reply.text.starts_with("NOSCRIPT")) {
            return op->finish(ec, std::move(reply));
          }
          if (op->cancelled) return op->finish(make_error_code(floodgate::errc::cancelled), {});
          self->enqueue(
              encode({"SCRIPT", "LOAD", script.source()}),
              [weak, bytes, op](std::error_code lec, RedisReply loaded) mutable {
                auto again = weak.lock();
                if (lec || !again || loaded.is_error()) return op->finish(lec, std::move(loaded));
                if (op->cancelled) return op->finish(make_error_code(floodgate::errc::cancelled), {});
                again->enqueue(std::move(bytes), Impl::Operation::completer(op), op->id);
              },
              op->id);
        },
        op->id);
  });
}

}  // namespace floodgate::redis
