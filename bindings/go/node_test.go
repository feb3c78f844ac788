package bhsync

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

func TestVersionAndABIMatchTheHeader(t *testing.T) {
	t.Parallel() // nodes on ephemeral ports: independent of other tests
	if LibraryABIVersion() != ABIVersion {
		t.Fatalf("library ABI %d, header %d", LibraryABIVersion(), ABIVersion)
	}
	if Version() == "" {
		t.Fatal("empty library version")
	}
}

func TestThreeNodesWriteSyncAndAgree(t *testing.T) {
	t.Parallel() // nodes on ephemeral ports: independent of other tests
	nodes := openNodes(t, 3)
	for i, node := range nodes {
		for j := 0; j < 5; j++ {
			if err := node.Put("users", key("user-%d-%d", i, j), key("value-%d-%d", i, j)); err != nil {
				t.Fatalf("put on node %d: %v", i, err)
			}
		}
		if _, err := node.CounterAdd("counters", []byte("hits"), int64(i+1)); err != nil {
			t.Fatalf("counter_add on node %d: %v", i, err)
		}
	}
	converge(t, nodes, 20*time.Second)
	for n, node := range nodes {
		for i := range nodes {
			for j := 0; j < 5; j++ {
				got, err := node.Get("users", key("user-%d-%d", i, j))
				if err != nil || !bytes.Equal(got, key("value-%d-%d", i, j)) {
					t.Fatalf("node %d reads user-%d-%d: %q, %v", n, i, j, got, err)
				}
			}
		}
		if total, err := node.CounterGet("counters", []byte("hits")); err != nil || total != 1+2+3 {
			t.Fatalf("node %d counter: %d, %v (want 6)", n, total, err)
		}
	}
	for i, node := range nodes {
		users, err := node.CategoryHash("users")
		want, _ := nodes[0].CategoryHash("users")
		if err != nil || users != want {
			t.Fatalf("node %d category hash %v, %v; node 0 has %v", i, users, err, want)
		}
	}
}

func TestGetOfAnAbsentKeyIsNotFoundAndDeleteRemoves(t *testing.T) {
	t.Parallel() // nodes on ephemeral ports: independent of other tests
	node := openNodes(t, 1)[0]
	if _, err := node.Get("users", []byte("nobody")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get of an absent key: %v, want ErrNotFound", err)
	}
	if err := node.Put("users", []byte(""), []byte("")); err != nil {
		t.Fatalf("an empty key and value are allowed: %v", err)
	}
	if value, err := node.Get("users", []byte{}); err != nil || len(value) != 0 {
		t.Fatalf("get of the empty key: %q, %v", value, err)
	}
	if err := node.Delete("users", nil); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := node.Delete("users", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	if _, err := node.Get("users", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v, want ErrNotFound", err)
	}
}

func TestNodeIdIsTheIdentityAndStable(t *testing.T) {
	t.Parallel() // nodes on ephemeral ports: independent of other tests
	nodes := openNodes(t, 2)
	a, errA := nodes[0].ID()
	b, errB := nodes[1].ID()
	if errA != nil || errB != nil || a == b || a == (NodeID{}) {
		t.Fatalf("ids %v (%v), %v (%v): want distinct, non-zero", a, errA, b, errB)
	}
	parsed, err := ParseNodeID(a.String())
	if err != nil || parsed != a {
		t.Fatalf("ParseNodeID(String()) = %v, %v", parsed, err)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	t.Parallel() // nodes on ephemeral ports: independent of other tests
	node := openNodes(t, 1)[0]
	health, err := node.HealthJSON()
	if err != nil || len(health) == 0 || health[0] != '{' {
		t.Fatalf("health json %q, %v", health, err)
	}
	if _, err := node.Metrics(); err != nil {
		t.Fatalf("metrics: %v", err)
	}
}

func TestSyncWithOnePeerAnUnknownPeerAndACancelledContext(t *testing.T) {
	t.Parallel()
	nodes := openNodes(t, 2)
	_ = nodes[0].Put("users", []byte("k"), []byte("v"))
	converge(t, nodes, 20*time.Second)
	peer, _ := nodes[0].ID()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	report, err := nodes[1].Sync(ctx, &peer)
	if err != nil || report.Peers != 1 || report.PeersFailed != 0 {
		t.Fatalf("sync with a connected peer: %+v, %v", report, err)
	}
	stranger := NodeID{1, 2, 3}
	report, err = nodes[1].Sync(ctx, &stranger)
	if err != nil || report.PeersFailed != 1 {
		t.Fatalf("sync with an unknown peer: %+v, %v (want one failed peer, no error)", report, err)
	}
	cancelled, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	if _, err := nodes[1].Sync(cancelled, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("sync with a cancelled context: %v", err)
	}
}
