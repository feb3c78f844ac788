#!/bin/sh
# Installs (or uninstalls) bhsync like a system library: `make install` and
# `make uninstall` call it; decisions in docs/adr/052-installed-library.md.
#
#   packaging/install.sh install|uninstall
#
# Environment (the Makefile sets it):
#   PREFIX      where it goes, an absolute path (default /usr/local)
#   DESTDIR     staging root prepended to every path written (packagers), default empty
#   LIBDIR      default $PREFIX/lib; BINDIR $PREFIX/bin; INCLUDEDIR $PREFIX/include;
#               DATADIR $PREFIX/share (each must lie under PREFIX)
#   TARGET_DIR  the cargo output with libbhsync.so, libbhsync.a and bhsync (install only)
#   STAGE       a scratch directory for the stripped files (install only)
#
# Layout (N is BHS_ABI_VERSION of include/bhsync.h, the library's SONAME is libbhsync.so.N):
#   include/bhsync.h  include/bhsync/bhsync.hpp
#   lib/libbhsync.so.N  lib/libbhsync.so -> libbhsync.so.N  lib/libbhsync.a
#   lib/.debug/libbhsync.so.N.debug   bin/bhsync  bin/.debug/bhsync.debug
#   lib/pkgconfig/bhsync.pc  lib/cmake/bhsync/bhsyncConfig{,Version}.cmake
#   share/bhsync/grafana-dashboard.json (docs/dashboard.json)
# The shared library and the command are stripped; their debug info goes to the .debug
# files next to them (found by gdb through .gnu_debuglink). The archive keeps its symbols
# but not its debug info (strip --strip-debug).
set -eu

fail() {
    echo "install.sh: $*" >&2
    exit 1
}

action=${1:-}
case "$action" in
install | uninstall) ;;
*) fail "usage: install.sh install|uninstall (with PREFIX, DESTDIR set by make install)" ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
PREFIX=${PREFIX:-/usr/local}
PREFIX=${PREFIX%/}
DESTDIR=${DESTDIR:-}
case "$PREFIX" in
/*) ;;
*) fail "PREFIX must be an absolute path, not '$PREFIX' (try PREFIX=\$PWD/$PREFIX)" ;;
esac
LIBDIR=${LIBDIR:-$PREFIX/lib}
BINDIR=${BINDIR:-$PREFIX/bin}
INCLUDEDIR=${INCLUDEDIR:-$PREFIX/include}
DATADIR=${DATADIR:-$PREFIX/share}
for dir in "$LIBDIR" "$BINDIR" "$INCLUDEDIR" "$DATADIR"; do
    case "$dir" in
    "$PREFIX"/*) ;;
    *) fail "$dir is not under PREFIX=$PREFIX: the CMake package finds its files relative to PREFIX" ;;
    esac
done

header="$root/include/bhsync.h"
abi=$(sed -n 's/^#define BHS_ABI_VERSION \([0-9][0-9]*\)$/\1/p' "$header")
[ -n "$abi" ] || fail "no '#define BHS_ABI_VERSION N' in $header"
version=$(sed -n 's/^version = "\([^"]*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)
[ -n "$version" ] || fail "no package version in $root/Cargo.toml"
soname="libbhsync.so.$abi"

lib="$DESTDIR$LIBDIR"
bin="$DESTDIR$BINDIR"
inc="$DESTDIR$INCLUDEDIR"
data="$DESTDIR$DATADIR"
cmakedir="$lib/cmake/bhsync"

# Every file this script installs, for uninstall (keep in step with install below).
installed_files() {
    echo "$inc/bhsync.h"
    echo "$inc/bhsync/bhsync.hpp"
    echo "$lib/$soname"
    echo "$lib/libbhsync.so"
    echo "$lib/libbhsync.a"
    echo "$lib/.debug/$soname.debug"
    echo "$lib/pkgconfig/bhsync.pc"
    echo "$cmakedir/bhsyncConfig.cmake"
    echo "$cmakedir/bhsyncConfigVersion.cmake"
    echo "$bin/bhsync"
    echo "$bin/.debug/bhsync.debug"
    echo "$data/bhsync/grafana-dashboard.json"
}

if [ "$action" = uninstall ]; then
    installed_files | while read -r file; do
        if [ -e "$file" ] || [ -L "$file" ]; then
            rm -f "$file"
            echo "removed $file"
        fi
    done
    # Only the directories that are bhsync's own, and only when empty.
    for dir in "$cmakedir" "$inc/bhsync" "$data/bhsync" "$lib/.debug" "$bin/.debug"; do
        [ -d "$dir" ] && rmdir "$dir" 2>/dev/null || true
    done
    exit 0
fi

TARGET_DIR=${TARGET_DIR:?TARGET_DIR (the cargo output directory) must be set}
STAGE=${STAGE:?STAGE (a scratch directory) must be set}
for tool in strip objcopy install sed; do
    command -v "$tool" >/dev/null || fail "$tool not found: apt-get install binutils coreutils sed (or run make deps)"
done
for file in libbhsync.so libbhsync.a bhsync; do
    [ -f "$TARGET_DIR/$file" ] || fail "$TARGET_DIR/$file is missing: build it with cargo build --lib --bin bhsync"
done

# Strip into the stage; the debug info goes to a separate file with a debuglink to it.
rm -rf "$STAGE"
mkdir -p "$STAGE"
split_debug() { # source, stripped name
    objcopy --only-keep-debug --compress-debug-sections=zlib "$1" "$STAGE/$2.debug"
    strip --strip-unneeded -o "$STAGE/$2" "$1"
    (cd "$STAGE" && objcopy --add-gnu-debuglink="$2.debug" "$2")
}
split_debug "$TARGET_DIR/libbhsync.so" "$soname"
split_debug "$TARGET_DIR/bhsync" bhsync
cp "$TARGET_DIR/libbhsync.a" "$STAGE/libbhsync.a"
strip --strip-debug "$STAGE/libbhsync.a"

prefix_rel() { # a directory under PREFIX, relative to it
    echo "${1#"$PREFIX"/}"
}
libdir_rel=$(prefix_rel "$LIBDIR")
# From <libdir>/cmake/bhsync back up to the prefix: two levels plus one per component of
# the library directory.
up="../.."
rest=$libdir_rel
while [ -n "$rest" ]; do
    up="$up/.."
    case "$rest" in
    */*) rest=${rest#*/} ;;
    *) rest= ;;
    esac
