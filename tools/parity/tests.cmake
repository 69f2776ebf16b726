# Live parity fixtures: where Cellpose 3 is installed, make_parity.py regenerates every
# case (the committed ones and the large float_large) into the build tree and checks the
# committed tests/data/model against it; the C++ parity tests then also run on the fresh
# set. include() this inside if(CPIPC_BUILD_TESTS), after add_subdirectory(tests).
set(CPIPC_CELLPOSE3_PYTHON "${CPIPC_CACHE_DIR}/cellpose3-venv/bin/python" CACHE FILEPATH "Python with cellpose==3.1.1.2")
if(EXISTS "${CPIPC_CELLPOSE3_PYTHON}")
  set(_cpipc_model_live ${CMAKE_BINARY_DIR}/model-live-fixtures)
  add_test(NAME model_live_fixtures
           COMMAND ${CPIPC_CELLPOSE3_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/make_parity.py
                   --out ${_cpipc_model_live} --cases all
                   --compare ${CMAKE_CURRENT_LIST_DIR}/../../tests/data/model)
  set_tests_properties(model_live_fixtures PROPERTIES FIXTURES_SETUP model_live_fixtures
                       LABELS model TIMEOUT 600 ENVIRONMENT "PYTHONWARNINGS=ignore")
  if(TARGET cpipc_model_tests)
    add_test(NAME model_against_live_cellpose
             COMMAND cpipc_model_tests --gtest_filter=Fixtures/CellposeParity.*)
    set_tests_properties(model_against_live_cellpose PROPERTIES
                         FIXTURES_REQUIRED model_live_fixtures LABELS model TIMEOUT 600
                         ENVIRONMENT "CPIPC_MODEL_FIXTURES=${_cpipc_model_live}")
  endif()
  # The same for diameter estimation: Cellpose.eval(diameter=0) made afresh.
  set(_cpipc_size_live ${CMAKE_BINARY_DIR}/size-live-fixtures)
  add_test(NAME size_live_fixtures
           COMMAND ${CPIPC_CELLPOSE3_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/make_size_fixtures.py
                   --out ${_cpipc_size_live})
  set_tests_properties(size_live_fixtures PROPERTIES FIXTURES_SETUP size_live_fixtures
                       LABELS model TIMEOUT 600 ENVIRONMENT "PYTHONWARNINGS=ignore")
  if(TARGET cpipc_model_tests)
    add_test(NAME size_against_live_cellpose
             COMMAND cpipc_model_tests --gtest_filter=Fixtures/CellposeSizeParity.*)
    set_tests_properties(size_against_live_cellpose PROPERTIES
                         FIXTURES_REQUIRED size_live_fixtures LABELS model TIMEOUT 600
                         ENVIRONMENT "CPIPC_SIZE_FIXTURES=${_cpipc_size_live}")
  endif()
  # tests/data/flags (Cellpose's --norm_percentile, --exclude_on_edges, ...) made afresh and compared.
  add_test(NAME flag_fixtures_live
           COMMAND ${CPIPC_CELLPOSE3_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/make_flag_fixtures.py
                   --out ${CMAKE_BINARY_DIR}/flag-live-fixtures
                   --compare ${CMAKE_CURRENT_LIST_DIR}/../../tests/data/flags)
  set_tests_properties(flag_fixtures_live PROPERTIES LABELS model TIMEOUT 600 ENVIRONMENT "PYTHONWARNINGS=ignore")
  # 3-D: segment --do-3d / --stitch-threshold against Cellpose's eval(do_3D / stitch_threshold) on five
  # stacks; Cellpose's outputs cached in the cache dir (minutes each to make).
  if(TARGET cpipc-torch)
    add_test(NAME volume_parity
             COMMAND ${CPIPC_CELLPOSE3_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/volume_parity.py --cpipc $<TARGET_FILE:cpipc>)
    set_tests_properties(volume_parity PROPERTIES SKIP_RETURN_CODE 77 RUN_SERIAL TRUE TIMEOUT 3600 LABELS "model;3d"
                         ENVIRONMENT "PYTHONWARNINGS=ignore;CPIPC_CACHE_DIR=${CPIPC_CACHE_DIR}")
  endif()
else()
  message(STATUS "cpipc: ${CPIPC_CELLPOSE3_PYTHON} not found; live model parity fixtures are off")
endif()

# Cellpose-SAM against Cellpose 4.2.1.1's own eval (scripts/setup.sh --reference makes its
# venv): a seeded random CP-SAM, made and exported once into the cache (2.5 GB), Cellpose's
# outputs cached beside it. Alone (RUN_SERIAL): each CP-SAM forward takes both cores.
set(CPIPC_CELLPOSE4_PYTHON "${CPIPC_CACHE_DIR}/cellpose-venv/bin/python" CACHE FILEPATH "Python with cellpose==4.2.1.1")
if(EXISTS "${CPIPC_CELLPOSE4_PYTHON}" AND TARGET cpipc-torch)
  add_test(NAME cpsam_parity
           COMMAND ${CPIPC_CELLPOSE4_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/cpsam_parity.py --cpipc $<TARGET_FILE:cpipc>)
  set_tests_properties(cpsam_parity PROPERTIES SKIP_RETURN_CODE 77 RUN_SERIAL TRUE TIMEOUT 2700 LABELS "model;cpsam"
                       ENVIRONMENT "PYTHONWARNINGS=ignore;CPIPC_CACHE_DIR=${CPIPC_CACHE_DIR}")
else()
  message(STATUS "cpipc: ${CPIPC_CELLPOSE4_PYTHON} not found; the Cellpose-SAM parity test is off (setup.sh --reference)")
endif()
