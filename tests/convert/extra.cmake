# fofa-tests-convert calls convert_main() directly, so it needs the embedded built-in presets.
include(${PROJECT_SOURCE_DIR}/tools/convert/embed_presets.cmake)
fofa_convert_embed_presets(${CMAKE_CURRENT_BINARY_DIR}/convert_generated/presets_embedded.hpp)
target_include_directories(fofa-tests-convert PRIVATE ${CMAKE_CURRENT_BINARY_DIR}/convert_generated)

# Live PyTorch: regenerate every checkpoint and its expected logits with torch 1.13 in the build
# directory, then run the same comparisons against those files instead of the committed ones.
if(FOFA_TORCH_TESTS)
  set(_live ${CMAKE_CURRENT_BINARY_DIR}/convert_live)
  add_test(NAME convert_torch_generate
    COMMAND ${FOFA_TORCH_PYTHON} ${PROJECT_SOURCE_DIR}/tests/convert/make_checkpoints.py ${_live})
  set_tests_properties(convert_torch_generate PROPERTIES LABELS torch FIXTURES_SETUP convert_live)
  add_test(NAME convert_torch_compare COMMAND fofa-tests-convert)
  set_tests_properties(convert_torch_compare PROPERTIES LABELS torch FIXTURES_REQUIRED convert_live
    ENVIRONMENT "FOFA_CONVERT_DATA_DIR=${_live}")
endif()
