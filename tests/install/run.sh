#!/bin/sh
# Uses an installed bhsync as a program in another repository would: every build below
# runs in a fresh directory outside this repository and sees the library only through
# the install prefix (pkg-config, find_package, …). `make install-test` runs it after
# installing into build/prefix.
#
#   sh tests/install/run.sh PREFIX
set -eu

fail() {
    echo "install-test: $*" >&2
    exit 1
}

[ $# -eq 1 ] || fail "usage: run.sh PREFIX (an install made by make install PREFIX=…)"
prefix=$(cd "$1" && pwd)
repo=$(cd "$(dirname "$0")/../.." && pwd)
libdir="$prefix/lib"
abi=$(sed -n 's/^#define BHS_ABI_VERSION \([0-9][0-9]*\)$/\1/p' "$prefix/include/bhsync.h")
[ -n "$abi" ] || fail "$prefix/include/bhsync.h has no BHS_ABI_VERSION: is $prefix an install?"
work=$(mktemp -d "${TMPDIR:-/tmp}/bhsync-install-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
export PKG_CONFIG_PATH="$libdir/pkgconfig"
CC=${CC:-cc}
CXX=${CXX:-c++}

step() {
    echo "install-test: $*"
}

# The shared library is named by the ABI it implements, and exports the header's
# functions and nothing else (no Rust symbol, no symbol of a bundled C library).
check_library() {
    soname=$(readelf -d "$libdir/libbhsync.so.$abi" | sed -n 's/.*(SONAME).*\[\(.*\)\]$/\1/p')
    [ "$soname" = "libbhsync.so.$abi" ] || fail "SONAME of libbhsync.so.$abi is '$soname', not libbhsync.so.$abi"
    [ "$(readlink "$libdir/libbhsync.so")" = "libbhsync.so.$abi" ] ||
        fail "$libdir/libbhsync.so does not link to libbhsync.so.$abi"
    # A declaration starts in column 0 and its name is followed by "(".
    sed -n 's/^[a-z].*[ *]\(bhs_[a-z0-9_]*\)(.*/\1/p' "$prefix/include/bhsync.h" | sort -u >"$work/header.txt"
    nm -D --defined-only "$libdir/libbhsync.so.$abi" | awk '{ print $3 }' | sort -u >"$work/exported.txt"
    [ -s "$work/header.txt" ] || fail "no function declarations parsed from bhsync.h"
    if ! diff "$work/header.txt" "$work/exported.txt" >"$work/symbols.diff"; then
        cat "$work/symbols.diff" >&2
        fail "exported symbols (>) differ from the header's functions (<)"
    fi
    for file in "$libdir/libbhsync.so.$abi" "$prefix/bin/bhsync"; do
        readelf -S "$file" | grep -q '\.debug_info' && fail "$file is not stripped"
        readelf -S "$file" | grep -q '\.gnu_debuglink' || fail "$file has no .gnu_debuglink to its debug file"
    done
    readelf -S "$libdir/.debug/libbhsync.so.$abi.debug" | grep -q '\.debug_info' ||
        fail "$libdir/.debug/libbhsync.so.$abi.debug holds no debug info"
    step "SONAME libbhsync.so.$abi; $(wc -l <"$work/exported.txt") exported symbols = the header's functions; stripped, debug info apart"
}

# C through pkg-config: the shared library (found at run time through an rpath), then a
# static executable from `pkg-config --static`.
check_c() {
    mkdir "$work/c" && cp "$repo/examples/c/two_nodes.c" "$work/c/" && cd "$work/c"
    pkg-config --exists bhsync || fail "pkg-config does not find bhsync in $PKG_CONFIG_PATH"
    # shellcheck disable=SC2046 # pkg-config prints words meant to be split
    $CC -std=c11 -Wall -Werror two_nodes.c $(pkg-config --cflags --libs bhsync) \
        -Wl,-rpath,"$(pkg-config --variable=libdir bhsync)" -o two_nodes_shared
    readelf -d two_nodes_shared | grep -q "NEEDED.*\[libbhsync.so.$abi\]" ||
        fail "the shared build does not need libbhsync.so.$abi"
    ./two_nodes_shared >out.txt || fail "the C program linked with libbhsync.so failed: $(cat out.txt)"
    # glibc warns that getaddrinfo in a static program needs its shared NSS modules at run
    # time; the test resolves numeric addresses only.
    # shellcheck disable=SC2046
    $CC -static -std=c11 -Wall -Werror two_nodes.c $(pkg-config --static --cflags --libs bhsync) \
        -o two_nodes_static 2>link.txt || { cat link.txt >&2; fail "static link with pkg-config --static failed"; }
    if readelf -d two_nodes_static 2>/dev/null | grep -q NEEDED; then
        fail "the static build needs shared libraries: $(readelf -d two_nodes_static | grep NEEDED)"
    fi
    ./two_nodes_static >out.txt || fail "the statically linked C program failed: $(cat out.txt)"
    step "C: pkg-config shared and --static builds run ($(tail -n 1 out.txt))"
    cd "$work"
}

# CMake: find_package(bhsync CONFIG REQUIRED), the C++ example against bhsync::bhsync
# (shared) and against bhsync::static.
check_cmake() {
    mkdir -p "$work/cmake" && cp "$repo/tests/install/cmake/CMakeLists.txt" "$repo/examples/cpp/two_nodes.cpp" "$work/cmake/"
    cmake -S "$work/cmake" -B "$work/cmake/build" -DCMAKE_PREFIX_PATH="$prefix" >"$work/cmake.log" 2>&1 ||
        { cat "$work/cmake.log" >&2; fail "find_package(bhsync) failed"; }
    cmake --build "$work/cmake/build" -j 2 >>"$work/cmake.log" 2>&1 ||
        { cat "$work/cmake.log" >&2; fail "the CMake consumer did not build"; }
    readelf -d "$work/cmake/build/two_nodes_shared" | grep -q "NEEDED.*\[libbhsync.so.$abi\]" ||
        fail "bhsync::bhsync did not link libbhsync.so.$abi"
    readelf -d "$work/cmake/build/two_nodes_static" | grep -q "NEEDED.*libbhsync" &&
        fail "bhsync::static linked the shared library"
    "$work/cmake/build/two_nodes_shared" >/dev/null || fail "the CMake consumer (shared) failed"
    "$work/cmake/build/two_nodes_static" >/dev/null || fail "the CMake consumer (static) failed"
    step "CMake: find_package(bhsync) with bhsync::bhsync and bhsync::static builds and runs"
}

# make uninstall removes every file make install wrote (run on a copy of the prefix, as
# a DESTDIR install, so the prefix stays for the next checks).
check_uninstall() {
    mkdir -p "$work/dest$prefix" && cp -a "$prefix/." "$work/dest$prefix/"
    rm -f "$work/dest$prefix/.installed"
    DESTDIR="$work/dest" PREFIX="$prefix" sh "$repo/packaging/install.sh" uninstall >/dev/null
    left=$(find "$work/dest" \( -type f -o -type l \) | head -n 5)
    [ -z "$left" ] || fail "make uninstall left files behind: $left"
    step "uninstall removes every installed file"
}

# Go: a module elsewhere requires the binding's module path (replaced by this clone, as
# the README tells) and links the installed library through #cgo pkg-config.
check_go() {
    if ! command -v go >/dev/null; then
        step "Go: skipped (go not found; install Go 1.22+ to check the Go binding)"
        return
    fi
    module=$(sed -n 's/^module //p' "$repo/bindings/go/go.mod")
    mkdir "$work/go" && cp "$repo/examples/go/main.go" "$work/go/" && cd "$work/go"
    printf 'module consumer\n\ngo 1.22\n\nrequire %s v0.0.0\n\nreplace %s => %s\n' \
        "$module" "$module" "$repo/bindings/go" >go.mod
    CGO_ENABLED=1 GOFLAGS=-buildvcs=false GOPROXY=off go build -o two_nodes . ||
        fail "the Go program did not build against the installed library"
    readelf -d two_nodes | grep -q "NEEDED.*\[libbhsync.so.$abi\]" || fail "the Go program does not need libbhsync.so.$abi"
    LD_LIBRARY_PATH="$libdir" ./two_nodes >out.txt || fail "the Go program failed: $(cat out.txt)"
    step "Go: a module outside the repository builds with #cgo pkg-config and runs ($(cat out.txt))"
    cd "$work"
}

# Python: a wheel built by pip (cargo builds libbhsync into it; BHSYNC_CARGO_PROFILE picks
# the profile), installed into a fresh venv without the index, imported from outside the
# repository with no BHSYNC_LIB, running two nodes under asyncio.
check_python() {
    python=${PYTHON:-python3}
    command -v "$python" >/dev/null || fail "$python not found: apt-get install python3 python3-venv"
    "$python" -m venv "$work/venv" || fail "cannot create a venv: apt-get install python3-venv"
    "$work/venv/bin/python" -m pip wheel -q --disable-pip-version-check --no-deps -w "$work/wheels" \
        "$repo/bindings/python" || fail "pip wheel ./bindings/python failed"
    wheel=$(ls "$work/wheels"/bhsync-*.whl)
    "$work/venv/bin/python" -m pip install -q --disable-pip-version-check --no-index "$wheel" ||
        fail "the wheel $(basename "$wheel") did not install"
    mkdir "$work/py" && cp "$repo/examples/python/two_nodes_async.py" "$work/py/" && cd "$work/py"
    loaded=$(env -u BHSYNC_LIB "$work/venv/bin/python" -c 'import bhsync; print(bhsync.find_library())')
    case "$loaded" in
    "$work/venv/"*) ;;
    *) fail "the installed package loads $loaded, not the library inside it" ;;
    esac
    env -u BHSYNC_LIB "$work/venv/bin/python" two_nodes_async.py >out.txt ||
        fail "the asyncio example failed in the fresh venv: $(cat out.txt)"
    step "Python: $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB) in a fresh venv, asyncio two nodes ($(cat out.txt))"
    cd "$work"
}

check_library
check_uninstall
check_c
check_cmake
check_go
check_python
echo "install-test: all checks passed"
