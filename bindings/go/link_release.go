//go:build bhsync_release && !bhsync_shared

package bhsync

// #cgo LDFLAGS: ${SRCDIR}/../../target/release/libbhsync.a -lpthread -ldl -lm
import "C"
