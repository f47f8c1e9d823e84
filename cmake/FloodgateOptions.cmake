# Build settings shared by every floodgate target (but not exported to users).
find_program(FLOODGATE_CCACHE ccache)
if(FLOODGATE_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${FLOODGATE_CCACHE})
endif()

add_library(floodgate_build_flags INTERFACE)
target_compile_options(floodgate_build_flags INTERFACE -Wall -Wextra -Wpedantic -Wshadow
                       -Wnon-virtual-dtor -Wno-missing-field-initializers)
# CI turns warnings into errors for floodgate's own code; users' builds never.
if(FLOODGATE_WERROR)
  target_compile_options(floodgate_build_flags INTERFACE -Werror)
endif()
if(FLOODGATE_SANITIZE AND FLOODGATE_SANITIZE_THREAD)
  message(FATAL_ERROR "FLOODGATE_SANITIZE and FLOODGATE_SANITIZE_THREAD cannot be combined")
endif()
if(FLOODGATE_SANITIZE_THREAD)
  # -Wno-tsan: g++ warns that TSan ignores the atomic_thread_fence in Boost.Asio's
  # handler-allocation refcount (see scripts/tsan-suppressions.txt).
  target_compile_options(floodgate_build_flags INTERFACE -fsanitize=thread -fno-omit-frame-pointer -Wno-tsan)
  target_link_options(floodgate_build_flags INTERFACE -fsanitize=thread)
endif()
# libFuzzer targets (clang only): every floodgate object is instrumented for
# coverage and built with ASan+UBSan; fuzz/ links the fuzzer's main.
if(FLOODGATE_BUILD_FUZZERS)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "FLOODGATE_BUILD_FUZZERS needs clang (libFuzzer): -DCMAKE_CXX_COMPILER=clang++")
  endif()
  target_compile_options(floodgate_build_flags INTERFACE
                         -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(floodgate_build_flags INTERFACE -fsanitize=address,undefined)
endif()
if(FLOODGATE_SANITIZE)
  target_compile_options(floodgate_build_flags INTERFACE
                         -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(floodgate_build_flags INTERFACE -fsanitize=address,undefined)
endif()
