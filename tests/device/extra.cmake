# Smoke test of the `fofa` executable (tools/cli): generate a small model, inspect, score,
# export a device file, score it, and check exit codes of usage (2) and data (1) errors (with a
# Python interpreter also those of weights that overflow float, made by device/extreme_weights.py).
if(FOFA_BUILD_EXAMPLES)
  add_test(NAME device_cli_smoke
    COMMAND ${CMAKE_COMMAND} -DFOFA=$<TARGET_FILE:fofa-cli> -DWORK=${CMAKE_CURRENT_BINARY_DIR}/device_cli_smoke
            -DPYTHON=${Python3_EXECUTABLE} -P ${CMAKE_CURRENT_SOURCE_DIR}/device/cli_smoke.cmake)
endif()

# Live PyTorch parity of device files (needs torch): fofa export-device + score vs fofa_torch.py.
if(FOFA_BUILD_EXAMPLES AND FOFA_TORCH_TESTS)
  add_test(NAME device_torch_parity
    COMMAND ${FOFA_TORCH_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/device/torch_device_parity.py
            $<TARGET_FILE:fofa-cli> ${CMAKE_CURRENT_BINARY_DIR}/device_torch_parity)
  set_tests_properties(device_torch_parity PROPERTIES LABELS torch)
endif()
