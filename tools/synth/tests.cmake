# tools/synth and tools/eval's tests (training families, held-out generator) and
# tools/train/evaluate.py's (AP, one tiny run through the cpipc binary built here).
# They need numpy, scipy and tifffile: the cellpose3 venv (tools/train/train.sh makes it).
# include() this inside if(CPIPC_BUILD_TESTS), after enable_testing().
set(CPIPC_CELLPOSE3_PYTHON "${CPIPC_CACHE_DIR}/cellpose3-venv/bin/python" CACHE FILEPATH "Python with cellpose==3.1.1.2")
if(EXISTS "${CPIPC_CELLPOSE3_PYTHON}")
  add_test(NAME synth_families
           COMMAND ${CPIPC_CELLPOSE3_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_synth.py)
  set_tests_properties(synth_families PROPERTIES LABELS tools TIMEOUT 120)
  if(TARGET cpipc-torch)  # segment needs the LibTorch half of cpipc
    set(_cpipc_eval_env "CPIPC_BINARY=$<TARGET_FILE:cpipc>")
  else()
    set(_cpipc_eval_env "CPIPC_BINARY=")  # the end-to-end case skips
  endif()
  add_test(NAME evaluate_tool
           COMMAND ${CPIPC_CELLPOSE3_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/../train/test_evaluate.py)
  set_tests_properties(evaluate_tool PROPERTIES LABELS tools TIMEOUT 300
                       ENVIRONMENT "PYTHONWARNINGS=ignore;${_cpipc_eval_env}")
else()
  message(STATUS "cpipc: ${CPIPC_CELLPOSE3_PYTHON} not found; the synth and evaluate tool tests are off")
endif()
