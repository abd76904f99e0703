# Run with: cmake -DFOFA=path/to/fofa -DWORK=scratch/dir -P cli_smoke.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

include(${CMAKE_CURRENT_LIST_DIR}/../cli_script.cmake)

set(M ${WORK}/model.fofa)
set(DEV ${WORK}/device.fofa)
run(0 out random-model ${M} --items 60 --seed 7 --d 16 --heads 2 --blocks 4 --max-len 10 --head-bias 4)
run(0 out info ${M})
expect_contains("${out}" "fofa model file")
expect_contains("${out}" "blocks 4")
run(0 out info ${M} --json)
expect_contains("${out}" "\"kind\": \"model\"")

run(0 full score ${M} --history 3,17,42 --candidates 5,6,7 --budget 0.5)
expect_contains("${full}" "(2 of 4 blocks, budget 0.5")
expect_contains("${full}" "rank  item  logit")
run(0 out score ${M} --history 3,17,42 --candidates 5,6,7 --budget 0.5 --json)
expect_contains("${out}" "\"mask\"")
expect_contains("${out}" "\"ranking\"")

run(0 out export-device ${M} --history 3,17,42 --candidates 5,6,7 --budget 0.5 ${DEV})
expect_contains("${out}" " of 4, FLOPs")
run(0 out export-device ${M} --history 3,17,42 --candidates 5,6,7 --budget 0.5 ${WORK}/device2.fofa --json)
expect_contains("${out}" "\"kept\": [")
run(2 out export-device)
expect_contains("${out}" "--budget 0.5 OUT [--json]")  # the usage line lists it
run(0 out info ${DEV})
expect_contains("${out}" "fofa device file")
# The device file scores exactly what the full model printed for the same plan.
run(0 dev score ${DEV})
string(REGEX MATCH "rank  item  logit.*" full_rank "${full}")
string(REGEX MATCH "rank  item  logit.*" dev_rank "${dev}")
if(NOT full_rank STREQUAL dev_rank)
  message(FATAL_ERROR "device ranking differs from the full model:\n${full_rank}\nvs\n${dev_rank}")
endif()

# safetensors round trip (model and device file) scores the same.
run(0 out to-safetensors ${M} ${WORK}/model.safetensors)
run(0 out from-safetensors ${WORK}/model.safetensors ${WORK}/back.fofa)
run(0 back score ${WORK}/back.fofa --history 3,17,42 --candidates 5,6,7 --budget 0.5)
if(NOT back STREQUAL full)
  message(FATAL_ERROR "model after a safetensors round trip scores differently:\n${full}\nvs\n${back}")
endif()
run(0 out to-safetensors ${DEV} ${WORK}/device.safetensors)
run(0 out from-safetensors ${WORK}/device.safetensors ${WORK}/device_back.fofa)
expect_contains("${out}" "(device)")
run(0 back score ${WORK}/device_back.fofa)
if(NOT back STREQUAL dev)
  message(FATAL_ERROR "device file after a safetensors round trip scores differently")
endif()
run(1 out from-safetensors ${WORK}/model.fofa ${WORK}/nope.fofa)
if(EXISTS ${WORK}/nope.fofa)
  message(FATAL_ERROR "a failed import left a file behind")
endif()

# device-latency on a small interaction file: 6 users, "user item" lines, ids up to 150 (the
# evaluation protocol draws 100 negatives the user never saw).
set(ML ${WORK}/latency-model.fofa)
run(0 out random-model ${ML} --items 200 --seed 7 --d 16 --heads 2 --blocks 4 --max-len 10 --head-bias 4)
set(D ${WORK}/interactions.txt)
write_interactions(${D} 5 6 140)
file(APPEND ${D} "6 148\n6 149\n6 150\n")
run(0 out device-latency ${ML} ${D} --budget 0.5 --users 3 --repeat 2 --json)
expect_contains("${out}" "\"users\": 3")
expect_contains("${out}" "\"blocks_kept_mean\": 2.0")
expect_contains("${out}" "\"request_us_p90\"")
run(0 out device-latency ${ML} ${D} --users 100)
expect_contains("${out}" "6 users, budget 1,")
# --users 0 means every user, in device-latency as in eval.
run(0 out device-latency ${ML} ${D} --users 0 --repeat 1)
expect_contains("${out}" "6 users, budget 1,")
run(0 out eval ${ML} ${D} --users 0 --no-full --json)
expect_contains("${out}" "\"users\": 6")
run(0 out device-latency ${ML} ${D} --budget 0.01 --users 1 --repeat 1)
expect_contains("${out}" "budget 0.01,")  # was "budget 0.0"
run(2 out device-latency ${ML} ${D} --repeat 18446744073709551615)  # ran forever
expect_contains("${out}" "--repeat: 18446744073709551615 is out of range [1, 1000000]")
run(2 out device-latency ${ML} ${D} --repeat 0)
expect_contains("${out}" "--repeat: 0 is out of range [1, 1000000]")
run(2 out eval ${ML} ${D} --finetune-lr 0.1)  # was ignored without --finetune-steps
expect_contains("${out}" "--finetune-lr only applies with --finetune-steps")
run(0 out eval ${ML} ${D} --users 5 --no-full --finetune-steps 0 --finetune-lr 0.1)  # S = 0: a sweep's baseline
run(2 out eval ${ML} ${D} --finetune-steps 1 --finetune-lr nan)
expect_contains("${out}" "--finetune-lr: nan is not a finite number")
run(1 out device-latency ${M} ${D})
expect_contains("${out}" "item ids up to 150 but the model knows 60")

