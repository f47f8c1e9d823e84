# Build settings shared by every floodgate target (but not exported to users).
find_program(FLOODGATE_CCACHE ccache)
if(FLOODGATE_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${FLOODGATE_CCACHE})
endif()

add_library(floodgate_build_flags INTERFACE)
target_compile_options(floodgate_build_flags INTERFACE -Wall -Wextra -Wpedantic -Wshadow
                       -Wnon-virtual-dtor -Wno-missing-field-initializers)
if(FLOODGATE_SANITIZE)
  target_compile_options(floodgate_build_flags INTERFACE
                         -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(floodgate_build_flags INTERFACE -fsanitize=address,undefined)
endif()
