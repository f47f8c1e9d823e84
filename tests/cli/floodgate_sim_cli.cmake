# cmake -DSIM=<floodgate-sim> -DVERSION=<x.y.z> -DWORK_DIR=… -P floodgate_sim_cli.cmake
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

execute_process(COMMAND ${SIM} --version RESULT_VARIABLE result OUTPUT_VARIABLE out)
if(NOT result EQUAL 0 OR NOT out STREQUAL "floodgate-sim ${VERSION}\n")
  message(FATAL_ERROR "--version: exit ${result}, printed '${out}'")
endif()

# A CA file into a folder that does not exist: a clear error, exit 1, nothing
# claimed written, no port announced, no file left anywhere. Each simulator.
set(missing ${WORK_DIR}/missing/dir/ca.pem)
foreach(simulator "botapi;--token;100001:AAH-cli-token;--port-out;${WORK_DIR}/port.txt"
                  "http;--key;sk-cli-key;--port-out;${WORK_DIR}/port.txt" "kite;--key;k1;--token;t1;--tls")
  execute_process(COMMAND ${SIM} ${simulator} --ca-out ${missing}
                  RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
  list(GET simulator 0 name)
  if(NOT result EQUAL 1)
    message(FATAL_ERROR "${name} --ca-out ${missing}: exit ${result} (expected 1)\n${out}\n${err}")
  endif()
  if(out MATCHES "written" OR out MATCHES "listening")
    message(FATAL_ERROR "${name}: claimed success:\n${out}")
  endif()
  if(NOT err MATCHES "cannot write ${missing}: No such file or directory")
    message(FATAL_ERROR "${name}: unclear error:\n${err}")
  endif()
  if(EXISTS ${missing} OR EXISTS ${missing}.tmp OR EXISTS ${WORK_DIR}/port.txt)
    message(FATAL_ERROR "${name}: wrote ${missing} or announced a port")
  endif()
  message(STATUS "${name}: ${err}")
endforeach()

# --ca-out without --tls would have nothing to write for kite.
execute_process(COMMAND ${SIM} kite --key k1 --token t1 --ca-out ${WORK_DIR}/ca.pem
                RESULT_VARIABLE result ERROR_VARIABLE err TIMEOUT 60)
if(NOT result EQUAL 1 OR NOT err MATCHES "--ca-out needs --tls")
  message(FATAL_ERROR "kite --ca-out without --tls: exit ${result}\n${err}")
endif()
