// floodgate/core/keyed_limiter.hpp: one token bucket per key, in bounded memory.
//
//   // Telegram: at most one message per second to each private chat, bursts of 3.
//   floodgate::KeyedLimiter<std::int64_t> per_chat(floodgate::Rate::per_second(1), 3);
//   if (auto d = per_chat.try_acquire(chat_id)) send(chat_id);
//   else log("chat {} busy, retry in {}", chat_id, d.retry_after);
//
// Every key (chat id, instrument symbol, user) gets its own bucket with the
// same rate and burst, created on first use. A bucket is stored only while it
// is *not* full: a full bucket is indistinguishable from a fresh one (see the
// GCRA note in rate.hpp), so once a key has been idle long enough to refill it
// is forgotten. Memory therefore follows the keys active within one refill
// period, not every key ever seen.
//
// Layout: keys are spread over `shards` open-addressing hash tables (linear
// probing), each behind its own mutex. A slot is the key plus one int64 (16
// bytes for an integer key); tables are kept between 3/8 and 3/4 full, so a
// live key costs 21 to 43 bytes (measured figure in docs/benchmarks.md).
// Full buckets are swept out whenever a table would otherwise grow. Tables of
// 2 MB and more are 2 MB-aligned and marked for transparent huge pages
// (core/detail/huge_pages.hpp), so a random probe into a big table costs a
// cache miss but rarely a TLB miss as well. The default 16 shards let a
// table reach 2 MB from about 800,000 live keys; with more shards every table
// stays smaller and on 4 KB pages.
//
// Clock: SteadyClock by default. On CoarseClock (opt-in), buckets whose
// burst refills in at least 100 lag bounds (0.8 s with the usual 8 ms) are
// judged on its fast reading with the lag charged (rate.hpp, "Limiting on a
// lagging clock"); smaller ones read steady_clock.
//
// Hard cap (`KeyedLimiterOptions::max_keys`): when a table is at its share of
// the cap and none of its buckets is full, a *new* key is refused with
// `LimitDecision::at_capacity` (error() == errc::capacity_exceeded) and a
// `retry_after` saying when the soonest bucket there refills. Keys already
// tracked keep working. Refusing is deliberate: evicting a bucket that still
// owes tokens would let its key exceed its rate, which is what the limiter is
// for. The cap is split evenly across shards, so it can bite slightly before
// `max_keys` keys when the hash spreads them unevenly. To keep that small, a
// cap below 256 keys per shard uses fewer shards (one shard for a cap under
// 512, so a small cap is exact); `retry_after` of a refusal is always when a
// stored bucket refills, never longer than one burst's refill time.
#pragma once

#include <floodgate/core/clock.hpp>
#include <floodgate/core/detail/huge_pages.hpp>
#include <floodgate/core/rate.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <vector>

namespace floodgate {

struct KeyedLimiterOptions {
  /// Most keys tracked at once (those whose bucket is not full).
  std::size_t max_keys = std::size_t{1} << 21;
  /// Number of independently locked tables; rounded up to a power of two.
  /// A lock is held for one probe (tens of ns), so 16 serve many threads;
  /// fewer, bigger tables reach the size where huge pages apply.
  std::size_t shards = 16;
};

template <class Key, Clock C = SteadyClock, class Hash = std::hash<Key>>
class KeyedLimiter {
 public:
  using key_type = Key;
  using clock_type = C;
  using duration = std::chrono::nanoseconds;

  KeyedLimiter(Rate rate, double burst, KeyedLimiterOptions options = {}, C clock = C{})
      : clock_(std::move(clock)), params_(detail::Gcra::make(rate, burst)),
        fast_(clock_.lag_absorbed_by(params_.tolerance)) {
    if (options.max_keys == 0) throw Error("keyed limiter: max_keys must be at least 1");
    const std::size_t wanted_shards = std::bit_ceil(std::max<std::size_t>(options.shards, 1));
    const std::size_t shards_for_cap = std::bit_floor(std::max<std::size_t>(options.max_keys / kMinKeysPerShard, 1));
    const std::size_t shard_count = std::min(wanted_shards, shards_for_cap);
    shard_bits_ = static_cast<unsigned>(std::countr_zero(shard_count));
    const std::size_t keys_per_shard = (options.max_keys + shard_count - 1) / shard_count;
    shards_ = std::make_unique<Shard[]>(shard_count);
    for (std::size_t i = 0; i < shard_count; ++i) shards_[i].max_keys = keys_per_shard;
  }

