# find_package from an install prefix and add_subdirectory both give a working fofa::fofa.
add_test(NAME install COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/install/check.sh ${PROJECT_SOURCE_DIR}
         ${CMAKE_CURRENT_BINARY_DIR}/install-check)
