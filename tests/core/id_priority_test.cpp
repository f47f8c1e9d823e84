// IndexedHeap and TournamentTree (core/detail/) against a sorted reference:
// the cooling queue's and Weighted's order rest on them.
#include "floodgate/core/detail/indexed_heap.hpp"
#include "floodgate/core/detail/tournament_tree.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <utility>

namespace {

struct Key {
  double pass;
  std::uint32_t tie;
};
struct Before {
  bool operator()(const Key& a, const Key& b) const noexcept {
    return a.pass != b.pass ? a.pass < b.pass : a.tie < b.tie;
  }
};

using Heap = floodgate::detail::IndexedHeap<Key, Before>;
using Tree = floodgate::detail::TournamentTree<Key, Before>;

}  // namespace

TEMPLATE_TEST_CASE("The best-of-ids structures serve exactly what sorting every entry would, over random sets, "
                   "changes and erases", "[strategy]", Heap, Tree) {
  const auto seed = std::random_device{}();
  CAPTURE(seed);
  std::mt19937_64 random(seed);
  for (int round = 0; round < 20; ++round) {
    TestType order;
    std::map<std::uint32_t, Key> reference;  // id -> key
    const std::uint32_t ids = round < 10 ? 5 : 60;  // the tree grows its capacity on the way
    for (int op = 0; op < 2000; ++op) {
      const auto id = static_cast<std::uint32_t>(random() % ids);
      // Few distinct passes, so ties (broken by `tie`, then unordered) are common.
      const Key key{static_cast<double>(random() % 8) / 4.0, static_cast<std::uint32_t>(random() % 3)};
      switch (random() % 4) {
        case 0:
        case 1:  // insert, or change the key of one present (up or down)
          order.set(id, key);
          reference[id] = key;
          break;
        case 2:
          order.erase(id);  // erasing an absent id is a no-op
          reference.erase(id);
          break;
        default:  // take the top and move it back, as Weighted's pick does
          if (reference.empty()) break;
          const auto top = order.top();
          Key moved = order.key(top);
          moved.pass += 0.25;
          order.set(top, moved);
          reference[top] = moved;
          break;
      }
      REQUIRE(order.size() == reference.size());
      REQUIRE(order.empty() == reference.empty());
      for (std::uint32_t probe = 0; probe < ids; ++probe) {
        const auto it = reference.find(probe);
        REQUIRE(order.contains(probe) == (it != reference.end()));
        if (it != reference.end()) {
          REQUIRE(order.key(probe).pass == it->second.pass);
          REQUIRE(order.key(probe).tie == it->second.tie);
        }
      }
      if (!reference.empty()) {
        // The top is one of the entries no other entry comes before.
        const Key& top_key = reference.at(order.top());
        for (const auto& [other, other_key] : reference) {
          CAPTURE(op, other);
          REQUIRE_FALSE(Before{}(other_key, top_key));
        }
      }
      std::set<std::uint32_t> visited;
      order.for_each([&](std::uint32_t visited_id, const Key& visited_key) {
        REQUIRE(visited.insert(visited_id).second);
        REQUIRE(reference.at(visited_id).pass == visited_key.pass);
      });
      REQUIRE(visited.size() == reference.size());
    }
  }
}
