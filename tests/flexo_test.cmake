# fx_add_test(NAME SOURCE [LIBS ...]): one ctest executable built from one
# source file that sits beside the code it tests.
function(fx_add_test name source)
  add_executable(${name} ${source})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(${name} PRIVATE flexo_common ${ARGN})
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT 600
    ENVIRONMENT "OPENBLAS_NUM_THREADS=1;FLEXO_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()
