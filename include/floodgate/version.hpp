// floodgate/version.hpp: the version of floodgate these headers belong to.
//
//   #include <floodgate/version.hpp>
//   static_assert(FLOODGATE_VERSION_MAJOR == 0);
//   fmt::print("floodgate {}\n", FLOODGATE_VERSION);   // "floodgate 0.1.0"
//
// The one place the version is written: CMake reads project(VERSION) from the
// three numbers below, and the package version file and the pkg-config files
// take it from there.
#pragma once

#define FLOODGATE_VERSION_MAJOR 0
#define FLOODGATE_VERSION_MINOR 1
#define FLOODGATE_VERSION_PATCH 0

#define FLOODGATE_DETAIL_STRINGIZE(x) #x
#define FLOODGATE_DETAIL_VERSION(major, minor, patch) \
  FLOODGATE_DETAIL_STRINGIZE(major) "." FLOODGATE_DETAIL_STRINGIZE(minor) "." FLOODGATE_DETAIL_STRINGIZE(patch)
/// "MAJOR.MINOR.PATCH"
#define FLOODGATE_VERSION \
  FLOODGATE_DETAIL_VERSION(FLOODGATE_VERSION_MAJOR, FLOODGATE_VERSION_MINOR, FLOODGATE_VERSION_PATCH)
