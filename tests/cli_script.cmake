# Helpers for the cmake -P scripts that drive the `fofa` executable (tests/*/*.cmake):
#   run(<expected exit code> <output var> args...)   runs ${FOFA} args, checks the exit code, returns stdout+stderr
#   expect_contains(<text> <needle>)
#   write_interactions(<path> <users> <items per user> <ids>)   a "user item" file, ids in [1, ids]
function(run expect outvar)
  execute_process(COMMAND ${FOFA} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL expect)
    message(FATAL_ERROR "fofa ${ARGN}: exit ${rc}, expected ${expect}\nstdout: ${out}\nstderr: ${err}")
  endif()
  set(${outvar} "${out}${err}" PARENT_SCOPE)
endfunction()

function(expect_contains text needle)
  string(FIND "${text}" "${needle}" pos)
  if(pos EQUAL -1)
    message(FATAL_ERROR "expected \"${needle}\" in:\n${text}")
  endif()
endfunction()

function(write_interactions path users per_user ids)
  set(text "")
  foreach(u RANGE 1 ${users})
    foreach(i RANGE 1 ${per_user})
      math(EXPR item "(${u} * 37 + ${i} * ${i} * 11) % ${ids} + 1")
      string(APPEND text "${u} ${item}\n")
    endforeach()
  endforeach()
  file(WRITE ${path} "${text}")
endfunction()
