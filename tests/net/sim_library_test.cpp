// The simulators are a shared library that carries its own copy of the net and
// kite code it uses (src/sim/CMakeLists.txt). Its export list
// (src/sim/floodgate_sim.map) is what makes floodgate's state one copy for the
// library and the program that links it; this checks the dynamic linker's
// answer for the state that matters most, the log sink, which a test sets to
// read the simulators' log lines.
#include <catch2/catch.hpp>

#include <dlfcn.h>
#include <fmt/format.h>

#include <string>

#include "floodgate/core/log.hpp"
#include "floodgate/sim/bot_api_server.hpp"
#include "floodgate/version.hpp"

TEST_CASE("sim library: the program and libfloodgate_sim.so share one log state and Asio's stays private") {
  // Linked by this program, so already loaded: RTLD_NOLOAD only finds it.
  const std::string soname = fmt::format("libfloodgate_sim.so.{}.{}", FLOODGATE_VERSION_MAJOR, FLOODGATE_VERSION_MINOR);
  void* library = dlopen(soname.c_str(), RTLD_NOW | RTLD_NOLOAD);
  REQUIRE(library != nullptr);

  // The function-local static behind floodgate::set_log_sink: a unique symbol
  // the library exports, which the dynamic linker binds to one definition for
  // the whole process. Hidden, the library's code would log to its own copy.
  void* library_state = dlsym(library, "_ZZN9floodgate6detail9log_stateEvE5state");
  CHECK(library_state == static_cast<void*>(&floodgate::detail::log_state()));

  // Asio's own state stays private to the library (not exported): the call
  // stack that marks a thread as running an io_context is one of them.
  CHECK(dlsym(library, "_ZN5boost4asio6detail10call_stackINS1_14thread_contextENS1_16thread_info_baseEE4top_E") ==
        nullptr);
  dlclose(library);
}
