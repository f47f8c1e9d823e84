// The test side of fake_tdjson.cpp: reaches the scripting functions of one
// fake library build through dlopen (the same instance the real loader uses,
// since a library is loaded once per process).
#pragma once

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <dlfcn.h>

#include <string>

namespace floodgate::test {

class FakeTdjson {
 public:
  explicit FakeTdjson(std::string path) : path_(std::move(path)) {
    handle_ = dlopen(path_.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    REQUIRE(handle_ != nullptr);
    script_ = bind<void(const char*)>("fake_td_script");
    push_ = bind<void(int, const char*)>("fake_td_push");
    requests_ = bind<const char*()>("fake_td_requests");
    bind<void()>("fake_td_reset")();
  }
  FakeTdjson(const FakeTdjson&) = delete;
  FakeTdjson& operator=(const FakeTdjson&) = delete;
  ~FakeTdjson() { dlclose(handle_); }

  const std::string& path() const { return path_; }
  void script(const nlohmann::json& rule) const { script_(rule.dump().c_str()); }
  void push(int client, const std::string& text) const { push_(client, text.c_str()); }
  nlohmann::json requests() const { return nlohmann::json::parse(requests_()); }

  /// Requests of one type that the fake received.
  nlohmann::json requests_of(const std::string& type) const {
    auto all = nlohmann::json::array();
    for (const auto& entry : requests()) {
      if (entry.contains("request") && entry["request"].value("@type", "") == type) all.push_back(entry["request"]);
    }
    return all;
  }

 private:
  template <class Fn>
  Fn* bind(const char* name) {
    auto* fn = reinterpret_cast<Fn*>(dlsym(handle_, name));
    REQUIRE(fn != nullptr);
    return fn;
  }

  std::string path_;
  void* handle_ = nullptr;
  void (*script_)(const char*) = nullptr;
  void (*push_)(int, const char*) = nullptr;
  const char* (*requests_)() = nullptr;
};

}  // namespace floodgate::test
