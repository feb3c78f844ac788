# Defines bhsync::c (libbhsync with its C header) and bhsync::bhsync (the header-only
# C++ wrapper on top), for this source tree. Included by ../CMakeLists.txt and by
# bhsyncConfig.cmake (find_package from the source tree).
get_filename_component(_bhsync_root "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)

set(BHSYNC_INCLUDE_DIR "${_bhsync_root}/include" CACHE PATH "Directory holding bhsync.h")
if(NOT BHSYNC_LIBRARY)
  foreach(_profile release debug)
    if(NOT BHSYNC_LIBRARY AND EXISTS "${_bhsync_root}/target/${_profile}/libbhsync.a")
      set(BHSYNC_LIBRARY "${_bhsync_root}/target/${_profile}/libbhsync.a")
    endif()
  endforeach()
endif()
set(BHSYNC_LIBRARY "${BHSYNC_LIBRARY}" CACHE FILEPATH "libbhsync.a or libbhsync.so to link")
if(NOT EXISTS "${BHSYNC_LIBRARY}")
  message(FATAL_ERROR "bhsync: libbhsync not found; run `cargo build --release --lib` in ${_bhsync_root} "
                      "or set BHSYNC_LIBRARY")
endif()

find_package(Threads REQUIRED)
if(NOT TARGET bhsync::c)
  add_library(bhsync::c UNKNOWN IMPORTED)
  set_target_properties(bhsync::c PROPERTIES
    IMPORTED_LOCATION "${BHSYNC_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${BHSYNC_INCLUDE_DIR}"
    # A Rust static library needs the C runtime's threads, dl and libm.
    INTERFACE_LINK_LIBRARIES "Threads::Threads;${CMAKE_DL_LIBS};m")
endif()
if(NOT TARGET bhsync::bhsync)
  add_library(bhsync_cpp INTERFACE)
  add_library(bhsync::bhsync ALIAS bhsync_cpp)
  target_include_directories(bhsync_cpp INTERFACE
    $<BUILD_INTERFACE:${CMAKE_CURRENT_LIST_DIR}/../include>)
  target_link_libraries(bhsync_cpp INTERFACE bhsync::c)
  target_compile_features(bhsync_cpp INTERFACE cxx_std_17)
endif()
