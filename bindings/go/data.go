package bhsync

// #include <stdlib.h>
// #include "bhsync.h"
import "C"

import (
	"runtime"
	"unsafe"
)

// Put stores value under key in category. Keys are 0 to MaxKeyLen bytes, values 0 to
// MaxValueLen; the library copies both.
func (n *Node) Put(category string, key, value []byte) error {
	return n.keyed("put", category, key, func(handle *C.bhs_node, cat *C.char) C.bhs_status {
		return C.bhs_put(handle, cat, bytesPtr(key), C.size_t(len(key)), bytesPtr(value), C.size_t(len(value)))
	})
}

// Get returns the live value of key in category; ErrNotFound when it is absent or
// deleted (errors.Is(err, bhsync.ErrNotFound)).
//
// The hot path of most hosts, so it is written out without the closures of the other
// calls (they cost an allocation each).
func (n *Node) Get(category string, key []byte) ([]byte, error) {
	if len(key) > MaxKeyLen {
		return nil, invalid("get", "key longer than MaxKeyLen")
	}
	if n == nil {
		return nil, ErrClosed
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.handle == nil {
		return nil, ErrClosed
	}
	cat, release, err := n.category("get", category)
	if err != nil {
		return nil, err
	}
	defer release()
	runtime.LockOSThread() // bhs_last_error is per thread
	defer runtime.UnlockOSThread()
	var buf C.bhs_buf
	if err := check("get", C.bhs_get(n.handle, cat, bytesPtr(key), C.size_t(len(key)), &buf)); err != nil {
		return nil, err
	}
	return takeBuf(&buf), nil
}

// Delete removes key from category (a tombstone that synchronizes); ErrNotFound when
// there was no live value.
func (n *Node) Delete(category string, key []byte) error {
	return n.keyed("delete", category, key, func(handle *C.bhs_node, cat *C.char) C.bhs_status {
		return C.bhs_delete(handle, cat, bytesPtr(key), C.size_t(len(key)))
	})
}

// CounterAdd adds delta to the counter under key (a CRDT category) and returns its new
// value.
func (n *Node) CounterAdd(category string, key []byte, delta int64) (int64, error) {
	var value C.int64_t
	err := n.keyed("counter_add", category, key, func(handle *C.bhs_node, cat *C.char) C.bhs_status {
		return C.bhs_counter_add(handle, cat, bytesPtr(key), C.size_t(len(key)), C.int64_t(delta), &value)
	})
	return int64(value), err
}

// CounterGet returns the value of the counter under key (0 when never written).
func (n *Node) CounterGet(category string, key []byte) (int64, error) {
	var value C.int64_t
	err := n.keyed("counter_get", category, key, func(handle *C.bhs_node, cat *C.char) C.bhs_status {
		return C.bhs_counter_get(handle, cat, bytesPtr(key), C.size_t(len(key)), &value)
	})
	return int64(value), err
}

// keyed runs a call that takes the node, a category and a key.
func (n *Node) keyed(op, category string, key []byte, fn func(*C.bhs_node, *C.char) C.bhs_status) error {
	if len(key) > MaxKeyLen {
		return invalid(op, "key longer than MaxKeyLen")
	}
	return n.categorized(op, category, fn)
}

// categorized runs a call that takes the node and a category.
func (n *Node) categorized(op, category string, fn func(*C.bhs_node, *C.char) C.bhs_status) error {
	return n.with(func(handle *C.bhs_node) error {
		cat, release, err := n.category(op, category)
		if err != nil {
			return err
		}
		defer release()
		return call(op, func() C.bhs_status { return fn(handle, cat) })
	})
}

// StateHash is the overall state hash of the node: equal hashes, equal states.
func (n *Node) StateHash() (Digest, error) { return n.stateHash(nil) }

// CategoryHash is the Merkle root of one category.
func (n *Node) CategoryHash(category string) (Digest, error) { return n.stateHash(&category) }

func (n *Node) stateHash(category *string) (Digest, error) {
	var digest Digest
	err := n.with(func(handle *C.bhs_node) error {
		var cat *C.char
		if category != nil {
			text, release, err := n.category("state_hash", *category)
			if err != nil {
				return err
			}
			defer release()
			cat = text
		}
		var out [32]C.uint8_t
		if err := call("state_hash", func() C.bhs_status { return C.bhs_state_hash(handle, cat, &out[0]) }); err != nil {
			return err
		}
		digest = Digest(C.GoBytes(unsafe.Pointer(&out[0]), 32))
		return nil
	})
	return digest, err
}

// The bounds of the C ABI (include/bhsync.h).
const (
	// MaxKeyLen is the longest key in bytes.
	MaxKeyLen = int(C.BHS_MAX_KEY_LEN)
	// MaxValueLen is the longest value in bytes.
	MaxValueLen = int(C.BHS_MAX_VALUE_LEN)
	// MaxCategoryNameLen is the longest category name in bytes.
	MaxCategoryNameLen = int(C.BHS_MAX_CATEGORY_NAME_LEN)
)
