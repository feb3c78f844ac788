//go:build bhsync_release

package bhsync

// -tags bhsync_release: this repository's release build, static (`cargo build --lib
// --release`), with the header of the source tree (the benchmarks use it).

// #cgo CFLAGS: -I${SRCDIR}/../../include
// #cgo LDFLAGS: ${SRCDIR}/../../target/release/libbhsync.a -lpthread -ldl -lm
import "C"