# Finite weights that overflow float (final_ln at 3e38): exit 1 naming the cause, never an inf or
# NaN result printed with exit 0, and export-device writes no file the device could not score.
if(PYTHON)
  run(0 out to-safetensors ${ML} ${WORK}/latency.safetensors)
  execute_process(COMMAND ${PYTHON} ${CMAKE_CURRENT_LIST_DIR}/extreme_weights.py ${WORK}/latency.safetensors
                          ${WORK}/extreme.safetensors final_ln.weight final_ln.bias RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "extreme_weights.py failed: ${rc}")
  endif()
  set(MX ${WORK}/extreme.fofa)
  run(0 out from-safetensors ${WORK}/extreme.safetensors ${MX})
  run(1 out score ${MX} --history 3,17,42 --candidates 5,6,7)
  expect_contains("${out}" "non-finite user state")
  expect_contains("${out}" "weights overflow float")
  run(1 out score ${MX} --history 3,17,42 --candidates 5,6,7 --json)
  run(1 out export-device ${MX} --history 3,17,42 --candidates 5,6,7 --budget 1 ${WORK}/extreme-device.fofa)
  expect_contains("${out}" "non-finite user state")
  if(EXISTS ${WORK}/extreme-device.fofa)
    message(FATAL_ERROR "export-device wrote a device file for a non-finite user state")
  endif()
  run(1 out eval ${MX} ${D} --no-full)
  expect_contains("${out}" "evaluation of user 0 ")
  expect_contains("${out}" "non-finite score")
endif()

# Candidate lists: an empty one is a usage error and no device file is written; a repeated id is
# ranked once per occurrence (the library's rule), so both copies appear with the same logit.
run(2 out score ${M} --history 3 --candidates=)
expect_contains("${out}" "--candidates: empty candidate list")
run(0 out score ${M} --history 3,17 --candidates 5,6,5,7 --json)
string(JSON n LENGTH "${out}" ranking)
if(NOT n EQUAL 4)
  message(FATAL_ERROR "a repeated candidate was not ranked once per occurrence:\n${out}")
endif()
run(2 out export-device ${M} --history 3 --candidates= --budget 0.5 ${WORK}/no-candidates.fofa)
expect_contains("${out}" "empty candidate list")
if(EXISTS ${WORK}/no-candidates.fofa)
  message(FATAL_ERROR "export-device wrote a file for a refused candidate list")
endif()

# Usage errors exit with 2, data errors with 1, and name the problem.
run(2 out)
run(2 out frobnicate)
run(2 out score ${M} --history 3,x --candidates 5)
expect_contains("${out}" "\"x\" is not an item id")
run(2 out score ${M} --candidates 5)
expect_contains("${out}" "missing --history")
run(2 out score ${DEV} --budget 0.5)
run(1 out score ${M} --history 3,999 --candidates 5)
expect_contains("${out}" "history item id 999")
run(2 out score ${M} --history 3 --candidates 5 --budget 0)
expect_contains("${out}" "--budget: 0 is out of range (0, 1]")

# Numbers: counts and ids are plain decimal digits, floats finite; each is checked against the range
# of the variable it goes into (no silent narrowing), and the message shows what was typed.
foreach(threads 4294967296 2147483648)  # were "got 0" and "got -2147483648"
  run(2 out eval ${ML} ${D} --threads ${threads})
  expect_contains("${out}" "--threads: ${threads} is out of range [1, 256]")
