// floodgate/redis/keys.hpp: the names floodgate gives its Redis keys.
//
// Every key of one pool starts with `floodgate:{<pool>}:`; the braces are a
// Redis Cluster hash tag, so a pool's keys share one slot and one Lua script
// may touch several of them. Credentials appear by id only.
//
//   floodgate:{bots}:state:cooldown:<id>                   the whole credential cools (TTL)
//   floodgate:{bots}:state:scoped:<len(id)>:<id>:<dest>     it cools for one destination (TTL)
//   floodgate:{bots}:state:disabled:<id>                   it is disabled (no TTL)
//   floodgate:{bots}:events                                pub/sub channel of state changes
//   floodgate:{bots}:limit:<limit>[:<key>]                 a shared limit's GCRA state (TTL)
//
// The id's length before a scoped key's id keeps `a:b`+`c` apart from
// `a`+`b:c`. Pool names are limited to letters, digits, '_', '-' and '.', so
// they never need escaping in a key, a hash tag or a SCAN pattern.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace floodgate::redis {

class Keys {
 public:
  enum class Kind { cooldown, scoped, disabled };

  /// Throws floodgate::Error when `pool` is empty or has other characters.
  explicit Keys(std::string_view pool);

  const std::string& prefix() const noexcept { return prefix_; }
  std::string cooldown(std::string_view id) const;
  std::string scoped(std::string_view id, std::string_view destination) const;
  std::string disabled(std::string_view id) const;
  std::string channel() const;
  std::string limit(std::string_view limit, std::string_view key = {}) const;

  /// SCAN patterns: every state key; the scoped keys of one credential.
  std::string state_pattern() const;
  std::string scoped_pattern(std::string_view id) const;

  /// Which state key `key` is, if it is one.
  std::optional<Kind> kind_of(std::string_view key) const;

 private:
  std::string prefix_;
};

}  // namespace floodgate::redis
