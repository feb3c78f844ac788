package bhsync

// #include <stdint.h>
// #include <stdlib.h>
// #include "shim.h"
import "C"

import (
	"fmt"
	"runtime/cgo"
	"unsafe"
)

// Versioned is one side of a conflict: a value and the version that wrote it.
type Versioned struct {
	Value []byte
	// HLC is the hybrid logical timestamp of the write (milliseconds << 16 | logical).
	HLC uint64
	// Counter is the write's counter at its origin.
	Counter uint64
	// Origin is the node that made the write.
	Origin NodeID
	// Tombstone: this version is a deletion.
	Tombstone bool
}

// Resolution is a resolver's answer; make one with KeepLocal, KeepRemote or Merge (the
// zero value decides nothing and counts as a failure).
type Resolution struct {
	choice uint32
	merged []byte
}

// KeepLocal keeps the version stored here.
func KeepLocal() Resolution { return Resolution{choice: C.BHS_RESOLVE_LOCAL} }

// KeepRemote keeps the version that arrived from the peer.
func KeepRemote() Resolution { return Resolution{choice: C.BHS_RESOLVE_REMOTE} }

// Merge stores value as a new version superseding both (at most MaxValueLen bytes).
func Merge(value []byte) Resolution { return Resolution{choice: C.BHS_RESOLVE_MERGED, merged: value} }

// ConflictResolver decides a conflict between two versions of a key that have not seen
// each other. It runs on the node's engine thread, one conflict at a time: keep it fast,
// do not call the same Node from it, and make it deterministic (every node must reach
// the same answer for the same pair). An error or a panic means "cannot decide": both
// versions are kept and the last writer's value is read.
type ConflictResolver func(local, remote Versioned) (Resolution, error)

// SetConflictResolver registers resolver for category, whose spec must say
// merge=custom (other categories never call it); it replaces an earlier one.
func (n *Node) SetConflictResolver(category string, resolver ConflictResolver) error {
	if resolver == nil {
		return invalid("set_conflict_resolver", "resolver is nil")
	}
	return n.with(func(node *C.bhs_node) error {
		cat, release, err := n.category("set_conflict_resolver", category)
		if err != nil {
			return err
		}
		defer release()
		handle := cgo.NewHandle(resolver)
		err = call("set_conflict_resolver", func() C.bhs_status {
			return C.bhsgo_set_resolver(node, cat, C.uintptr_t(handle))
		})
		if err != nil {
			handle.Delete()
			return err
		}
		// A replaced resolver may still be running on the engine thread: every handle
		// stays valid until Close, after the engine has stopped.
		n.resolverMu.Lock()
		n.resolvers = append(n.resolvers, handle)
		n.resolverMu.Unlock()
		return nil
	})
}

//export bhsGoResolve
func bhsGoResolve(userData C.uintptr_t, conflict *C.bhs_conflict, out *C.bhs_resolution) (code C.int32_t) {
	defer func() {
		if recover() != nil {
			code = 1 // a panic must not unwind into the engine: "cannot decide"
		}
	}()
	resolver, ok := cgo.Handle(userData).Value().(ConflictResolver)
	if !ok || conflict == nil || out == nil {
		return 1
	}
	resolution, err := resolver(versioned(&conflict.local), versioned(&conflict.remote))
	if err != nil {
		return 1
	}
	return fillResolution(resolution, out)
}

func fillResolution(resolution Resolution, out *C.bhs_resolution) C.int32_t {
	switch resolution.choice {
	case C.BHS_RESOLVE_LOCAL, C.BHS_RESOLVE_REMOTE:
	case C.BHS_RESOLVE_MERGED:
		if len(resolution.merged) > MaxValueLen {
			return 1
		}
		if C.bhs_buf_copy(bytesPtr(resolution.merged), C.size_t(len(resolution.merged)), &out.merged) != C.BHS_OK {
			return 1
		}
	default:
		return 1
	}
	out.choice = C.uint32_t(resolution.choice)
	return 0
}

// versioned copies a lent version into Go memory (the resolver may keep it).
func versioned(raw *C.bhs_versioned) Versioned {
	v := Versioned{HLC: uint64(raw.hlc), Counter: uint64(raw.counter), Tombstone: raw.tombstone != 0}
	if raw.value_len > 0 {
		v.Value = C.GoBytes(unsafe.Pointer(raw.value), C.int(raw.value_len))
	} else {
		v.Value = []byte{}
	}
	for i := range v.Origin {
		v.Origin[i] = byte(raw.origin[i])
	}
	return v
}

// String describes a resolution (for test failures and logs).
func (r Resolution) String() string {
	switch r.choice {
	case C.BHS_RESOLVE_LOCAL:
		return "keep local"
	case C.BHS_RESOLVE_REMOTE:
		return "keep remote"
	case C.BHS_RESOLVE_MERGED:
		return fmt.Sprintf("merge %d bytes", len(r.merged))
	}
	return "no decision"
}

// resolveDirect runs resolver through the same path as the engine's callback, on
// versions with the given values (for the package's tests: cgo is not allowed in
// _test.go files). It returns the callback's code, choice and merged bytes.
func resolveDirect(resolver ConflictResolver, local, remote []byte) (code int, choice uint32, merged []byte) {
	handle := cgo.NewHandle(resolver)
	defer handle.Delete()
	var conflict C.bhs_conflict
	conflict.local.value = (*C.uint8_t)(C.CBytes(local))
	conflict.local.value_len = C.size_t(len(local))
	defer C.free(unsafe.Pointer(conflict.local.value))
	conflict.remote.value = (*C.uint8_t)(C.CBytes(remote))
	conflict.remote.value_len = C.size_t(len(remote))
	defer C.free(unsafe.Pointer(conflict.remote.value))
	var out C.bhs_resolution
	code = int(bhsGoResolve(C.uintptr_t(handle), &conflict, &out))
	return code, uint32(out.choice), takeBuf(&out.merged)
}
