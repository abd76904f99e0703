# `fofa train --init`: a DUET-style model (mapper on) warm-started from a trained static model
# scores exactly like it before its own training moves it (SPEC 4: zero-initialised mapper heads),
# here with a learning rate too small to move any weight; plus the errors of a bad --init.
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
message(STATUS "fofa train --init check passed")
