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

# Smoke training on real data (about a minute on 2 cores). The data directory is FOFA_DATA_DIR
# (cache or environment) or ../shared/data beside the source; when it was given explicitly and is
# missing, the test fails instead of being skipped.
set(_train_data_dir "${FOFA_DATA_DIR}")
if(NOT _train_data_dir AND DEFINED ENV{FOFA_DATA_DIR})
  set(_train_data_dir "$ENV{FOFA_DATA_DIR}")
endif()
set(_train_data_given ON)
if(NOT _train_data_dir)
  set(_train_data_dir "${PROJECT_SOURCE_DIR}/../shared/data")
  set(_train_data_given OFF)
endif()
if(FOFA_BUILD_EXAMPLES)
  if(EXISTS "${_train_data_dir}/amazon-games.txt")
    add_test(NAME train_smoke_real_data
      COMMAND ${CMAKE_COMMAND} -DFOFA=$<TARGET_FILE:fofa-cli> -DDATA=${_train_data_dir}/amazon-games.txt
              -DCONFIG=${CMAKE_CURRENT_SOURCE_DIR}/train/smoke_config.json -DWORK=${CMAKE_CURRENT_BINARY_DIR}/train_smoke
              -P ${CMAKE_CURRENT_SOURCE_DIR}/train/smoke_check.cmake)
    set_tests_properties(train_smoke_real_data PROPERTIES TIMEOUT 600)
  elseif(_train_data_given)
    add_test(NAME train_smoke_real_data
      COMMAND ${CMAKE_COMMAND} -E echo "FOFA_DATA_DIR=${_train_data_dir} has no amazon-games.txt")
    set_tests_properties(train_smoke_real_data PROPERTIES WILL_FAIL ON)
  endif()
endif()

# `fofa train` on a small generated interaction file: warm start (--init), --resume, and the
# errors that must come before any training.
if(FOFA_BUILD_EXAMPLES)
  add_test(NAME train_cli
    COMMAND ${CMAKE_COMMAND} -DFOFA=$<TARGET_FILE:fofa-cli> -DWORK=${CMAKE_CURRENT_BINARY_DIR}/train_cli
            -P ${CMAKE_CURRENT_SOURCE_DIR}/train/train_cli_check.cmake)
endif()

# The demo's controller separates its two kinds of synthetic users (a few seconds in Release; the
# sanitizer build runs the demo but does not check where training lands).
if(FOFA_BUILD_EXAMPLES)
  set(_demo_outcome ON)
  if(FOFA_SANITIZE)
    set(_demo_outcome OFF)
  endif()
  add_test(NAME train_demo_controller
    COMMAND ${CMAKE_COMMAND} -DFOFA=$<TARGET_FILE:fofa-cli> -DOUTCOME=${_demo_outcome}
            -P ${CMAKE_CURRENT_SOURCE_DIR}/train/demo_check.cmake)
  set_tests_properties(train_demo_controller PROPERTIES TIMEOUT 900)
endif()

# The results pipeline (warm_start.py -> run_results.py -> table.py -> plots.py) on a tiny generated
# data set with tiny copies of tools/results/configs: a few seconds.
if(FOFA_BUILD_EXAMPLES AND Python3_Interpreter_FOUND)
  add_test(NAME train_results_pipeline
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/train/results_pipeline.py
            $<TARGET_FILE:fofa-cli> ${CMAKE_CURRENT_BINARY_DIR}/results_pipeline)
  set_tests_properties(train_results_pipeline PROPERTIES TIMEOUT 600)
endif()
