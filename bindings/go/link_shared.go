//go:build bhsync_shared

package bhsync

// The shared library from target/release when it exists there, else target/debug; the
// rpath lets the binary find it without LD_LIBRARY_PATH.

// #cgo LDFLAGS: -L${SRCDIR}/../../target/release -L${SRCDIR}/../../target/debug -Wl,-rpath,${SRCDIR}/../../target/release -Wl,-rpath,${SRCDIR}/../../target/debug -lbhsync
import "C"
