#include "floodgate/telegram/update_offsets.hpp"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "floodgate/core/detail/atomic_file.hpp"
#include "floodgate/core/error.hpp"

namespace floodgate::telegram {

namespace {
constexpr std::string_view kFormat = "floodgate-update-offsets";
constexpr int kVersion = 1;
}  // namespace

UpdateOffsetFile::UpdateOffsetFile(std::filesystem::path path) : path_(std::move(path)) {
  std::error_code ec;
  if (!std::filesystem::exists(path_, ec)) return;
  detail::remove_atomic_write_leftovers(path_);  // this process owns the file: no other writer runs
  std::ifstream in(path_, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in || in.bad()) {
    throw Error(fmt::format("cannot read update offset file {}: {}", path_.string(), detail::errno_text()));
  }
  offsets_ = parse(text.str(), path_.string());
}

std::map<std::string, UpdateOffsets, std::less<>> UpdateOffsetFile::parse(std::string_view text,
                                                                          std::string_view source) {
  auto corrupt = [&](std::string_view why) {
    return Error(fmt::format("update offset file {} is corrupt: {}", source, why));
  };
  constexpr int kMaxDepth = 8;  // outside data: no stack exhaustion
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text.begin(), text.end(), [](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
      if (depth > kMaxDepth) throw std::runtime_error("nested too deeply");
      return true;
    });
  } catch (const std::exception& e) {
    throw corrupt(e.what());
  }
  if (!doc.is_object() || doc.value("format", "") != kFormat) throw corrupt("not a floodgate-update-offsets file");
  const auto version = doc.find("version");
  if (version == doc.end() || !version->is_number_integer()) throw corrupt("no version");
  if (version->get<std::int64_t>() > kVersion) {
    throw Error(fmt::format("update offset file {} was written by a newer floodgate (version {})", source,
                            version->get<std::int64_t>()));
  }
  const auto bots = doc.find("bots");
  if (bots == doc.end() || !bots->is_object()) throw corrupt("no \"bots\" object");
  std::map<std::string, UpdateOffsets, std::less<>> result;
  for (const auto& [id, record] : bots->items()) {
    const auto number = [&](const char* field) {
      const auto it = record.is_object() ? record.find(field) : record.end();
      if (!record.is_object() || it == record.end() || !it->is_number_integer()) {
        throw corrupt(fmt::format("bot {}: \"{}\" is not an integer", id, field));
      }
      return it->get<std::int64_t>();
    };
    result.emplace(id, UpdateOffsets{number("next_offset"), number("delivered_through")});
  }
  return result;
}

std::optional<UpdateOffsets> UpdateOffsetFile::find(std::string_view token_id) const {
  std::lock_guard lock(mutex_);
  const auto it = offsets_.find(token_id);
  if (it == offsets_.end()) return std::nullopt;
  return it->second;
}

bool UpdateOffsetFile::save(std::string_view token_id, const UpdateOffsets& offsets) {
  std::lock_guard lock(mutex_);
  auto next = offsets_;
  next.insert_or_assign(std::string(token_id), offsets);
  auto bots = nlohmann::json::object();
  for (const auto& [id, record] : next) {
    bots[id] = {{"next_offset", record.next_offset}, {"delivered_through", record.delivered_through}};
  }
  const nlohmann::json doc{{"format", kFormat}, {"version", kVersion}, {"bots", std::move(bots)}};
  if (!detail::ensure_private_folder(detail::folder_of(path_))) {
    log(LogLevel::warning, "cannot write update offset file {}: {}", path_.string(), detail::errno_text());
    return false;
  }
  if (!detail::write_file_atomically(path_, doc.dump(2) + "\n", "update offset file")) return false;
  offsets_ = std::move(next);
  return true;
}

}  // namespace floodgate::telegram
