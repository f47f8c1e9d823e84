#include <floodgate/kite/latest_value_queue.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using Queue = floodgate::kite::LatestValueQueue<int, std::string>;
using Pushed = Queue::Pushed;

namespace {
std::vector<std::string> drain(Queue& queue) {
  std::vector<std::string> out;
  while (!queue.empty()) {
    out.push_back(queue.front());
    queue.pop();
  }
  return out;
}
}  // namespace

TEST_CASE("LatestValueQueue keeps first-in order across keys", "[kite][conflation]") {
  Queue queue(10);
  CHECK(queue.push(1, "a1") == Pushed::appended);
  CHECK(queue.push(2, "b1") == Pushed::appended);
  CHECK(queue.push_unkeyed("order") == Pushed::appended);
  CHECK(drain(queue) == std::vector<std::string>{"a1", "b1", "order"});
}

TEST_CASE("LatestValueQueue replaces a waiting key's value in place", "[kite][conflation]") {
  Queue queue(10);
  queue.push(1, "a1");
  queue.push(2, "b1");
  CHECK(queue.push(1, "a2") == Pushed::replaced);
  CHECK(queue.push(1, "a3") == Pushed::replaced);
  CHECK(queue.size() == 2);
  CHECK(drain(queue) == std::vector<std::string>{"a3", "b1"});
}

TEST_CASE("LatestValueQueue appends a key again once its entry was popped", "[kite][conflation]") {
  Queue queue(10);
  queue.push(1, "a1");
  queue.push(2, "b1");
  queue.pop();  // a1 delivered
  CHECK(queue.push(1, "a2") == Pushed::appended);
  CHECK(queue.push(2, "b2") == Pushed::replaced);
  CHECK(drain(queue) == std::vector<std::string>{"b2", "a2"});
}

TEST_CASE("LatestValueQueue never merges unkeyed values", "[kite][conflation]") {
  Queue queue(10);
  queue.push_unkeyed("x");
  queue.push_unkeyed("x");
  CHECK(queue.size() == 2);
}

TEST_CASE("LatestValueQueue refuses new entries when full but still replaces", "[kite][conflation]") {
  Queue queue(2);
  queue.push(1, "a1");
  queue.push(2, "b1");
  CHECK(queue.push(3, "c1") == Pushed::refused);
  CHECK(queue.push_unkeyed("order") == Pushed::refused);
  CHECK(queue.push(2, "b2") == Pushed::replaced);
  CHECK(drain(queue) == std::vector<std::string>{"a1", "b2"});
}

TEST_CASE("LatestValueQueue positions stay right over many pops", "[kite][conflation]") {
  Queue queue(4);
  for (int round = 0; round < 1000; ++round) {
    queue.push(round % 3, "old");
    queue.push(round % 3, std::to_string(round));
    REQUIRE(queue.front() == std::to_string(round));
    queue.pop();
    REQUIRE(queue.empty());
  }
}
