package bhsync

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// testCategories are the categories every test node holds.
var testCategories = []Category{
	{Name: "users", Spec: "mode=eventual,merge=lww,priority=high"},
	{Name: "counters", Spec: "mode=eventual,merge=crdt,priority=medium"},
	{Name: "custom", Spec: "mode=eventual,merge=custom,priority=medium"},
}

// testSecret is a fixed identity for node i (X25519 clamps byte 0, so byte 1 varies).
func testSecret(i int) []byte {
	secret := bytes.Repeat([]byte{7}, 32)
	secret[1] = byte(i + 1)
	return secret
}

// openNodes opens count nodes on loopback, each connected to the ones before it, and
// closes them at the end of the test.
func openNodes(t *testing.T, count int) []*Node {
	t.Helper()
	nodes := openUnconnected(t, count)
	connectAll(t, nodes)
	return nodes
}

// openUnconnected opens count nodes that know nothing of each other yet.
func openUnconnected(t *testing.T, count int) []*Node {
	t.Helper()
	nodes := make([]*Node, 0, count)
	for i := 0; i < count; i++ {
		node, err := Open(Config{Listen: "127.0.0.1:0", IdentitySecret: testSecret(i), Categories: testCategories})
		if err != nil {
			t.Fatalf("open node %d: %v", i, err)
		}
		nodes = append(nodes, node)
	}
	t.Cleanup(func() { closeAll(nodes) })
	return nodes
}

// closeAll closes nodes in parallel (a node with peers takes about a second to say
// goodbye).
func closeAll(nodes []*Node) {
	var wg sync.WaitGroup
	for _, node := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node.Close()
		}()
	}
	wg.Wait()
}

// connectAll has every node dial the ones before it.
func connectAll(t *testing.T, nodes []*Node) {
	t.Helper()
	for i, node := range nodes {
		for _, earlier := range nodes[:i] {
			addr, err := earlier.LocalAddr()
			if err != nil {
				t.Fatalf("local addr: %v", err)
			}
			if err := node.Connect(addr); err != nil {
				t.Fatalf("node %d connect %s: %v", i, addr, err)
			}
		}
	}
}

// converge syncs every node with all its peers until all state hashes are equal, or
// fails the test after the deadline.
func converge(t *testing.T, nodes []*Node, within time.Duration) Digest {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for round := 0; ; round++ {
		hashes := make([]Digest, len(nodes))
		for i, node := range nodes {
			syncCtx, cancelSync := context.WithTimeout(ctx, 2*time.Second)
			_, _ = node.Sync(syncCtx, nil) // peers still connecting fail; the next round retries
			cancelSync()
			hash, err := node.StateHash()
			if err != nil {
				t.Fatalf("state hash of node %d: %v", i, err)
			}
			hashes[i] = hash
		}
		if allEqual(hashes) {
			return hashes[0]
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no convergence after %d rounds in %v: hashes %v", round+1, within, hashes)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func allEqual(hashes []Digest) bool {
	for _, hash := range hashes[1:] {
		if hash != hashes[0] {
			return false
		}
	}
	return true
}

func key(format string, args ...any) []byte { return []byte(fmt.Sprintf(format, args...)) }
