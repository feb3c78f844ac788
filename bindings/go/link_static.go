//go:build !bhsync_shared && !bhsync_release

package bhsync

// The default: the static library of a debug build (`cargo build --lib`), so test and
// example binaries are self-contained. Tags: bhsync_release (target/release) and
// bhsync_shared (libbhsync.so, found at run time through an rpath).

// #cgo LDFLAGS: ${SRCDIR}/../../target/debug/libbhsync.a -lpthread -ldl -lm
import "C"
