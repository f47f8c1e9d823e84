// libFuzzer target for HTTP responses: HttpsClient sends a GET to a server on
// 127.0.0.1 that answers with the fuzz input and closes. Everything runs on
// one io_context in the fuzzing thread. The request must complete exactly
// once, and a response without error must respect the body limit.
#include "floodgate/net/http_client.hpp"

#include "fuzz_support.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace asio = boost::asio;
namespace net = floodgate::net;
using tcp = asio::ip::tcp;

namespace {

constexpr std::uint64_t kMaxBody = 4096;  // small, so inputs reach the limit checks

struct Harness {
  asio::io_context io;
  tcp::acceptor acceptor{io, {asio::ip::make_address_v4("127.0.0.1"), 0}};
  net::HttpsClient client{io.get_executor(), options()};
  net::HttpRequest request = net::HttpRequest::get(
      net::Endpoint::parse("http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port())),
      net::RequestTarget("/fuzz"));

  static net::HttpClientOptions options() {
    net::HttpClientOptions o;
    o.allow_plain_http = true;
    o.max_body_bytes = kMaxBody;
    o.read_timeout = std::chrono::seconds(5);
    return o;
  }
};

// Reads the request head, writes `reply`, closes.
void serve_once(Harness& h, const std::shared_ptr<const std::string>& reply) {
  auto socket = std::make_shared<tcp::socket>(h.io);
  h.acceptor.async_accept(*socket, [socket, reply](boost::system::error_code ec) {
    if (ec) return;
    auto head = std::make_shared<asio::streambuf>();
    asio::async_read_until(*socket, *head, "\r\n\r\n", [socket, reply, head](boost::system::error_code ec, std::size_t) {
      if (ec) return;
      asio::async_write(*socket, asio::buffer(*reply), [socket, reply](boost::system::error_code, std::size_t) {
        boost::system::error_code ignored;
        socket->shutdown(tcp::socket::shutdown_both, ignored);
        socket->close(ignored);
      });
    });
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Harness h;
  serve_once(h, std::make_shared<const std::string>(reinterpret_cast<const char*>(data), size));
  int completions = 0;
  std::error_code error;
  net::HttpResponse response;
  h.client.async_request(h.request, [&](std::error_code ec, net::HttpResponse r) {
    ++completions;
    error = ec;
    response = std::move(r);
  });
  h.io.restart();
  h.io.run();
  FUZZ_REQUIRE(completions == 1);
  if (!error) {
    FUZZ_REQUIRE(response.status >= 100 && response.status <= 599);
    FUZZ_REQUIRE(response.body.size() <= kMaxBody);
    FUZZ_REQUIRE(response.body_bytes == response.body.size());
  }
  return 0;
}
