# Training extras: the C++ driver of the PyTorch training-parity check (live, LABELS torch) and a
# short smoke training of the CLI on real data (when the data directory exists).
add_executable(fofa-train-parity ${CMAKE_CURRENT_SOURCE_DIR}/train/parity/train_parity.cpp)
target_link_libraries(fofa-train-parity PRIVATE fofa::fofa)
target_compile_options(fofa-train-parity PRIVATE ${FOFA_WARNINGS})
if(FOFA_TORCH_TESTS)
  add_test(NAME train_torch_parity
    COMMAND ${FOFA_TORCH_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/train/torch_train_parity.py
            $<TARGET_FILE:fofa-train-parity> ${CMAKE_CURRENT_BINARY_DIR}/train_parity)
  set_tests_properties(train_torch_parity PROPERTIES LABELS torch)
endif()
