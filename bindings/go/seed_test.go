package bhsync

import (
	"bytes"
	"testing"
	"time"
)

// waitFor polls done until it holds, failing the test after within.
func waitFor(t *testing.T, what string, within time.Duration, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// B and C are given only A's address: they learn each other's through A, link, and
// keep syncing once A has closed (issue 16).
func TestTwoNodesKeepSyncingAfterTheirOnlySeedLeaves(t *testing.T) {
	nodes := openUnconnected(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	seed, err := a.LocalAddr()
	if err != nil {
		t.Fatalf("local addr: %v", err)
	}
	for _, node := range []*Node{b, c} {
		if err := node.Connect(seed); err != nil {
			t.Fatalf("connect: %v", err)
		}
	}
	linked := func(node *Node) bool {
		metrics, err := node.Metrics()
		return err == nil && metrics.PeersConnected == 2
	}
	waitFor(t, "b and c link through a", 30*time.Second, func() bool { return linked(b) && linked(c) })
	if err := a.Close(); err != nil {
		t.Fatalf("close a: %v", err)
	}
	if err := b.Put("users", []byte("after"), []byte("the seed left")); err != nil {
		t.Fatalf("put: %v", err)
	}
	waitFor(t, "the write reaches c", 30*time.Second, func() bool {
		value, err := c.Get("users", []byte("after"))
		return err == nil && bytes.Equal(value, []byte("the seed left"))
	})
}
