package bhsync

// #include <stdlib.h>
// #include "bhsync.h"
import "C"

import (
	"encoding/hex"
	"fmt"
	"runtime"
	"runtime/cgo"
	"strings"
	"sync"
	"unsafe"
)

// NodeID is a node's identity: its 32-byte public key.
type NodeID [32]byte

// String is the id in hex.
func (id NodeID) String() string { return hex.EncodeToString(id[:]) }

// ParseNodeID reads a NodeID from 64 hex digits.
func ParseNodeID(text string) (NodeID, error) {
	var id NodeID
	raw, err := hex.DecodeString(text)
	if err != nil || len(raw) != len(id) {
		return id, invalid("parse_node_id", "a node id is 64 hex digits")
	}
	copy(id[:], raw)
	return id, nil
}

// Digest is a 32-byte state hash (BLAKE3).
type Digest [32]byte

// String is the digest in hex.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// maxCachedCategories bounds the cache of category names converted to C strings.
const maxCachedCategories = 256

// Node is a running bhsync node. Open one with Open and release it with Close; every
// method may be called from several goroutines at once, and returns ErrClosed after
// Close.
type Node struct {
	// mu is held for reading by every call into C and for writing by Close, so the C
	// handle is never freed under a running call.
	mu     sync.RWMutex
	handle *C.bhs_node

	categoryMu sync.RWMutex
	categories map[string]*C.char // C copies of category names, freed on Close

	resolverMu sync.Mutex
	resolvers  []cgo.Handle // every resolver registered, deleted on Close

	events eventPump
}

// Open starts a node (its engine threads, its listener, its dials to cfg.Peers).
func Open(cfg Config) (*Node, error) {
	if lib := LibraryABIVersion(); lib != ABIVersion {
		return nil, fmt.Errorf("bhsync: library ABI %d, this package expects %d (rebuild one of them)", lib, ABIVersion)
	}
	config, err := cfg.build()
	if err != nil {
		return nil, err
	}
	defer C.bhs_config_free(config)
	node := &Node{categories: map[string]*C.char{}}
	if err := call("node_open", func() C.bhs_status { return C.bhs_node_open(config, &node.handle) }); err != nil {
		return nil, err
	}
	// A node dropped without Close still stops its engine, eventually. (While Events'
	// goroutine runs, the node stays reachable: only Close ends it.)
	runtime.SetFinalizer(node, func(n *Node) { n.Close() })
	return node, nil
}

// Close stops the node: the event channel is closed, calls in flight finish first, and
// later calls return ErrClosed. Closing twice is harmless.
func (n *Node) Close() error {
	if n == nil {
		return nil
	}
	n.events.stop()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.handle == nil {
		return nil
	}
	// The status only reports an engine that had panicked; the handle is gone anyway,
	// and the resolvers' handles may go now that the engine thread has stopped.
	closeErr := call("node_close", func() C.bhs_status { return C.bhs_node_close(n.handle) })
	n.handle = nil
	n.categoryMu.Lock()
	for name, text := range n.categories {
		C.free(unsafe.Pointer(text))
		delete(n.categories, name)
	}
	n.categoryMu.Unlock()
	n.resolverMu.Lock()
	for _, handle := range n.resolvers {
		handle.Delete()
	}
	n.resolvers = nil
	n.resolverMu.Unlock()
	return closeErr
}

// with runs body with the live C handle, or returns ErrClosed.
func (n *Node) with(body func(handle *C.bhs_node) error) error {
	if n == nil {
		return ErrClosed
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.handle == nil {
		return ErrClosed
	}
	return body(n.handle)
}

// category returns name as a C string owned by the node (cached) or, past the cache's
// bound, a fresh copy that release frees.
func (n *Node) category(op, name string) (text *C.char, release func(), err error) {
	n.categoryMu.RLock()
	text, ok := n.categories[name]
	n.categoryMu.RUnlock()
	if ok {
		return text, func() {}, nil
	}
	if name == "" || len(name) > MaxCategoryNameLen || strings.IndexByte(name, 0) >= 0 {
		return nil, nil, invalid(op, "a category name is 1 to MaxCategoryNameLen bytes without NUL")
	}
	text = C.CString(name)
	n.categoryMu.Lock()
	defer n.categoryMu.Unlock()
	if cached, ok := n.categories[name]; ok {
		C.free(unsafe.Pointer(text))
		return cached, func() {}, nil
	}
	if len(n.categories) >= maxCachedCategories {
		return text, func() { C.free(unsafe.Pointer(text)) }, nil
	}
	n.categories[name] = text
	return text, func() {}, nil
}

// bytesPtr is a pointer to b's first byte for the duration of one call (nil when b is
// empty, which the C ABI accepts with a zero length).
func bytesPtr(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}

// copyBuf copies a library buffer into Go memory (it stays owned by the library).
func copyBuf(buf *C.bhs_buf) []byte {
	if buf.len == 0 {
		return nil
	}
	return C.GoBytes(unsafe.Pointer(buf.data), C.int(buf.len))
}

// takeBuf copies a library buffer into Go memory and releases it.
func takeBuf(buf *C.bhs_buf) []byte {
	out := C.GoBytes(unsafe.Pointer(buf.data), C.int(buf.len))
	C.bhs_buf_free(buf)
	return out
}
