# Header-only builds of the kernel tests (no FOFA_DISPATCH, no library): kernels() is chosen
# inline from the flags of the including translation unit. Included from tests/CMakeLists.txt
# inside the loop over areas, so ${srcs} holds this area's test sources.
function(fofa_add_header_only_kernel_test name)
  add_executable(${name} ${srcs} ${CMAKE_CURRENT_SOURCE_DIR}/main.cpp)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/include)
  target_link_libraries(${name} PRIVATE doctest::doctest)
  target_compile_features(${name} PRIVATE cxx_std_20)
  target_compile_options(${name} PRIVATE ${FOFA_WARNINGS} ${ARGN})
  add_test(NAME ${name} COMMAND ${name})
endfunction()

fofa_add_header_only_kernel_test(fofa-tests-kernels-header-scalar -DFOFA_NO_XSIMD)
if(FOFA_USE_XSIMD AND CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  fofa_add_header_only_kernel_test(fofa-tests-kernels-header-avx2 -mavx2 -mfma)
  target_include_directories(fofa-tests-kernels-header-avx2 SYSTEM PRIVATE ${FOFA_XSIMD_INCLUDE_DIR})
endif()

# The FOFA_ISA override of dispatch builds: forcing scalar works, an unknown name is an error.
if(FOFA_DISPATCH)
  add_test(NAME kernels-isa-scalar COMMAND fofa-tests-kernels -tc=*FOFA_ISA*,*dispatcher*)
  set_tests_properties(kernels-isa-scalar PROPERTIES ENVIRONMENT FOFA_ISA=scalar)
  add_test(NAME kernels-isa-unknown COMMAND fofa-tests-kernels -tc=*FOFA_ISA*,*dispatcher*)
  set_tests_properties(kernels-isa-unknown PROPERTIES ENVIRONMENT FOFA_ISA=no-such-isa)
endif()
