package bhsync

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// The resolver keeps the larger value. Node 0 writes "zzz" first and node 1 writes
// "aaa" later, so last-writer-wins would keep "aaa": seeing "zzz" on both proves the Go
// resolver decided, on the engine's thread.
func TestCustomResolverWrittenInGoDecidesConflicts(t *testing.T) {
	t.Parallel()                   // nodes on ephemeral ports: independent of other tests
	nodes := openUnconnected(t, 2) // the writes must not see each other: a true conflict
	var calls atomic.Int64
	larger := func(local, remote Versioned) (Resolution, error) {
		calls.Add(1)
		if bytes.Compare(remote.Value, local.Value) > 0 {
			return KeepRemote(), nil
		}
		return KeepLocal(), nil
	}
	for _, node := range nodes {
		if err := node.SetConflictResolver("custom", larger); err != nil {
			t.Fatalf("set resolver: %v", err)
		}
	}
	if err := nodes[0].Put("custom", []byte("k"), []byte("zzz")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // a later timestamp for node 1's write
	if err := nodes[1].Put("custom", []byte("k"), []byte("aaa")); err != nil {
		t.Fatal(err)
	}
	connectAll(t, nodes)
	converge(t, nodes, 20*time.Second)
	for i, node := range nodes {
		got, err := node.Get("custom", []byte("k"))
		if err != nil || string(got) != "zzz" {
			t.Fatalf("node %d has %q, %v; want the resolver's choice \"zzz\"", i, got, err)
		}
	}
	if calls.Load() == 0 {
		t.Fatal("the resolver was never called")
	}
}

func TestAResolverErrorFallsBackToLastWriterWins(t *testing.T) {
	t.Parallel() // nodes on ephemeral ports: independent of other tests
	nodes := openUnconnected(t, 2)
	failing := func(local, remote Versioned) (Resolution, error) {
		return Resolution{}, context.DeadlineExceeded
	}
	for _, node := range nodes {
		if err := node.SetConflictResolver("custom", failing); err != nil {
			t.Fatalf("set resolver: %v", err)
		}
	}
	_ = nodes[0].Put("custom", []byte("k"), []byte("first"))
	time.Sleep(5 * time.Millisecond)
	_ = nodes[1].Put("custom", []byte("k"), []byte("second"))
	connectAll(t, nodes)
	converge(t, nodes, 20*time.Second)
	for i, node := range nodes {
		if got, err := node.Get("custom", []byte("k")); err != nil || string(got) != "second" {
			t.Fatalf("node %d has %q, %v; want last-writer-wins' \"second\"", i, got, err)
		}
	}
}

func TestEventsArriveOnAChannelThatCloseCloses(t *testing.T) {
	t.Parallel() // nodes on ephemeral ports: independent of other tests
	nodes := openNodes(t, 2)
	events := nodes[1].Events()
	if err := nodes[0].Put("users", []byte("news"), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	converge(t, nodes, 20*time.Second)
	deadline := time.After(10 * time.Second)
	sawPeer, sawUpdate := false, false
	for !(sawPeer && sawUpdate) {
		select {
		case event, ok := <-events:
			if !ok {
				t.Fatal("events closed early")
			}
			sawPeer = sawPeer || event.Kind == EventPeerUp
			sawUpdate = sawUpdate || (event.Kind == EventUpdated || event.Kind == EventStreamed) && event.Category == "users"
		case <-deadline:
			t.Fatalf("events: peer up %v, update of users %v after 10 s", sawPeer, sawUpdate)
		}
	}
	nodes[1].Close()
	for range events { // drains, then ends because Close closed the channel
	}
}

func TestPollEventHonoursTheContext(t *testing.T) {
	t.Parallel() // nodes on ephemeral ports: independent of other tests
	node := openNodes(t, 1)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	for {
		_, err := node.PollEvent(ctx)
		if err != nil {
			if err != context.DeadlineExceeded {
				t.Fatalf("poll: %v, want context.DeadlineExceeded", err)
			}
			break
		}
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Fatalf("poll returned after %v for a 100 ms context", elapsed)
	}
}

func TestTheResolverCallbackAnswersForEveryKindOfResolution(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		resolver ConflictResolver
		code     int
		choice   uint32
		merged   string
	}{
		{"keep local", func(l, r Versioned) (Resolution, error) { return KeepLocal(), nil }, 0, 1, ""},
		{"keep remote", func(l, r Versioned) (Resolution, error) { return KeepRemote(), nil }, 0, 2, ""},
		{"merge", func(l, r Versioned) (Resolution, error) {
			return Merge(append(append([]byte{}, l.Value...), r.Value...)), nil
		}, 0, 3, "ab"},
		{"error", func(l, r Versioned) (Resolution, error) { return KeepLocal(), errors.New("no") }, 1, 0, ""},
		{"panic", func(l, r Versioned) (Resolution, error) { panic("boom") }, 1, 0, ""},
		{"zero resolution", func(l, r Versioned) (Resolution, error) { return Resolution{}, nil }, 1, 0, ""},
		{"merge too large", func(l, r Versioned) (Resolution, error) { return Merge(make([]byte, MaxValueLen+1)), nil }, 1, 0, ""},
	}
	for _, c := range cases {
		code, choice, merged := resolveDirect(c.resolver, []byte("a"), []byte("b"))
		if code != c.code || choice != c.choice || string(merged) != c.merged {
			t.Errorf("%s: code %d choice %d merged %q; want %d %d %q", c.name, code, choice, merged, c.code, c.choice, c.merged)
		}
	}
}
