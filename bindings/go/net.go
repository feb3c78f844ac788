package bhsync

// #include <stdlib.h>
// #include "bhsync.h"
import "C"

import (
	"context"
	"strings"
	"time"
	"unsafe"
)

// ID is the node's identity, its 32-byte public key (works after the engine stopped).
func (n *Node) ID() (NodeID, error) {
	var id NodeID
	err := n.with(func(handle *C.bhs_node) error {
		return call("node_id", func() C.bhs_status {
			return C.bhs_node_id(handle, (*C.uint8_t)(unsafe.Pointer(&id[0])))
		})
	})
	return id, err
}

// LocalAddr is the address the node listens on, as "host:port".
func (n *Node) LocalAddr() (string, error) {
	var addr string
	err := n.with(func(handle *C.bhs_node) error {
		var buf C.bhs_buf
		if err := call("node_local_addr", func() C.bhs_status { return C.bhs_node_local_addr(handle, &buf) }); err != nil {
			return err
		}
		addr = string(takeBuf(&buf))
		return nil
	})
	return addr, err
}

// Connect dials a peer at "host:port" and keeps re-dialling it when the link drops. It
// returns once the dial is queued; EventPeerUp tells when the peer is up.
func (n *Node) Connect(addr string) error {
	if addr == "" || strings.IndexByte(addr, 0) >= 0 {
		return invalid("node_connect", "an address is host:port without NUL bytes")
	}
	text := C.CString(addr)
	defer C.free(unsafe.Pointer(text))
	return n.with(func(handle *C.bhs_node) error {
		return call("node_connect", func() C.bhs_status { return C.bhs_node_connect(handle, text) })
	})
}

// SyncReport is what one Sync did, summed over the peers it synced with.
type SyncReport struct {
	// Peers synced with; PeersSucceeded finished with every category in step.
	Peers, PeersSucceeded, PeersFailed int
	// CategoriesFailed over all peers (the events say why).
	CategoriesFailed int
	// RoundTrips of reconciliation, over all peers and categories.
	RoundTrips int
	// ItemsApplied were received and stored; ItemsSent were sent.
	ItemsApplied, ItemsSent uint64
}

// DefaultSyncTimeout bounds a Sync whose context has no deadline.
const DefaultSyncTimeout = 30 * time.Second

// maxTimeout is the longest timeout the C ABI takes (uint32 milliseconds).
const maxTimeout = time.Duration(1<<32-1) * time.Millisecond

// Sync runs anti-entropy now with peer, or with every connected peer when peer is nil,
// and waits until each finishes. The context's deadline is the timeout (else
// DefaultSyncTimeout): past it, the error is ErrTimeout (the syncs go on in the
// background). A cancelled context returns ctx.Err() at once. A peer that is not
// connected counts in PeersFailed; it is not an error.
func (n *Node) Sync(ctx context.Context, peer *NodeID) (SyncReport, error) {
	if err := ctx.Err(); err != nil {
		return SyncReport{}, err
	}
	timeout := DefaultSyncTimeout
	if deadline, ok := ctx.Deadline(); ok {
		timeout = min(max(time.Until(deadline), 0), maxTimeout)
	}
	type outcome struct {
		report SyncReport
		err    error
	}
	done := make(chan outcome, 1)
	go func() {
		report, err := n.syncBlocking(peer, timeout)
		done <- outcome{report, err}
	}()
	select {
	case result := <-done:
		return result.report, result.err
	case <-ctx.Done():
		return SyncReport{}, ctx.Err()
	}
}

func (n *Node) syncBlocking(peer *NodeID, timeout time.Duration) (SyncReport, error) {
	var report SyncReport
	err := n.with(func(handle *C.bhs_node) error {
		// The id is copied into C memory: the call may outlive the caller's wait.
		var peerPtr *C.uint8_t
		if peer != nil {
			peerPtr = (*C.uint8_t)(C.CBytes(peer[:]))
			defer C.free(unsafe.Pointer(peerPtr))
		}
		var out C.bhs_sync_report
		err := call("sync", func() C.bhs_status {
			return C.bhs_sync(handle, peerPtr, C.uint32_t(timeout/time.Millisecond), &out)
		})
		if err != nil {
			return err
		}
		report = SyncReport{
			Peers: int(out.peers), PeersSucceeded: int(out.peers_succeeded), PeersFailed: int(out.peers_failed),
			CategoriesFailed: int(out.categories_failed), RoundTrips: int(out.round_trips),
			ItemsApplied: uint64(out.items_applied), ItemsSent: uint64(out.items_sent),
		}
		return nil
	})
	return report, err
}
