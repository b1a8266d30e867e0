# tools/amalgamate.py's command line, on a copy of the tree (the real single
# header is never touched): an unknown argument is a usage error that writes
# nothing, --help prints the usage and writes nothing, --check writes nothing,
# and no argument writes the header (so the test would see a stray write).
#   cmake -DSOURCE_DIR=... -DWORK_DIR=... -DPYTHON=python3 -P tests/scripts/amalgamate_test.cmake
foreach(var SOURCE_DIR WORK_DIR PYTHON)
  if(NOT ${var})
    message(FATAL_ERROR "amalgamate_test: set -D${var}=")
  endif()
endforeach()

set(tree "${WORK_DIR}/tree")
file(REMOVE_RECURSE "${tree}")
file(COPY "${SOURCE_DIR}/tools/amalgamate.py" DESTINATION "${tree}/tools")
file(COPY "${SOURCE_DIR}/include" DESTINATION "${tree}")
set(header "${tree}/single_include/reservoir/reservoir.hpp")
set(sentinel "not generated: must stay as it is\n")
file(WRITE "${header}" "${sentinel}")

# run ARGS EXPECTED_EXIT OUTPUT_PATTERN: one call, its exit code and output checked.
function(run args expected_exit pattern)
  execute_process(COMMAND "${PYTHON}" "${tree}/tools/amalgamate.py" ${args}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
  if(NOT rc STREQUAL expected_exit)
    message(FATAL_ERROR "amalgamate.py ${args}: exit ${rc}, expected ${expected_exit}\n${out}${err}")
  endif()
  if(NOT "${out}${err}" MATCHES "${pattern}")
    message(FATAL_ERROR "amalgamate.py ${args}: output does not match '${pattern}':\n${out}${err}")
  endif()
endfunction()

function(expect_untouched after)
  file(READ "${header}" now)
  if(NOT now STREQUAL sentinel)
    message(FATAL_ERROR "amalgamate.py ${after} rewrote the single header")
  endif()
endfunction()

run("--bogus" 2 "usage: .*unrecognized arguments: --bogus")
expect_untouched("--bogus")
run("--check;extra" 2 "usage: .*unrecognized arguments: extra")
expect_untouched("--check extra")
run("--help" 0 "usage: .*--check")
expect_untouched("--help")
run("-h" 0 "usage: ")
expect_untouched("-h")
run("--check" 1 "is stale")
expect_untouched("--check")
run("" 0 "")
file(READ "${header}" now)
if(now STREQUAL sentinel OR NOT now MATCHES "^// reservoir: ")
  message(FATAL_ERROR "amalgamate.py without arguments did not write the single header")
endif()
message(STATUS "amalgamate.py: --bogus, --help, -h and --check write nothing; no argument writes")
