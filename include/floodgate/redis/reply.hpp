// floodgate/redis/reply.hpp: one decoded Redis reply (RESP2), owned.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace floodgate::redis {

struct RedisReply {
  enum class Type { nil, integer, string, status, error, array };

  Type type = Type::nil;
  std::int64_t integer = 0;
  std::string text;  ///< string, status and error replies
  std::vector<RedisReply> elements;

  bool is_error() const noexcept { return type == Type::error; }
  /// The integer of an integer reply, or of a string reply that holds one.
  std::optional<std::int64_t> as_integer() const;
};

}  // namespace floodgate::redis
