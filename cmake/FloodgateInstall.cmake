# `cmake --install` lays out headers, libraries, the CMake package
# (floodgateConfig.cmake + version file, namespaced floodgate:: targets) and a
# pkg-config file.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(FLOODGATE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/floodgate)
set(FLOODGATE_INSTALL_TARGETS)
foreach(component ${FLOODGATE_COMPONENTS})
  list(APPEND FLOODGATE_INSTALL_TARGETS floodgate_${component})
endforeach()
install(TARGETS ${FLOODGATE_INSTALL_TARGETS} floodgate_all EXPORT floodgateTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY include/floodgate DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT floodgateTargets NAMESPACE floodgate:: DESTINATION ${FLOODGATE_CMAKE_DIR})

configure_package_config_file(cmake/floodgateConfig.cmake.in
  ${PROJECT_BINARY_DIR}/floodgateConfig.cmake INSTALL_DESTINATION ${FLOODGATE_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/floodgateConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/floodgateConfig.cmake
              ${PROJECT_BINARY_DIR}/floodgateConfigVersion.cmake
        DESTINATION ${FLOODGATE_CMAKE_DIR})

# pkg-config: the compiled libraries that exist (not the simulators, which
# users' programs do not link), plus what they need.
set(FLOODGATE_PC_LIBS)
foreach(component ${FLOODGATE_COMPONENTS})
  get_target_property(type floodgate_${component} TYPE)
  if(NOT type STREQUAL "INTERFACE_LIBRARY" AND NOT component STREQUAL "sim")
    list(PREPEND FLOODGATE_PC_LIBS -lfloodgate_${component})
  endif()
endforeach()
if(redis IN_LIST FLOODGATE_COMPONENTS)
  list(APPEND FLOODGATE_PC_LIBS -lhiredis)  # floodgate_redis links it
endif()
list(JOIN FLOODGATE_PC_LIBS " " FLOODGATE_PC_LIBS)
configure_file(cmake/floodgate.pc.in ${PROJECT_BINARY_DIR}/floodgate.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/floodgate.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
