// Package bhsync is the Go binding of bhsync, the synchronization engine of Blackhole
// nodes: a Node keeps categories of key/value state in sync with its peers over TCP.
//
//	node, err := bhsync.Open(bhsync.Config{Listen: "127.0.0.1:0"})
//	if err != nil { ... }
//	defer node.Close()
//	err = node.Put("default", []byte("alice"), []byte("admin"))
//
// Import it as
//
//	import bhsync "github.com/blackhole/bhsync/bindings/go"
//
// It is cgo over the C ABI of bhsync.h. By default it links the installed library
// (`make install` in the bhsync repository) through pkg-config (`#cgo pkg-config:
// bhsync`). Inside the repository, the build tag bhsync_intree links the static
// target/debug/libbhsync.a instead, and bhsync_release target/release/libbhsync.a.
//
// Memory: byte slices go to C only for the duration of a call (the library copies
// them); everything the library returns is copied into Go memory and released at once.
// C never keeps a Go pointer: the conflict resolver is reached through a cgo.Handle.
//
// Errors are values: a failed call returns an *Error whose Status can be tested with
// errors.Is(err, bhsync.ErrNotFound). Misuse (nil or oversized input, a closed node,
// several goroutines at once) returns an error; it never panics or crashes.
//
// Every method of Node may be called from several goroutines at once.
package bhsync

// #include "bhsync.h"
import "C"

import "runtime"

// ABIVersion is the C ABI version this package was compiled against (BHS_ABI_VERSION).
const ABIVersion = uint32(C.BHS_ABI_VERSION)

// LibraryABIVersion is the ABI version of the linked library (bhs_abi_version); Open
// refuses a library whose version differs from ABIVersion.
func LibraryABIVersion() uint32 { return uint32(C.bhs_abi_version()) }

// Version is the library version, for example "0.1.0" (bhs_version).
func Version() string { return C.GoString(C.bhs_version()) }

// call runs a C call and reads its error message on the same OS thread (bhs_last_error
// is thread-local, and a goroutine may move between threads between two cgo calls).
func call(op string, fn func() C.bhs_status) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return check(op, fn())
}
