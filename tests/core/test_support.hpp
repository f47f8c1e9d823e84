// Shared helpers for the core tests.
#pragma once

#include "floodgate/core.hpp"
#include "floodgate/core/cooldown_store.hpp"
#include "floodgate/kite/credentials.hpp"
#include "floodgate/telegram/credentials.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace floodgate::test {

using namespace std::chrono_literals;

struct Token {
  std::string value;
};

template <class Strategy = BestHealth>
using Pool = CredentialPool<Token, Strategy, ManualClock>;

/// A pool of credentials "A", "B", "C"… on a virtual clock.
template <class Strategy = BestHealth>
void add_credentials(Pool<Strategy>& pool, std::vector<std::string> ids, std::vector<std::uint32_t> weights = {}) {
  for (std::size_t i = 0; i < ids.size(); ++i) {
    pool.add({ids[i], {"value-" + ids[i]}, weights.empty() ? 1u : weights[i]});
  }
}

/// The ids handed out by n acquire+success rounds.
template <class Strategy>
std::vector<std::string> picks(Pool<Strategy>& pool, int n, std::string_view destination = {}) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    auto lease = destination.empty() ? pool.acquire() : pool.acquire(destination);
    if (!lease) {
      out.push_back("-");
      continue;
    }
    out.push_back(lease->id());
    lease->success(1ms);
  }
  return out;
}

}  // namespace floodgate::test
