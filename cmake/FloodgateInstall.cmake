# `cmake --install` lays out, per component (core, async, net, telegram, kite,
# http, redis, and sim on request: one install component and one CMake export
# each):
#   include/floodgate/<component>/...       its headers
#   lib/libfloodgate_<component>.a          its library (compiled components)
#   lib/cmake/floodgate/floodgate-<component>-targets.cmake
#   lib/pkgconfig/floodgate-<component>.pc
# plus floodgateConfig.cmake (find_package with COMPONENTS), its version file,
# floodgate/core.hpp, floodgate/version.hpp and floodgate.pc (everything but
# the simulators).
#
# What each component needs (other components, external packages, pkg-config
# modules, link flags, defines) is read from its target's link libraries, so a
# new dependency in src/<component>/CMakeLists.txt reaches the package config
# and the .pc files without being written twice.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(FLOODGATE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/floodgate)
# Installed only on request (`cmake --install build --component sim`): the
# simulators are test code, and their library is as big as all the others
# together (docs/installing.md gives the sizes).
set(FLOODGATE_ON_REQUEST_COMPONENTS sim)
set(FLOODGATE_PC_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# External CMake packages and their pkg-config names ("" when the package has
# none: Boost's headers need no flag, Threads becomes -pthread).
set(FLOODGATE_PACKAGE_fmt "fmt" "fmt")
set(FLOODGATE_PACKAGE_nlohmann_json "nlohmann_json 3.10" "nlohmann_json")
set(FLOODGATE_PACKAGE_Boost "Boost 1.81" "")
set(FLOODGATE_PACKAGE_OpenSSL "OpenSSL 3" "openssl")
set(FLOODGATE_PACKAGE_Threads "Threads" "")
# Found with our find module, installed beside the package config (cmake/Findhiredis.cmake).
set(FLOODGATE_PACKAGE_hiredis "hiredis MODULE" "hiredis")

# floodgate_requirements(<component>): sets, in the caller,
#   requires_components  other floodgate components it links
#   requires_packages    CMake packages (the keys of FLOODGATE_PACKAGE_*)
#   requires_modules     pkg-config modules
#   extra_libs           link flags with no package (-ldl, -pthread)
function(floodgate_requirements component)
  set(target floodgate_${component})
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "INTERFACE_LIBRARY")
    get_target_property(links ${target} INTERFACE_LINK_LIBRARIES)
  else()
    get_target_property(links ${target} LINK_LIBRARIES)
  endif()
  set(components)
  set(packages)
  set(modules)
  set(libs)
  foreach(link IN LISTS links)
    if(link MATCHES "^\\$<BUILD_INTERFACE:" OR link STREQUAL "links-NOTFOUND")
      continue()  # build flags, never seen by users
    endif()
    if(link MATCHES "^\\$<LINK_ONLY:(.*)>$")
      set(link ${CMAKE_MATCH_1})
    endif()
    if(link MATCHES "^floodgate_(.*)$")
      list(APPEND components ${CMAKE_MATCH_1})
    elseif(link MATCHES "^([A-Za-z_]+)::")
      set(package ${CMAKE_MATCH_1})
      if(NOT DEFINED FLOODGATE_PACKAGE_${package})
        message(FATAL_ERROR "${target} links ${link}: add ${package} to FLOODGATE_PACKAGE_* in ${CMAKE_CURRENT_LIST_FILE}")
      endif()
      list(APPEND packages ${package})
      list(GET FLOODGATE_PACKAGE_${package} 1 module)
      if(module)
        list(APPEND modules ${module})
      elseif(package STREQUAL "Threads")
        list(APPEND libs -pthread)
      endif()
    elseif(link MATCHES "^[A-Za-z0-9_]+$")
      list(APPEND libs -l${link})  # a system library such as dl
    else()
      message(FATAL_ERROR "${target} links ${link}: teach ${CMAKE_CURRENT_LIST_FILE} what it needs")
    endif()
  endforeach()
  foreach(list components packages modules libs)
    list(REMOVE_DUPLICATES ${list})
  endforeach()
  set(requires_components ${components} PARENT_SCOPE)
  set(requires_packages ${packages} PARENT_SCOPE)
  set(requires_modules ${modules} PARENT_SCOPE)
  set(extra_libs ${libs} PARENT_SCOPE)
endfunction()

install(FILES cmake/Findhiredis.cmake DESTINATION ${FLOODGATE_CMAKE_DIR} COMPONENT redis)
install(FILES include/floodgate/core.hpp include/floodgate/version.hpp
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/floodgate COMPONENT core)

