# `fofa train` CLI checks on a small generated interaction file.
# --init: a DUET-style model (mapper on) warm-started from a trained static model scores exactly like
# it before its own training moves it (SPEC 4: zero-initialised mapper heads), here with a learning
# rate too small to move any weight; plus the errors of a bad --init.
# --resume: says whether it found a checkpoint. Errors that must come before any training: an output
# path that cannot be written, data with no user to validate.
# -DFOFA=... -DWORK=...
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

include(${CMAKE_CURRENT_LIST_DIR}/../cli_script.cmake)

# 40 users of 8 items over 150 ids.
set(D ${WORK}/interactions.txt)
write_interactions(${D} 40 8 150)
set(MODEL "\"d\": 16, \"heads\": 1, \"blocks\": 2, \"max_len\": 10, \"ffn\": 16, \"controller\": { \"enabled\": false }")
set(TRAIN "\"epochs\": 1, \"steps_per_epoch\": 3, \"batch\": 16, \"eval_users\": 20, \"progress\": false, \"threads\": 1")
file(WRITE ${WORK}/static.json "{ \"model\": { ${MODEL}, \"mapper\": { \"mode\": \"off\" } }, \"train\": { ${TRAIN}, \"lr\": 0.01 } }")
file(WRITE ${WORK}/duet.json "{ \"model\": { ${MODEL}, \"mapper\": { \"mode\": \"lowrank\", \"rank\": 2, \"code_width\": 8, \"structure_width\": 4 } }, \"train\": { ${TRAIN}, \"lr\": 1e-12 } }")
file(WRITE ${WORK}/wide.json "{ \"model\": { \"d\": 32, \"heads\": 1, \"blocks\": 2, \"max_len\": 10, \"ffn\": 16, \"controller\": { \"enabled\": false }, \"mapper\": { \"mode\": \"off\" } }, \"train\": { ${TRAIN} } }")

run(0 out train ${D} --config ${WORK}/static.json --out ${WORK}/static.fofa)
run(0 report train ${D} --config ${WORK}/duet.json --out ${WORK}/duet.fofa --init ${WORK}/static.fofa --json)
expect_contains("${report}" "initialised")
string(JSON copied GET "${report}" init copied)
string(JSON kept_n LENGTH "${report}" init kept_init)
if(copied LESS 10 OR kept_n LESS 5)
  message(FATAL_ERROR "--init copied ${copied} tensors and left ${kept_n} (mapper) at their init")
endif()
run(0 s score ${WORK}/static.fofa --history 3,17,42,88 --candidates 5,6,7,120,140)
run(0 t score ${WORK}/duet.fofa --history 3,17,42,88 --candidates 5,6,7,120,140)
string(REGEX MATCH "rank  item  logit.*" s_rank "${s}")
string(REGEX MATCH "rank  item  logit.*" t_rank "${t}")
if(NOT s_rank STREQUAL t_rank)
  message(FATAL_ERROR "a DUET model warm-started from the static one scores differently:\n${s_rank}\nvs\n${t_rank}")
endif()

# A model of another width cannot initialise this one; nothing is written.
run(1 out train ${D} --config ${WORK}/wide.json --out ${WORK}/wide.fofa --init ${WORK}/static.fofa)
expect_contains("${out}" "--init ${WORK}/static.fofa")
if(EXISTS ${WORK}/wide.fofa)
  message(FATAL_ERROR "a failed --init left a model behind")
endif()
run(1 out train ${D} --config ${WORK}/wide.json --out ${WORK}/wide.fofa --init ${WORK}/missing.fofa)

