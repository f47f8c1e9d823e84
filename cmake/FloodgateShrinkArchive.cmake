# cmake -DARCHIVE=<lib.a> -DSTRIP=<strip> -DOBJCOPY=<objcopy> -DREADELF=<readelf> -DAR=<ar>
#       -DWORK_DIR=<scratch folder> -P FloodgateShrinkArchive.cmake
#
# Run by `cmake --install --strip` on every installed static library
# (cmake/FloodgateInstall.cmake). An archive of Asio, Beast and OpenSSL code is
# mostly names, not code: every inline template instantiation the library uses
# is a COMDAT section named after its mangled symbol (".text._ZN5boost4asio...",
# often several hundred bytes), with a relocation section of the same name, and
# every instantiation over a type of an anonymous namespace is also a named
# local symbol. Two lossless steps take most of that away (docs/installing.md
# gives the sizes):
#
# 1. `strip --strip-unneeded`: debug info and the local symbols no relocation
#    refers to. The linker never resolves against local symbols; what they gave
#    was function names in a backtrace of an unstripped program.
# 2. Section names shortened to their kind: ".text._ZN5boost..." becomes
#    ".text", ".rodata._ZN...Ev.str1.1" becomes ".rodata.str1.1". A linker keeps
#    one copy of a COMDAT group by the group's signature symbol, which stays,
#    and places a section by its kind; the mangled part of a section's name is
#    read by nothing. `objcopy` renames each relocation section with its section.
foreach(variable ARCHIVE STRIP OBJCOPY READELF AR WORK_DIR)
  if(NOT ${variable})
    message(FATAL_ERROR "FloodgateShrinkArchive.cmake: ${variable} not given")
  endif()
endforeach()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE failed OUTPUT_VARIABLE output ERROR_VARIABLE errors)
  if(failed)
    message(FATAL_ERROR "shrinking ${ARCHIVE}: `${ARGN}` failed (${failed}): ${errors}")
  endif()
  set(output "${output}" PARENT_SCOPE)
endfunction()

run(${STRIP} --strip-unneeded ${ARCHIVE})

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
run(${AR} t ${ARCHIVE})
string(REGEX REPLACE "\n$" "" members "${output}")
string(REPLACE "\n" ";" members "${members}")
# `ar x` of two members with one name would keep only the last: refuse rather
# than lose an object.
set(unique ${members})
list(REMOVE_DUPLICATES unique)
if(NOT unique STREQUAL members)
  message(FATAL_ERROR "shrinking ${ARCHIVE}: two members share a name; not shrunk")
endif()
execute_process(COMMAND ${AR} x ${ARCHIVE} WORKING_DIRECTORY ${WORK_DIR} RESULT_VARIABLE failed)
if(failed)
  message(FATAL_ERROR "shrinking ${ARCHIVE}: `ar x` failed (${failed})")
endif()

foreach(member ${members})
  run(${READELF} -SW ${WORK_DIR}/${member})
  # Sections with contents or zero-fill whose name carries a mangled name;
  # relocation sections follow their section, group sections keep theirs.
  # (No "]" in the pattern: a bracket in a list element stops CMake splitting the list.)
  string(REGEX MATCHALL " [^ ]*\\._Z[^ ]* +(PROGBITS|NOBITS)" sections "${output}")
  list(TRANSFORM sections REPLACE "^ ([^ ]+) +[A-Z]+$" "\\1")
  list(REMOVE_DUPLICATES sections)  # objcopy takes one rename per name
  set(renames "")
  foreach(name ${sections})
    string(REGEX REPLACE "\\._Z[^.]*" "" short "${name}")
    string(APPEND renames "--rename-section ${name}=${short}\n")
  endforeach()
  if(renames)
    file(WRITE ${WORK_DIR}/${member}.renames "${renames}")
    run(${OBJCOPY} @${WORK_DIR}/${member}.renames ${WORK_DIR}/${member})
  endif()
endforeach()

execute_process(COMMAND ${AR} rcs shrunk.a ${members} WORKING_DIRECTORY ${WORK_DIR} RESULT_VARIABLE failed)
if(failed)
  message(FATAL_ERROR "shrinking ${ARCHIVE}: `ar rcs` failed (${failed})")
endif()
file(RENAME ${WORK_DIR}/shrunk.a ${ARCHIVE})
file(REMOVE_RECURSE ${WORK_DIR})
