# Findhiredis.cmake: hiredis::hiredis, the C client library floodgate::redis
# uses for the Redis protocol (Debian: libhiredis-dev).
#
# A find module rather than hiredis' own package config, because Debian
# bookworm's hiredis-config-version.cmake does not parse. The build uses it, and
# it is installed beside floodgateConfig.cmake, which finds hiredis with it
# when a program asks for floodgate's redis component: the installed package
# names the library by this target, never by a path on the machine that built it.
find_path(hiredis_INCLUDE_DIR hiredis/hiredis.h)
find_library(hiredis_LIBRARY hiredis)
mark_as_advanced(hiredis_INCLUDE_DIR hiredis_LIBRARY)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(hiredis REQUIRED_VARS hiredis_LIBRARY hiredis_INCLUDE_DIR)

if(hiredis_FOUND AND NOT TARGET hiredis::hiredis)
  add_library(hiredis::hiredis UNKNOWN IMPORTED)
  set_target_properties(hiredis::hiredis PROPERTIES
    IMPORTED_LOCATION "${hiredis_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${hiredis_INCLUDE_DIR}")
endif()
