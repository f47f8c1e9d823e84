# cmake -DSIM=<floodgate-sim> -DVERSION=<x.y.z> -DWORK_DIR=… -P floodgate_sim_cli.cmake
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

execute_process(COMMAND ${SIM} --version RESULT_VARIABLE result OUTPUT_VARIABLE out)
if(NOT result EQUAL 0 OR NOT out STREQUAL "floodgate-sim ${VERSION}\n")
  message(FATAL_ERROR "--version: exit ${result}, printed '${out}'")
endif()

# --help at each level: CLI11's, on stdout, exit 0, naming every subcommand and option.
function(expect_help regex)
  execute_process(COMMAND ${SIM} ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT result EQUAL 0 OR NOT out MATCHES "${regex}")
    message(FATAL_ERROR "${ARGN}: exit ${result}, expected '${regex}' in:\n${out}\n${err}")
  endif()
endfunction()
expect_help("Usage: floodgate-sim.*--version.*botapi.*kite.*http" --help)
expect_help("Usage: floodgate-sim botapi.*--token T.*--tokens-file F.*--per-chat RATE.*--scenario FILE.*--closed-world.*--plain.*--ca-out FILE.*--port-out FILE" botapi --help)
expect_help("Usage: floodgate-sim kite.*--keys-file F.*--key K.*--token T.*--rate N.*--tls.*--ca-out FILE" kite -h)
expect_help("Usage: floodgate-sim http.*--limit RATE.*--quota N.*--retry-after FORM.*--headers FAMILY.*--random-429 P.*/v1/transcribe" http --help)

# A bad command line: CLI11's message on stderr naming what is wrong, exit 2, nothing started.
function(expect_usage_error regex)
  execute_process(COMMAND ${SIM} ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
  if(NOT result EQUAL 2 OR NOT err MATCHES "${regex}" OR out MATCHES "listening")
    message(FATAL_ERROR "${ARGN}: exit ${result} (expected 2), expected '${regex}' on stderr:\n${out}\n${err}")
  endif()
  message(STATUS "${ARGN}: ${err}")
endfunction()
expect_usage_error("Usage: floodgate-sim .*botapi")   # no simulator: the help, on stderr
expect_usage_error("not expected: bogus" bogus)
expect_usage_error("not expected: --nope" botapi --token 100001:AAH-cli-token --nope)
expect_usage_error("--per-chat: invalid rate '3/fortnight'" botapi --token 100001:AAH-cli-token --per-chat 3/fortnight)
expect_usage_error("--per-chat-burst: 0 is not a number above 0" botapi --token 100001:AAH-cli-token --per-chat-burst 0)
expect_usage_error("--port = 70000" botapi --token 100001:AAH-cli-token --port 70000)
expect_usage_error("--token: 1 required T missing" botapi --token)
expect_usage_error("--retry-after: sometime not in {seconds,date,none}" http --key sk-cli-key --retry-after sometime)
expect_usage_error("--headers: bad not in {none,openai,github,anthropic}" http --key sk-cli-key --headers bad)
expect_usage_error("--random-429: Value 2 not in range" http --key sk-cli-key --random-429 2)
expect_usage_error("--quota-status: 500 not in {429,402}" http --key sk-cli-key --quota-status 500)
expect_usage_error("--rate: -3 is not a number above 0" kite --key k1 --token t1 --rate -3)
expect_usage_error("--key: 2 keys and 1 tokens: each --key K needs its --token T" kite --key k1 --key k2 --token t1)
# --ca-out without --tls would have nothing to write for kite.
expect_usage_error("--ca-out requires --tls" kite --key k1 --token t1 --ca-out ${WORK_DIR}/ca.pem)

# A CA file into a folder that does not exist: a clear error, exit 1, nothing
# claimed written, no port announced, no file left anywhere. Each simulator.
set(missing ${WORK_DIR}/missing/dir/ca.pem)
# (--flag=value works as well as --flag value: botapi is given --ca-out=<file>.)
foreach(simulator "botapi;--token;100001:AAH-cli-token;--port-out;${WORK_DIR}/port.txt;--ca-out=${missing}"
                  "http;--key;sk-cli-key;--port-out;${WORK_DIR}/port.txt;--ca-out;${missing}"
                  "kite;--key;k1;--token;t1;--tls;--ca-out;${missing}")
  execute_process(COMMAND ${SIM} ${simulator}
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

