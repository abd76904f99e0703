# `fofa demo` (the README's main job) on its synthetic data, seed 1, 2 threads: training must make the
# controller's choice visible — short-pattern users keep fewer blocks than long-range users (measured:
# 0.00 against 1.00; cmd_demo.cpp says why) — and both kinds must be ranked far better than chance
# (HR@10 of a random ranking among 101 candidates is about 0.10).
# -DFOFA=... [-DOUTCOME=OFF: only run it and check the report's shape; the sanitizer build uses this,
# since its -O1 code may round differently and training is chaotic enough to land elsewhere]
include(${CMAKE_CURRENT_LIST_DIR}/../cli_script.cmake)

# Bad options: clear errors before any training.
run(2 bad demo --quiet --min-blocks 2 --epochs 1)
expect_contains("${bad}" "--min-blocks: 2 is out of range [0, 1]")
run(2 bad demo --quiet --min-blocks x)
expect_contains("${bad}" "--min-blocks")
run(2 bad demo --quiet --epochs 0)  # ran the default 15 epochs
expect_contains("${bad}" "--epochs: 0 is out of range [1, 2147483647]")
run(2 bad demo --quiet --threads 4294967297)  # ran 1 thread
expect_contains("${bad}" "--threads: 4294967297 is out of range [1, 256]")
run(2 bad demo --quiet --lambda -1)
expect_contains("${bad}" "--lambda: -1 is out of range [0, inf)")
run(2 bad demo --quiet --budget 0)
expect_contains("${bad}" "--budget: 0 is out of range (0, 1]")

run(0 out demo --quiet --threads 2 --seed 1)
string(REGEX MATCH "mean blocks kept: short-pattern users ([0-9.]+), long-range users ([0-9.]+)" m "${out}")
if(NOT m)
  message(FATAL_ERROR "no per-kind blocks line in the demo output:\n${out}")
endif()
if(DEFINED OUTCOME AND NOT OUTCOME)
  return()
endif()
set(short_blocks ${CMAKE_MATCH_1})
set(long_blocks ${CMAKE_MATCH_2})
if(NOT long_blocks GREATER_EQUAL 1 OR NOT short_blocks LESS 0.5)
  message(FATAL_ERROR "the controller does not separate the user kinds: short ${short_blocks}, long ${long_blocks} blocks\n${out}")
endif()
foreach(kind "short users" "long-range users")
  string(REGEX MATCH "${kind} +\\([0-9]+\\): HR@10 ([0-9.]+)" m "${out}")
  if(NOT m OR CMAKE_MATCH_1 LESS 0.6)
    message(FATAL_ERROR "${kind}: test HR@10 '${CMAKE_MATCH_1}' (expected >= 0.6)\n${out}")
  endif()
endforeach()
# The sessions ran on both kinds' sub-models, including empty ones (no block kept).
expect_contains("${out}" "blocks ....  FLOPs 0.00 M")
expect_contains("${out}" "(long-range)  blocks")
