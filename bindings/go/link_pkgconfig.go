//go:build !bhsync_intree && !bhsync_release

package bhsync

// The default: the installed library (`make install`), found through pkg-config. Set
// PKG_CONFIG_PATH=<prefix>/lib/pkgconfig for a prefix pkg-config does not search, and
// let the program find libbhsync.so.N at run time (ldconfig, LD_LIBRARY_PATH or an
// rpath: CGO_LDFLAGS=-Wl,-rpath,<prefix>/lib).

// #cgo pkg-config: bhsync
import "C"
