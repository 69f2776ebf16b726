# Finds cpipc's dependencies, each where its users would take it from:
# Debian packages, the CUDA toolkit in /usr/local/cuda, LibTorch from the
# PyPI torch wheel in a virtual env outside the repo (scripts/setup.sh).

find_package(Threads REQUIRED)

# Machines without Debian's packages (the lent GPU machines) use a folder
# packed by tools/gpu/pack_deps.sh: CLI11 and nlohmann-json headers and the
# GoogleTest sources.
set(CPIPC_DEPS_DIR "" CACHE PATH "Packed dependencies (tools/gpu/pack_deps.sh), used when a package is missing")

function(cpipc_header_only target header)
  if(CPIPC_DEPS_DIR AND EXISTS "${CPIPC_DEPS_DIR}/include/${header}")
    add_library(${target} INTERFACE IMPORTED GLOBAL)
    set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${CPIPC_DEPS_DIR}/include")
    message(STATUS "cpipc: ${target} from ${CPIPC_DEPS_DIR}")
  else()
    message(FATAL_ERROR "cpipc: ${target} not found; run scripts/setup.sh (or set CPIPC_DEPS_DIR)")
  endif()
endfunction()

find_package(nlohmann_json 3.10 CONFIG QUIET)
if(NOT nlohmann_json_FOUND)
  cpipc_header_only(nlohmann_json::nlohmann_json nlohmann/json.hpp)
endif()
if(CPIPC_CLIENT_ONLY)  # the Python package: the segment and the service client need no more
  return()
endif()
find_package(CLI11 CONFIG QUIET)
if(NOT CLI11_FOUND)
  cpipc_header_only(CLI11::CLI11 CLI/CLI.hpp)
endif()
if(CPIPC_BUILD_TESTS)
  find_package(GTest QUIET)
  if(NOT GTest_FOUND)
    if(CPIPC_DEPS_DIR AND EXISTS "${CPIPC_DEPS_DIR}/googletest/CMakeLists.txt")
      set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
      add_subdirectory("${CPIPC_DEPS_DIR}/googletest" "${CMAKE_BINARY_DIR}/_deps/googletest" EXCLUDE_FROM_ALL)
      message(STATUS "cpipc: GoogleTest from ${CPIPC_DEPS_DIR}")
    else()
      message(FATAL_ERROR "cpipc: GoogleTest not found; run scripts/setup.sh (or set CPIPC_DEPS_DIR)")
    endif()
  endif()
endif()

# libpng: PNG in every build (src/io/png_codec.cpp); from a packed folder
# (its headers and libpng16.so.16) on machines without Debian's package.
find_package(PNG QUIET)
if(NOT PNG_FOUND)
  if(CPIPC_DEPS_DIR AND EXISTS "${CPIPC_DEPS_DIR}/include/png.h" AND EXISTS "${CPIPC_DEPS_DIR}/lib/libpng16.so.16")
    add_library(PNG::PNG SHARED IMPORTED GLOBAL)
    set_target_properties(PNG::PNG PROPERTIES IMPORTED_LOCATION "${CPIPC_DEPS_DIR}/lib/libpng16.so.16"
                                              INTERFACE_INCLUDE_DIRECTORIES "${CPIPC_DEPS_DIR}/include")
    message(STATUS "cpipc: libpng from ${CPIPC_DEPS_DIR}")
  else()
    message(FATAL_ERROR "cpipc: libpng not found; run scripts/setup.sh (libpng-dev) or set CPIPC_DEPS_DIR")
  endif()
endif()

set(CPIPC_HAVE_OPENCV OFF)
if(CPIPC_WITH_OPENCV)
  find_package(OpenCV QUIET COMPONENTS core imgcodecs imgproc)
  if(OpenCV_FOUND)
    set(CPIPC_HAVE_OPENCV ON)
  else()
    message(STATUS "cpipc: OpenCV not found; PNG/TIFF/JPEG support is off (.npy and .bin still work)")
  endif()
endif()