done
substitute() { # template, output
    sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@LIBDIR@|$LIBDIR|g" -e "s|@INCLUDEDIR@|$INCLUDEDIR|g" \
        -e "s|@ABI@|$abi|g" -e "s|@VERSION@|$version|g" \
        -e "s|@VERSION_MAJOR@|${version%%.*}|g" \
        -e "s|@VERSION_MINOR@|$(echo "$version" | cut -d. -f2)|g" \
        -e "s|@PRIVATE_LIBS@|-lpthread -ldl -lm -lrt -lutil|g" \
        -e "s|@LIBDIR_REL@|$libdir_rel|g" -e "s|@INCLUDEDIR_REL@|$(prefix_rel "$INCLUDEDIR")|g" \
        -e "s|@PREFIX_FROM_CMAKEDIR@|$up|g" "$1" >"$2"
}
substitute "$here/bhsync.pc.in" "$STAGE/bhsync.pc"
substitute "$here/bhsyncConfig.cmake.in" "$STAGE/bhsyncConfig.cmake"
substitute "$here/bhsyncConfigVersion.cmake.in" "$STAGE/bhsyncConfigVersion.cmake"

install -d "$inc/bhsync" "$lib/.debug" "$lib/pkgconfig" "$cmakedir" "$bin/.debug" "$data/bhsync"
install -m 0644 "$header" "$inc/bhsync.h"
install -m 0644 "$root/bindings/cpp/include/bhsync/bhsync.hpp" "$inc/bhsync/bhsync.hpp"
install -m 0755 "$STAGE/$soname" "$lib/$soname"
ln -sf "$soname" "$lib/libbhsync.so"
install -m 0644 "$STAGE/libbhsync.a" "$lib/libbhsync.a"
install -m 0644 "$STAGE/$soname.debug" "$lib/.debug/$soname.debug"
install -m 0644 "$STAGE/bhsync.pc" "$lib/pkgconfig/bhsync.pc"
install -m 0644 "$STAGE/bhsyncConfig.cmake" "$STAGE/bhsyncConfigVersion.cmake" "$cmakedir/"
install -m 0755 "$STAGE/bhsync" "$bin/bhsync"
install -m 0644 "$STAGE/bhsync.debug" "$bin/.debug/bhsync.debug"
install -m 0644 "$root/docs/dashboard.json" "$data/bhsync/grafana-dashboard.json"

size() {
    du -k "$1" | cut -f1
}
echo "installed bhsync $version (ABI $abi) in $DESTDIR$PREFIX:"
for file in "$LIBDIR/$soname" "$LIBDIR/libbhsync.a" "$BINDIR/bhsync" "$LIBDIR/.debug/$soname.debug" \
    "$BINDIR/.debug/bhsync.debug"; do
    printf '  %-32s %7s KiB\n' "$(prefix_rel "$file")" "$(du -k "$DESTDIR$file" | cut -f1)"
done

# The dynamic linker's cache, when installing for real into a directory it searches.
if [ -z "$DESTDIR" ] && [ "$(id -u)" = 0 ] && command -v ldconfig >/dev/null &&
    ldconfig -vNX 2>/dev/null | grep -q "^$LIBDIR:"; then
    ldconfig
else
    echo "  (programs find $soname through an rpath, LD_LIBRARY_PATH=$LIBDIR or /etc/ld.so.conf.d; pkg-config: PKG_CONFIG_PATH=$LIBDIR/pkgconfig; CMake: CMAKE_PREFIX_PATH=$PREFIX)"
fi