endforeach()
set(R ${WORK}/refused.fofa)
run(2 out random-model ${R} --items " -5")  # was a data error "got -5"
expect_contains("${out}" "--items: \" -5\" is not a non-negative integer")
foreach(seed " -1" "+1" "0x10" "1.0")  # " -1" was 18446744073709551615
  run(2 out random-model ${R} --items 10 --seed "${seed}")
  expect_contains("${out}" "--seed: \"${seed}\" is not a non-negative integer")
endforeach()
run(2 out random-model ${R} --items 10 --seed 18446744073709551616)
expect_contains("${out}" "--seed: 18446744073709551616 is out of range [0, 18446744073709551615]")
run(2 out random-model ${R} --items 10 --mapper-scale nan)  # was the same file as --mapper-scale 0
expect_contains("${out}" "--mapper-scale: nan is not a finite number")
run(2 out random-model ${R} --items 10 --mapper-scale -1)
expect_contains("${out}" "--mapper-scale: -1 is out of range [0, inf)")
run(2 out random-model ${R} --items 10 --head-bias 1e300)
expect_contains("${out}" "--head-bias: 1e300 is too large")
run(2 out random-model ${R} --items 10 --head-bias " 1")
expect_contains("${out}" "--head-bias: \" 1\" is not a number")
if(EXISTS ${R})
  message(FATAL_ERROR "a refused random-model wrote ${R}")
endif()
run(0 out random-model ${R} --items 10 --head-bias -1)  # a negative value after its option
run(2 out score ${M} --history " 3" --candidates 5)
expect_contains("${out}" "--history: \" 3\" is not an item id")
run(2 out score ${M} --history 3 --candidates -5)
expect_contains("${out}" "--candidates: \"-5\" is not an item id")
run(2 out score ${M} --history 3 --candidates 5 --budget 1.00000001)  # was taken as 1
expect_contains("${out}" "--budget: 1.00000001 is out of range (0, 1]")
run(2 out score ${M} --history 3 --candidates 5 --budget 1e-50)  # was "got 0"
expect_contains("${out}" "--budget: 1e-50 rounds to 0, out of range (0, 1]")
run(2 out export-device ${M} --history 3 --candidates 5 --budget inf ${WORK}/x.fofa)
expect_contains("${out}" "--budget: inf is not a finite number")

# An argument starting with '-' is an option; "--" ends the options.
run(2 out info ${M} -j)
expect_contains("${out}" "unknown option -j")
run(2 out random-model --items 10 --)  # wrote a file named "--"
expect_contains("${out}" "expected one OUT path, got 0")
run(0 out info -- ${M})
run(1 out score ${DEV} --candidates 9)
expect_contains("${out}" "candidate item 9 is not among")
run(1 out export-device ${M} --history 3 --candidates 5 --budget 0.5 ${WORK}/missing-dir/x.fofa)
# An output that is an input is refused before anything is written, and the input survives.
file(SHA256 ${M} m_hash)
run(1 out export-device ${M} --history 3 --candidates 5 --budget 0.5 ${M})
expect_contains("${out}" "is the same file as the input")
run(1 out to-safetensors ${M} ${M})
expect_contains("${out}" "writing it would destroy that input")
run(0 out to-safetensors ${M} ${WORK}/same.safetensors)
run(1 out from-safetensors ${WORK}/same.safetensors ${WORK}/same.safetensors)
expect_contains("${out}" "is the same file as the input")
file(SHA256 ${M} m_hash_after)
if(NOT m_hash STREQUAL m_hash_after)
  message(FATAL_ERROR "a refused same-path write changed the input model")
endif()
run(1 out export-device ${M} --history 3 --candidates 5 --budget 0.5 ${WORK})
expect_contains("${out}" "is a directory")
# /dev/stdout as the output: the model goes to stdout (here a file), the report to stderr.
execute_process(COMMAND ${FOFA} random-model /dev/stdout --items 50 OUTPUT_FILE ${WORK}/stdout.fofa
                ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT err MATCHES "wrote /dev/stdout")
  message(FATAL_ERROR "random-model /dev/stdout: exit ${rc}, stderr: ${err}")
endif()
run(0 out info ${WORK}/stdout.fofa)  # a whole, valid model: no report text inside it
# A directory given as an input is named as such.
run(1 out eval ${M} ${WORK})
expect_contains("${out}" "is a directory, not a data file")
run(1 out info ${WORK}/nothing.fofa)
file(WRITE ${WORK}/text.fofa "this is a text file, not a model, and it is longer than the preamble\n")
run(1 out info ${WORK}/text.fofa)
expect_contains("${out}" "bad magic")
run(1 out info ${M}.tmp.none)
message(STATUS "fofa CLI smoke test passed")
