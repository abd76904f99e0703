# Live PyTorch parity (label torch, only with -DFOFA_TORCH_TESTS=ON): regenerate the fixtures with
# fofa_torch.py into the build tree, then run the same C++ comparisons on them.
if(FOFA_TORCH_TESTS AND TARGET fofa-tests-model)
  set(_fofa_live_dir ${CMAKE_CURRENT_BINARY_DIR}/model_torch_fixtures)
  add_test(NAME model_torch_generate
    COMMAND ${FOFA_TORCH_PYTHON} ${PROJECT_SOURCE_DIR}/tools/convert/make_fixtures.py --out ${_fofa_live_dir})
  set_tests_properties(model_torch_generate PROPERTIES LABELS torch FIXTURES_SETUP model_torch_fixtures)
  add_test(NAME model_torch_parity
    COMMAND ${CMAKE_COMMAND} -E env FOFA_MODEL_FIXTURES=${_fofa_live_dir}
            $<TARGET_FILE:fofa-tests-model> --test-case=*fofa_torch*,*compile time*)
  set_tests_properties(model_torch_parity PROPERTIES LABELS torch FIXTURES_REQUIRED model_torch_fixtures)
  # The reference's own pieces against PyTorch's modules (GRU, MultiheadAttention), ST gradient, I/O.
  add_test(NAME model_torch_reference COMMAND ${FOFA_TORCH_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_fofa_torch.py)
  set_tests_properties(model_torch_reference PROPERTIES LABELS torch)
endif()
