# Runs `fofa train` on a real data file and checks the report: the loss falls between the two
# epochs and test HR@10 / NDCG@10 beat random ranking (HR@10 = 10/101 ~ 0.099) by a wide margin.
# -DFOFA=... -DDATA=... -DCONFIG=... -DWORK=...
file(MAKE_DIRECTORY ${WORK})
execute_process(COMMAND ${FOFA} train ${DATA} --config ${CONFIG} --out ${WORK}/smoke.fofa --quiet --json
  RESULT_VARIABLE rc OUTPUT_VARIABLE report ERROR_VARIABLE log)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fofa train failed (${rc}):\n${log}")
endif()
string(JSON loss0 GET "${report}" history 0 loss)
string(JSON loss1 GET "${report}" history 1 loss)
string(JSON hr10 GET "${report}" test hr10)
string(JSON ndcg10 GET "${report}" test ndcg10)
message(STATUS "smoke training: loss ${loss0} -> ${loss1}, test HR@10 ${hr10}, NDCG@10 ${ndcg10}")
if(NOT loss1 LESS loss0)
  message(FATAL_ERROR "loss did not fall: ${loss0} -> ${loss1}")
endif()
if(hr10 LESS 0.3 OR ndcg10 LESS 0.15)
  message(FATAL_ERROR "test HR@10 ${hr10} / NDCG@10 ${ndcg10} do not beat random (0.099 / ~0.045) by a wide margin")
endif()
execute_process(COMMAND ${FOFA} eval ${WORK}/smoke.fofa ${DATA} --json --users 500
  RESULT_VARIABLE rc OUTPUT_VARIABLE ev ERROR_VARIABLE log)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fofa eval failed (${rc}):\n${log}")
endif()
string(JSON full_hr10 GET "${ev}" full hr10)
message(STATUS "fofa eval on 500 users: full-ranking HR@10 ${full_hr10}")
