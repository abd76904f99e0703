# The autograd tests again with FOFA_ISA forcing the AVX2 and the scalar kernels, which also picks
# the matching versions of the autograd's own float loops (detail::BestIsa): the whole suite runs
# as it would on an AVX2-only or a pre-AVX2 x86-64 CPU. Assumes a CPU with AVX2 and FMA.
if(FOFA_DISPATCH AND CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  foreach(isa avx2 scalar)
    add_test(NAME autograd-isa-${isa} COMMAND fofa-tests-autograd)
    set_tests_properties(autograd-isa-${isa} PROPERTIES ENVIRONMENT FOFA_ISA=${isa})
  endforeach()
endif()
