# Every external dependency is found here, once. All come from Debian
# bookworm packages (see scripts/bootstrap); nothing is downloaded.
find_package(Threads REQUIRED)
find_package(fmt REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(Boost 1.81 REQUIRED)
find_package(OpenSSL 3 REQUIRED)
if(FLOODGATE_BUILD_TESTS)
  find_package(Catch2 2.13 REQUIRED)
endif()
if(FLOODGATE_BUILD_BENCHMARKS)
  find_package(benchmark REQUIRED)
endif()
# hiredis (libhiredis-dev) for floodgate::redis only, by our find module
# (cmake/Findhiredis.cmake: Debian's own package config does not parse).
find_package(hiredis MODULE REQUIRED)
