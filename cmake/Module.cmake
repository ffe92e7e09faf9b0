# switchyard_warnings(target): our own strict warnings (third-party headers are SYSTEM).
function(switchyard_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Werror)
  # GCC 12 at -O2/-O3 reports false positives inside Asio/Beast/libstdc++ inlining
  # (stringop-overflow, mismatched-new-delete, ...): keep them visible, not fatal.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${target} PRIVATE
      $<$<CONFIG:Release,RelWithDebInfo,MinSizeRel>:-Wno-error=stringop-overflow -Wno-error=restrict
        -Wno-error=array-bounds -Wno-error=mismatched-new-delete -Wno-error=maybe-uninitialized
        -Wno-error=dangling-pointer -Wno-error=free-nonheap-object -Wno-error=stringop-overread>)
  endif()
endfunction()

# switchyard_module(name SOURCES ... DEPENDS ...): one static library per module,
# public headers in include/switchyard/<name>/, sources in src/<name>/.
function(switchyard_module name)
  cmake_parse_arguments(M "" "" "SOURCES;DEPENDS;PRIVATE_DEPENDS" ${ARGN})
  add_library(sy_${name} STATIC ${M_SOURCES})
  target_include_directories(sy_${name} PUBLIC ${PROJECT_SOURCE_DIR}/include)
  target_link_libraries(sy_${name} PUBLIC sy_thirdparty ${M_DEPENDS} PRIVATE ${M_PRIVATE_DEPENDS})
  switchyard_warnings(sy_${name})
  if(SWITCHYARD_PCH)
    target_precompile_headers(sy_${name} REUSE_FROM switchyard_pch)
  endif()
endfunction()

# switchyard_test(name SOURCES ... DEPENDS ...): one gtest binary per module.
function(switchyard_test name)
  cmake_parse_arguments(T "" "" "SOURCES;DEPENDS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(${name} PRIVATE ${T_DEPENDS} GTest::gtest GTest::gtest_main)
  switchyard_warnings(${name})
  if(SWITCHYARD_PCH)
    target_precompile_headers(${name} REUSE_FROM switchyard_pch)
  endif()
  gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST PROPERTIES LABELS "unit;${T_LABELS}")
endfunction()
