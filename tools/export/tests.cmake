# tools/export's test: export a randomly initialised CPnet checkpoint with export.py,
# reload the TorchScript file, check the model contract and cpipc.json, and that bad
# checkpoints fail with one line. Needs Cellpose 3 (scripts/setup.sh / tools/train/train.sh
# make the venv); include() this inside if(CPIPC_BUILD_TESTS), after enable_testing().
set(CPIPC_CELLPOSE3_PYTHON "${CPIPC_CACHE_DIR}/cellpose3-venv/bin/python" CACHE FILEPATH "Python with cellpose==3.1.1.2")
if(EXISTS "${CPIPC_CELLPOSE3_PYTHON}")
  add_test(NAME export_tool
           COMMAND ${CPIPC_CELLPOSE3_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_export.py)
  set_tests_properties(export_tool PROPERTIES LABELS model TIMEOUT 300
                                              ENVIRONMENT "PYTHONWARNINGS=ignore")
else()
  message(STATUS "cpipc: ${CPIPC_CELLPOSE3_PYTHON} not found; the export tool test is off")
endif()

# CP-SAM's fused attention (sam_attention.py) against segment_anything's, with Cellpose 4's
# venv (scripts/setup.sh --reference); a second or so.
set(CPIPC_CELLPOSE4_PYTHON "${CPIPC_CACHE_DIR}/cellpose-venv/bin/python" CACHE FILEPATH "Python with cellpose==4.2.1.1")
if(EXISTS "${CPIPC_CELLPOSE4_PYTHON}")
  add_test(NAME export_sam_attention
           COMMAND ${CPIPC_CELLPOSE4_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_sam_attention.py)
  set_tests_properties(export_sam_attention PROPERTIES LABELS "model;cpsam" TIMEOUT 120
                                                       ENVIRONMENT "PYTHONWARNINGS=ignore")
else()
  message(STATUS "cpipc: ${CPIPC_CELLPOSE4_PYTHON} not found; the CP-SAM attention test is off")
endif()