# libtiff: the TIFF reader and writer (src/io/tiff_*.cpp). Debian's
# libtiff-dev, or on the lent GPU machines the headers and libtiff.so.6
# (with the libraries it needs) that tools/gpu/pack_deps.sh packs.
find_package(TIFF QUIET)
if(NOT TIFF_FOUND)
  if(CPIPC_DEPS_DIR AND EXISTS "${CPIPC_DEPS_DIR}/include/tiffio.h" AND EXISTS "${CPIPC_DEPS_DIR}/lib/libtiff.so")
    add_library(TIFF::TIFF SHARED IMPORTED GLOBAL)
    set_target_properties(TIFF::TIFF PROPERTIES IMPORTED_LOCATION "${CPIPC_DEPS_DIR}/lib/libtiff.so.6"
                                                INTERFACE_INCLUDE_DIRECTORIES "${CPIPC_DEPS_DIR}/include")
    # libtiff.so.6's own dependencies (libzstd, libjpeg, ...) lie beside it:
    # let the linker and the loader find them there. DT_RPATH, not RUNPATH:
    # only DT_RPATH is searched for a library's own dependencies too.
    set(CMAKE_BUILD_RPATH "${CMAKE_BUILD_RPATH};${CPIPC_DEPS_DIR}/lib")
    add_link_options("LINKER:-rpath-link,${CPIPC_DEPS_DIR}/lib" "LINKER:--disable-new-dtags")
    message(STATUS "cpipc: libtiff from ${CPIPC_DEPS_DIR}")
  else()
    message(FATAL_ERROR "cpipc: libtiff not found; run scripts/setup.sh (libtiff-dev) or set CPIPC_DEPS_DIR")
  endif()
endif()

# libzip: the ImageJ ROI archive (<stem>_rois.zip, src/io/imagej_rois.cpp).
# Debian's libzip-dev through pkg-config (its CMake package names programs
# of other packages, zipcmp and co., and fails without them), or the headers
# and libzip.so.4 (with the libraries it needs) that tools/gpu/pack_deps.sh packs.
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(CPIPC_LIBZIP QUIET IMPORTED_TARGET GLOBAL libzip)
endif()
if(TARGET PkgConfig::CPIPC_LIBZIP)
  add_library(libzip::zip ALIAS PkgConfig::CPIPC_LIBZIP)
else()
  if(CPIPC_DEPS_DIR AND EXISTS "${CPIPC_DEPS_DIR}/include/zip.h" AND EXISTS "${CPIPC_DEPS_DIR}/lib/libzip.so.4")
    add_library(libzip::zip SHARED IMPORTED GLOBAL)
    set_target_properties(libzip::zip PROPERTIES IMPORTED_LOCATION "${CPIPC_DEPS_DIR}/lib/libzip.so.4"
                                                 INTERFACE_INCLUDE_DIRECTORIES "${CPIPC_DEPS_DIR}/include")
    set(CMAKE_BUILD_RPATH "${CMAKE_BUILD_RPATH};${CPIPC_DEPS_DIR}/lib")
    add_link_options("LINKER:-rpath-link,${CPIPC_DEPS_DIR}/lib" "LINKER:--disable-new-dtags")
    message(STATUS "cpipc: libzip from ${CPIPC_DEPS_DIR}")
  else()
    message(FATAL_ERROR "cpipc: libzip not found; run scripts/setup.sh (libzip-dev) or set CPIPC_DEPS_DIR")
  endif()
endif()

# libuuid (util-linux): the ROIs' names, uuid1 as Python's uuid module makes
# them with it. Debian's uuid-dev, or the packed header and libuuid.so.1.
find_path(CPIPC_UUID_INCLUDE_DIR uuid/uuid.h HINTS "${CPIPC_DEPS_DIR}/include")
find_library(CPIPC_UUID_LIBRARY NAMES uuid libuuid.so.1 HINTS "${CPIPC_DEPS_DIR}/lib")
if(NOT CPIPC_UUID_INCLUDE_DIR OR NOT CPIPC_UUID_LIBRARY)
  message(FATAL_ERROR "cpipc: libuuid not found; run scripts/setup.sh (uuid-dev) or set CPIPC_DEPS_DIR")
