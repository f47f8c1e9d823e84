// floodgate/async/detail/open_latch.hpp: work that may run only while its
// owner is open.
//
// An adapter's calls outlive the adapter object: a retry waiting out a flood
// wait holds the adapter's state, not the adapter, and the objects the state
// borrows (an HTTPS client, TDLib sessions) may be destroyed right after the
// adapter. Every action that touches them runs through `run_if_open`; the
// adapter's destructor (or close) calls `close`, which waits for an action in
// progress, and after it no action runs. An atomic flag alone would leave a
// window between the check and the action.
#pragma once

#include <mutex>
#include <shared_mutex>
#include <utility>

namespace floodgate::async::detail {

class OpenLatch {
 public:
  /// Runs `action` unless `close` has run, and says whether it ran. Actions
  /// run concurrently with each other, never with `close`. An action starts
  /// work whose completions run later; it must not call `close` or
  /// `run_if_open` itself (the mutex is not recursive).
  template <class Action>
  bool run_if_open(Action&& action) {
    std::shared_lock lock(mutex_);
    if (closed_) return false;
    std::forward<Action>(action)();
    return true;
  }

  /// Waits for the actions in progress; none runs after it. Idempotent.
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }

 private:
  std::shared_mutex mutex_;
  bool closed_ = false;  // guarded by mutex_
};

}  // namespace floodgate::async::detail
