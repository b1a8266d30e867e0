# Checks of the files around the headers (tools, operations files), run by
# ctest with the unit tests. Included from the top-level CMakeLists.txt when
# the tests are built.
find_program(RESERVOIR_PYTHON3 python3)
if(NOT RESERVOIR_PYTHON3)
  message(WARNING "python3 not found: the checks of tools/ and docs/operations/ are not run (apt-get install python3)")
  return()
endif()

add_test(NAME "tools: amalgamate.py rejects unknown arguments and writes nothing"
         COMMAND "${CMAKE_COMMAND}" -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
                 -DWORK_DIR=${PROJECT_BINARY_DIR}/amalgamate-test -DPYTHON=${RESERVOIR_PYTHON3}
                 -P "${CMAKE_CURRENT_LIST_DIR}/amalgamate_test.cmake")
set_tests_properties("tools: amalgamate.py rejects unknown arguments and writes nothing"
                     PROPERTIES LABELS unit TIMEOUT 120)

# docs/operations/: the alert rules pass promtool (check and unit tests), and
# the dashboard and the rules name only metrics to_prometheus emits.
set(reservoir_operations_check "${PROJECT_SOURCE_DIR}/tests/observe/operations-check.sh")
add_test(NAME "operations: alert rules pass promtool check rules and their unit tests"
         COMMAND "${reservoir_operations_check}" rules "${PROJECT_SOURCE_DIR}")
add_test(NAME "operations: the dashboard and the alert rules name only metrics to_prometheus emits"
         COMMAND "${reservoir_operations_check}" names "${PROJECT_SOURCE_DIR}" $<TARGET_FILE:reservoir_unit_tests>
                 "${PROJECT_BINARY_DIR}/operations-check")
set_tests_properties("operations: alert rules pass promtool check rules and their unit tests"
                     "operations: the dashboard and the alert rules name only metrics to_prometheus emits"
                     PROPERTIES LABELS unit TIMEOUT 300)