set(FLOODGATE_CONFIG_COMPONENTS "")  # the dependency table written into floodgateConfig.cmake
set(FLOODGATE_UMBRELLA_MODULES)
foreach(component ${FLOODGATE_COMPONENTS})
  set(target floodgate_${component})
  set(on_request)
  if(component IN_LIST FLOODGATE_ON_REQUEST_COMPONENTS)
    set(on_request EXCLUDE_FROM_ALL)
  endif()
  install(TARGETS ${target} EXPORT floodgate-${component}-targets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT ${component} ${on_request}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT ${component} ${on_request})
  install(EXPORT floodgate-${component}-targets NAMESPACE floodgate:: DESTINATION ${FLOODGATE_CMAKE_DIR}
          COMPONENT ${component} ${on_request})
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "STATIC_LIBRARY" AND CMAKE_STRIP AND CMAKE_OBJCOPY AND CMAKE_READELF AND CMAKE_AR)
    # `cmake --install --strip` leaves static libraries alone (a plain strip would drop their symbol
    # table). FloodgateShrinkArchive.cmake strips what linking does not need (debug info, unreferenced
    # local symbols, the mangled half of section names): 29.3 MB of debug-stripped archives became
    # 23.4 MB (docs/installing.md).
    install(CODE "if(CMAKE_INSTALL_DO_STRIP)
                    execute_process(COMMAND \"${CMAKE_COMMAND}\"
                                    \"-DARCHIVE=\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/$<TARGET_FILE_NAME:${target}>\"
                                    -DSTRIP=${CMAKE_STRIP} -DOBJCOPY=${CMAKE_OBJCOPY} -DREADELF=${CMAKE_READELF} -DAR=${CMAKE_AR}
                                    \"-DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/shrink-${component}\"
                                    -P \"${PROJECT_SOURCE_DIR}/cmake/FloodgateShrinkArchive.cmake\"
                                    RESULT_VARIABLE failed)
                    if(failed)
                      message(FATAL_ERROR \"could not shrink libfloodgate_${component}\")
                    endif()
                  endif()" COMPONENT ${component} ${on_request})
  endif()
  if(IS_DIRECTORY ${PROJECT_SOURCE_DIR}/include/floodgate/${component})
    install(DIRECTORY include/floodgate/${component} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/floodgate
            COMPONENT ${component} ${on_request})
  endif()

  floodgate_requirements(${component})
  string(APPEND FLOODGATE_CONFIG_COMPONENTS
         "set(_floodgate_components_${component} ${requires_components})\n"
         "set(_floodgate_packages_${component} ${requires_packages})\n")

  # floodgate-<component>.pc
  set(pc_requires)
  foreach(other ${requires_components})
    list(APPEND pc_requires floodgate-${other})
  endforeach()
  list(APPEND pc_requires ${requires_modules})
  list(JOIN pc_requires " " FLOODGATE_PC_REQUIRES)
  get_target_property(defines ${target} INTERFACE_COMPILE_DEFINITIONS)
  set(FLOODGATE_PC_CFLAGS)
  if(defines)
    foreach(define ${defines})
      string(APPEND FLOODGATE_PC_CFLAGS " -D${define}")
    endforeach()
  endif()
  set(pc_libs)
  if(NOT type STREQUAL "INTERFACE_LIBRARY")
    list(APPEND pc_libs "-L\${libdir}" -l${target})
  endif()
  if(type STREQUAL "SHARED_LIBRARY")
    # The simulators' library is found at run time where it was installed, as CMake's imported
    # target arranges: a prefix of one's own is the usual place for a test library.
    list(APPEND pc_libs "-Wl,-rpath,\${libdir}")
  endif()
  list(APPEND pc_libs ${extra_libs})
  list(JOIN pc_libs " " FLOODGATE_PC_LIBS)
  if(component STREQUAL "core")
    set(FLOODGATE_PC_CFLAGS "-I\${includedir} -std=c++20${FLOODGATE_PC_CFLAGS}")
  else()
    string(STRIP "${FLOODGATE_PC_CFLAGS}" FLOODGATE_PC_CFLAGS)
  endif()
  set(FLOODGATE_PC_NAME floodgate-${component})
  set(FLOODGATE_PC_DESCRIPTION "floodgate's ${component} component")
  configure_file(cmake/floodgate-component.pc.in ${PROJECT_BINARY_DIR}/pkgconfig/floodgate-${component}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/pkgconfig/floodgate-${component}.pc DESTINATION ${FLOODGATE_PC_DIR}
          COMPONENT ${component} ${on_request})
  if(NOT component STREQUAL "sim")
    list(APPEND FLOODGATE_UMBRELLA_MODULES floodgate-${component})
  endif()
endforeach()

# floodgate.pc: every component but the simulators (which users' programs do not link).
list(JOIN FLOODGATE_UMBRELLA_MODULES " " FLOODGATE_UMBRELLA_MODULES)
configure_file(cmake/floodgate.pc.in ${PROJECT_BINARY_DIR}/pkgconfig/floodgate.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/pkgconfig/floodgate.pc DESTINATION ${FLOODGATE_PC_DIR} COMPONENT core)

set(FLOODGATE_PACKAGE_TABLE "")
foreach(package fmt nlohmann_json Boost OpenSSL Threads hiredis)
  list(GET FLOODGATE_PACKAGE_${package} 0 find_arguments)
  string(APPEND FLOODGATE_PACKAGE_TABLE "set(_floodgate_find_${package} ${find_arguments})\n")
endforeach()
configure_package_config_file(cmake/floodgateConfig.cmake.in
  ${PROJECT_BINARY_DIR}/floodgateConfig.cmake INSTALL_DESTINATION ${FLOODGATE_CMAKE_DIR})
# 0.x: a minor release may break the API, so 0.1 accepts only 0.1.*; from 1.0 on
# the major version alone decides.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(FLOODGATE_COMPATIBILITY SameMinorVersion)
else()
  set(FLOODGATE_COMPATIBILITY SameMajorVersion)
endif()
write_basic_package_version_file(${PROJECT_BINARY_DIR}/floodgateConfigVersion.cmake
  COMPATIBILITY ${FLOODGATE_COMPATIBILITY})
install(FILES ${PROJECT_BINARY_DIR}/floodgateConfig.cmake
              ${PROJECT_BINARY_DIR}/floodgateConfigVersion.cmake
        DESTINATION ${FLOODGATE_CMAKE_DIR} COMPONENT core)