  /// Takes n tokens from `key`'s bucket if they are there.
  LimitDecision try_acquire(const Key& key, std::uint32_t n = 1) {
    const std::uint64_t h = mix(Hash{}(key));
    // In a big table the key's slot is a cache miss. Asked for before the
    // clock read, it arrives while the clock is read: steady_clock's read
    // waits for earlier loads to finish (the vDSO orders the TSC read), so a
    // load issued before it would be paid in full, then the read on top
    // (docs/benchmarks.md: 1M keys).
    shard_for(h).prefetch(h >> shard_bits_);
    return try_acquire_hashed(key, h, n, read());
  }

  /// How long until `key` has n tokens (zero now, `LimitDecision::never` if
  /// never). Ignores the key cap.
  duration time_until(const Key& key, std::uint32_t n = 1) const { return time_until_at(key, n, read()); }

  /// Gives back n tokens taken from `key` that were not used.
  void refund(const Key& key, std::uint32_t n = 1) { refund_at(key, n, read().now); }

  /// Keys currently stored: those with a bucket that is not full, plus full
  /// ones not swept out yet.
  std::size_t size() const {
    std::size_t total = 0;
    for_each_shard([&](const Shard& s) { total += s.used; });
    return total;
  }

  /// Heap and object bytes held by the limiter.
  std::size_t memory_bytes() const {
    std::size_t total = sizeof(*this) + shard_count() * sizeof(Shard);
    for_each_shard([&](const Shard& s) { total += s.slots.capacity() * sizeof(Slot); });
    return total;
  }

  /// Forgets every key whose bucket is full now; returns how many were removed.
  std::size_t evict_idle() {
    const std::int64_t now = read().now;
    std::size_t removed = 0;
    for (std::size_t i = 0; i < shard_count(); ++i) {
      std::lock_guard lock(shards_[i].mutex);
      const std::size_t before = shards_[i].used;
      shards_[i].rebuild(shards_[i].slots.size(), now, shard_bits_);
      removed += before - shards_[i].used;
    }
    return removed;
  }

  const C& clock() const noexcept { return clock_.clock(); }
  /// Whether checks read the clock's fast time (CoarseClock's coarse one,
  /// charged its lag) rather than its precise one; true for a clock without lag.
  bool reads_fast() const noexcept { return fast_; }

 private:
  template <class, Clock>
  friend class LimitSet;  // reads the clock once for all its limits

  LimitDecision try_acquire_at(const Key& key, std::uint32_t n, detail::Reading at) {
    return try_acquire_hashed(key, mix(Hash{}(key)), n, at);
  }

  LimitDecision try_acquire_hashed(const Key& key, std::uint64_t h, std::uint32_t n, detail::Reading at) {
    const std::int64_t now = at.now;
    Shard& shard = shard_for(h);
    std::lock_guard lock(shard.mutex);
    Slot* slot = shard.find(key, h >> shard_bits_);
    const auto verdict = params_.check(slot ? slot->tat : now, at, n);
    if (!verdict.admitted) return {false, detail::wait_duration(verdict.wait), {}, true};
    if (verdict.new_tat <= now) return {true};  // nothing owed: the bucket stays full
    if (slot == nullptr) {
      const auto room = shard.make_room(now, shard_bits_);
      if (!room.ok) return {false, std::chrono::nanoseconds{room.retry_after}, {}, true, true};
      slot = shard.insert(key, h >> shard_bits_);
    }
    shard.store(*slot, verdict.new_tat);
    return {true};
  }

  duration time_until_at(const Key& key, std::uint32_t n, detail::Reading at) const {
    const std::uint64_t h = mix(Hash{}(key));
    Shard& shard = shard_for(h);
    std::lock_guard lock(shard.mutex);
    const Slot* slot = shard.find(key, h >> shard_bits_);
    return detail::wait_duration(params_.check(slot ? slot->tat : at.now, at, n).wait);
  }

  void refund_at(const Key& key, std::uint32_t n, std::int64_t now) {
    const std::uint64_t h = mix(Hash{}(key));
    Shard& shard = shard_for(h);
    std::lock_guard lock(shard.mutex);
    if (Slot* slot = shard.find(key, h >> shard_bits_)) shard.store(*slot, params_.refund(slot->tat, now, n));
  }

  static constexpr std::int64_t kEmpty = std::numeric_limits<std::int64_t>::min();
  // Fewer keys per shard than this and the uneven spread of the hash makes
  // the per-shard cap bite well before `max_keys`.
  static constexpr std::size_t kMinKeysPerShard = 256;

  struct Slot {
    Key key{};
    std::int64_t tat = kEmpty;  // kEmpty marks a free slot
  };

  struct Room {
    bool ok;
    std::int64_t retry_after;
  };

