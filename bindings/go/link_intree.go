//go:build bhsync_intree && !bhsync_release

package bhsync

// -tags bhsync_intree: this repository's own debug build, static (`cargo build --lib`
// at the repository root), with the header of the source tree; no install needed.

// #cgo CFLAGS: -I${SRCDIR}/../../include
// #cgo LDFLAGS: ${SRCDIR}/../../target/debug/libbhsync.a -lpthread -ldl -lm
import "C"
