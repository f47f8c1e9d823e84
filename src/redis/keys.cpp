#include "floodgate/redis/keys.hpp"

#include <algorithm>

#include "floodgate/core/error.hpp"

namespace floodgate::redis {
namespace {

// SCAN's MATCH is a glob: escape what it would read as one.
std::string glob_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

Keys::Keys(std::string_view pool) {
  const bool valid = !pool.empty() && pool.size() <= 64 && std::all_of(pool.begin(), pool.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
  });
  if (!valid) {
    throw Error("Redis pool name must be 1 to 64 letters, digits, '_', '-' or '.', not \"" +
                std::string(pool.substr(0, 64)) + "\"");
  }
  prefix_ = "floodgate:{" + std::string(pool) + "}:";
}

std::string Keys::cooldown(std::string_view id) const { return prefix_ + "state:cooldown:" + std::string(id); }

std::string Keys::scoped(std::string_view id, std::string_view destination) const {
  return prefix_ + "state:scoped:" + std::to_string(id.size()) + ":" + std::string(id) + ":" + std::string(destination);
}

std::string Keys::disabled(std::string_view id) const { return prefix_ + "state:disabled:" + std::string(id); }

std::string Keys::channel() const { return prefix_ + "events"; }

std::string Keys::limit(std::string_view limit, std::string_view key) const {
  std::string out = prefix_ + "limit:" + std::string(limit);
  if (!key.empty()) out += ":" + std::string(key);
  return out;
}

std::string Keys::state_pattern() const { return glob_escape(prefix_) + "state:*"; }

std::string Keys::scoped_pattern(std::string_view id) const {
  return glob_escape(prefix_) + "state:scoped:" + std::to_string(id.size()) + ":" + glob_escape(id) + ":*";
}

std::optional<Keys::Kind> Keys::kind_of(std::string_view key) const {
  if (!key.starts_with(prefix_)) return std::nullopt;
  key.remove_prefix(prefix_.size());
  if (key.starts_with("state:cooldown:")) return Kind::cooldown;
  if (key.starts_with("state:scoped:")) return Kind::scoped;
  if (key.starts_with("state:disabled:")) return Kind::disabled;
  return std::nullopt;
}

}  // namespace floodgate::redis