  struct alignas(64) Shard {
    std::mutex mutex;
    std::vector<Slot, detail::HugePageAllocator<Slot>> slots;  // size is zero or a power of two
    std::size_t used = 0;
    std::size_t max_keys = 0;
    // A lower bound of the stored states: no bucket here is full before this
    // instant, so a sweep earlier cannot free anything.
    std::int64_t earliest_full = std::numeric_limits<std::int64_t>::max();

    // Where the table is, for a prefetch outside the lock: written under the
    // lock whenever `slots` is replaced. Read while another thread rebuilds,
    // it may name the old table: a useless prefetch, nothing worse (a
    // prefetch never faults).
    std::atomic<const Slot*> table{nullptr};
    std::atomic<std::size_t> table_mask{0};

    std::size_t mask() const noexcept { return slots.size() - 1; }

    void prefetch([[maybe_unused]] std::uint64_t h) const noexcept {
#if defined(__GNUC__)
      if (const Slot* t = table.load(std::memory_order_relaxed)) {
        __builtin_prefetch(t + (h & table_mask.load(std::memory_order_relaxed)), 1);
      }
#endif
    }

    void store(Slot& slot, std::int64_t tat) noexcept {
      slot.tat = tat;
      earliest_full = std::min(earliest_full, tat);
    }

    Slot* find(const Key& key, std::uint64_t h) {
      if (slots.empty()) return nullptr;
      for (std::size_t i = h & mask();; i = (i + 1) & mask()) {
        Slot& s = slots[i];
        if (s.tat == kEmpty) return nullptr;
        if (s.key == key) return &s;
      }
    }

    Slot* insert(const Key& key, std::uint64_t h) {
      std::size_t i = h & mask();
      while (slots[i].tat != kEmpty) i = (i + 1) & mask();
      slots[i].key = key;
      ++used;
      return &slots[i];
    }

    // Ensures one more key fits: sweeps full buckets and grows when the table
    // would pass 3/4 load; refuses at the cap.
    Room make_room(std::int64_t now, unsigned shard_bits) {
      if (used < max_keys && !slots.empty() && (used + 1) * 4 <= slots.size() * 3) return {true, 0};
      if (used >= max_keys && now < earliest_full) return {false, earliest_full - now};
      rebuild(slots.size(), now, shard_bits);
      if ((used + 1) * 8 > slots.size() * 3) {
        // Still more than 3/8 full after the sweep: grow, if the cap allows.
        // The smallest table that holds max_keys at 3/4 load; a first table of
        // 16 slots is cut down to it when the cap is smaller.
        const std::size_t limit = std::bit_ceil((max_keys * 4 + 2) / 3 + 1);
        const std::size_t wanted = slots.empty() ? std::min<std::size_t>(16, limit) : slots.size() * 2;
        if (wanted <= limit) rebuild(wanted, now, shard_bits);
      }
      if (used >= max_keys || (used + 1) * 4 > slots.size() * 3) {
        return {false, std::max<std::int64_t>(earliest_full - now, 0)};
      }
      return {true, 0};
    }

    // Rehashes into `capacity` slots, dropping buckets that are full at `now`.
    void rebuild(std::size_t capacity, std::int64_t now, unsigned shard_bits) {
      std::vector<Slot, detail::HugePageAllocator<Slot>> old(capacity);
      old.swap(slots);
      table.store(slots.data(), std::memory_order_relaxed);
      table_mask.store(mask(), std::memory_order_relaxed);
      used = 0;
      earliest_full = std::numeric_limits<std::int64_t>::max();
      for (const Slot& s : old) {
        if (s.tat == kEmpty || s.tat <= now) continue;
        insert(s.key, mix(Hash{}(s.key)) >> shard_bits)->tat = s.tat;
        earliest_full = std::min(earliest_full, s.tat);
      }
    }
  };

  // splitmix64's finaliser: spreads any std::hash (often the identity for
  // integers) over all 64 bits, low bits pick the shard, the rest the slot.
  static std::uint64_t mix(std::uint64_t x) noexcept {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  }

  std::size_t shard_count() const noexcept { return std::size_t{1} << shard_bits_; }
  Shard& shard_for(std::uint64_t h) const noexcept { return shards_[h & (shard_count() - 1)]; }

  template <class F>
  void for_each_shard(F&& f) const {
    for (std::size_t i = 0; i < shard_count(); ++i) {
      std::lock_guard lock(shards_[i].mutex);
      f(shards_[i]);
    }
  }

  // The fast reading where the buckets absorb the clock's lag, else the
  // precise one (core/detail/limiter_clock.hpp, rate.hpp).
  detail::Reading read() const { return clock_.read(fast_); }

  detail::LimiterClock<C> clock_;
  detail::Gcra params_;
  bool fast_;  // judged on the lagging clock's fast reading
  unsigned shard_bits_ = 0;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace floodgate
