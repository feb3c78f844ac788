# find_package(bhsync) from the source tree: -Dbhsync_DIR=<repo>/bindings/cpp/cmake.
include(CMakeFindDependencyMacro)
find_dependency(Threads)
include("${CMAKE_CURRENT_LIST_DIR}/bhsyncTargets.cmake")