# --resume without a checkpoint says it starts from the beginning; with one, that it resumed.
string(REPLACE "\"epochs\": 1" "\"epochs\": 2" TRAIN2 "${TRAIN}")
file(WRITE ${WORK}/two_epochs.json "{ \"model\": { ${MODEL}, \"mapper\": { \"mode\": \"off\" } }, \"train\": { ${TRAIN2} } }")
run(0 out train ${D} --config ${WORK}/two_epochs.json --out ${WORK}/r.fofa --resume --epochs 1)
expect_contains("${out}" "no checkpoint ${WORK}/r.fofa.ckpt yet: --resume starts from the beginning")
run(0 out train ${D} --config ${WORK}/two_epochs.json --out ${WORK}/r.fofa --resume)
expect_contains("${out}" "resumed from ${WORK}/r.fofa.ckpt after epoch 1")
expect_contains("${out}" "epoch 2/2")
run(0 out info ${WORK}/r.fofa.ckpt)  # a checkpoint is described as one (it failed as a model with extra tensors)
expect_contains("${out}" "training checkpoint after epoch 2 (best epoch")
run(0 out train ${D} --config ${WORK}/two_epochs.json --out ${WORK}/r.fofa --resume)  # nothing left: no epoch 3
expect_contains("${out}" "its run is complete (all epochs run): nothing more to train")
string(FIND "${out}" "epoch 3/" more)
if(NOT more EQUAL -1)
  message(FATAL_ERROR "--resume of a finished run trained again:\n${out}")
endif()

# An output (or checkpoint) that cannot be written fails before the first epoch, not after it.
function(expect_refused_before_training needle)
  run(1 out train ${D} --config ${WORK}/static.json ${ARGN})
  expect_contains("${out}" "${needle}")
  string(FIND "${out}" "epoch 1/" trained)
  if(NOT trained EQUAL -1)
    message(FATAL_ERROR "fofa train trained before refusing its output path:\n${out}")
  endif()
endfunction()
expect_refused_before_training("${WORK}/no-such-dir/m.fofa: cannot be written: No such file or directory"
                               --out ${WORK}/no-such-dir/m.fofa)
expect_refused_before_training("${WORK}/no-such-dir/c: cannot be written" --out ${WORK}/m.fofa
                               --checkpoint ${WORK}/no-such-dir/c)
expect_refused_before_training("is a directory" --out ${WORK})
expect_refused_before_training("output file name is empty" --out=)
expect_refused_before_training("is the same file as the input" --out ${D})
expect_refused_before_training("is the same file as the input" --out ${WORK}/m.fofa --checkpoint ${WORK}/static.json)
expect_refused_before_training("is the model file --out" --out ${WORK}/m.fofa --checkpoint ${WORK}/m.fofa)
file(MAKE_DIRECTORY ${WORK}/sub)
expect_refused_before_training("is the model file --out" --out ${WORK}/new.fofa --checkpoint ${WORK}/sub/../new.fofa)
run(1 out train ${D} --config ${WORK} --out ${WORK}/m.fofa)
expect_contains("${out}" "is a directory, not a configuration")

# Counts that do not fit the option are usage errors before training (4294967297 ran 1 thread, 1 epoch).
foreach(opt --threads --epochs)
  run(2 out train ${D} --config ${WORK}/static.json --out ${WORK}/n.fofa ${opt} 4294967297)
  expect_contains("${out}" "${opt}: 4294967297 is out of range [1, ")
endforeach()
run(2 out train ${D} --config ${WORK}/static.json --out ${WORK}/n.fofa --epochs 0)
expect_contains("${out}" "--epochs: 0 is out of range [1, 2147483647]")
run(2 out train ${D} --config ${WORK}/static.json --out ${WORK}/n.fofa --eval-users -1)
expect_contains("${out}" "--eval-users: \"-1\" is not a non-negative integer")

# Users of 2 interactions train but are never evaluated: with no other user, training is refused.
file(WRITE ${WORK}/short.txt "1 5\n1 6\n2 7\n2 8\n")
run(1 out train ${WORK}/short.txt --config ${WORK}/static.json --out ${WORK}/short.fofa)
expect_contains("${out}" "no user has 3 or more interactions")
if(EXISTS ${WORK}/short.fofa)
  message(FATAL_ERROR "a refused training left a model behind")
endif()
message(STATUS "fofa train CLI checks passed")