endif()
add_library(cpipc::uuid UNKNOWN IMPORTED GLOBAL)
set_target_properties(cpipc::uuid PROPERTIES IMPORTED_LOCATION "${CPIPC_UUID_LIBRARY}"
                                             INTERFACE_INCLUDE_DIRECTORIES "${CPIPC_UUID_INCLUDE_DIR}")

# CUDA: on when nvcc is found. sm_90 (H100/H200) code plus compute_90 PTX so
# newer cards JIT it.
set(CPIPC_HAVE_CUDA OFF)
if(CPIPC_WITH_CUDA)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)  # 90 = sm_90 SASS + compute_90 PTX
    endif()
    enable_language(CUDA)
    # CMake 3.25 knows no CUDA20 dialect flag for nvcc (3.26 does): teach it.
    if(NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
      set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
      set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
    endif()
    set(CMAKE_CUDA_STANDARD 20)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    find_package(CUDAToolkit REQUIRED)
    set(CPIPC_HAVE_CUDA ON)
    message(STATUS "cpipc: CUDA ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}")
  else()
    message(STATUS "cpipc: nvcc not found; building without CUDA")
  endif()
endif()

# LibTorch from the torch wheel: ask the wheel's Python where its CMake files are.
set(CPIPC_CACHE_DIR "$ENV{HOME}/.cache/cpipc" CACHE PATH "Where setup.sh keeps the torch wheel and tool venvs")
if(DEFINED ENV{CPIPC_CACHE_DIR})
  set(CPIPC_CACHE_DIR "$ENV{CPIPC_CACHE_DIR}" CACHE PATH "" FORCE)
endif()
set(CPIPC_TORCH_VERSION "2.11.0" CACHE STRING "The torch wheel version setup.sh installs")
set(CPIPC_TORCH_PYTHON "${CPIPC_CACHE_DIR}/torch-${CPIPC_TORCH_VERSION}/bin/python" CACHE FILEPATH
    "A Python whose torch provides LibTorch")
set(CPIPC_HAVE_TORCH OFF)
if(CPIPC_WITH_TORCH)
  if(CPIPC_TORCH_PYTHON)
    execute_process(
      COMMAND "${CPIPC_TORCH_PYTHON}" -c "import torch; print(torch.utils.cmake_prefix_path)"
      OUTPUT_VARIABLE _cpipc_torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
      RESULT_VARIABLE _cpipc_torch_rc ERROR_QUIET)
    if(_cpipc_torch_rc EQUAL 0)
      list(APPEND CMAKE_PREFIX_PATH "${_cpipc_torch_prefix}")
    endif()
  endif()
  # Without an arch list Torch's CMake files try to run a program on the GPU
  # to detect one, which fails on machines without a GPU.
  if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
    set(TORCH_CUDA_ARCH_LIST "9.0")
  endif()
  # Torch's cuda.cmake warns about and switches off CMAKE_CUDA_ARCHITECTURES
  # (it uses TORCH_CUDA_ARCH_LIST): keep ours for our own kernels.
  set(_cpipc_cuda_archs "${CMAKE_CUDA_ARCHITECTURES}")
  unset(CMAKE_CUDA_ARCHITECTURES)
  find_package(Torch QUIET)
  if(_cpipc_cuda_archs)
    set(CMAKE_CUDA_ARCHITECTURES "${_cpipc_cuda_archs}")
  endif()
  if(Torch_FOUND)
    set(CPIPC_HAVE_TORCH ON)
    separate_arguments(CPIPC_TORCH_CXX_FLAGS UNIX_COMMAND "${TORCH_CXX_FLAGS}")
    message(STATUS "cpipc: LibTorch ${Torch_VERSION} from ${TORCH_INSTALL_PREFIX}")
  else()
    message(STATUS "cpipc: LibTorch not found (run scripts/setup.sh, or set CPIPC_TORCH_PYTHON)")
  endif()
endif()
