package bhsync

import (
	"context"
	"errors"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestOversizedAndMalformedInputsAreInvalidArguments(t *testing.T) {
	t.Parallel() // nodes on ephemeral ports: independent of other tests
	node := openNodes(t, 1)[0]
	huge := make([]byte, MaxValueLen+1)
	cases := map[string]error{
		"key over MaxKeyLen":     node.Put("users", make([]byte, MaxKeyLen+1), nil),
		"value over MaxValueLen": node.Put("users", []byte("k"), huge),
		"empty category":         node.Put("", []byte("k"), nil),
		"category with NUL":      node.Put("us\x00ers", []byte("k"), nil),
		"category over the max":  node.Put(strings.Repeat("c", 65), []byte("k"), nil),
		"connect to nonsense":    node.Connect("not an address"),
		"connect with NUL":       node.Connect("127.0.0.1:1\x00"),
		"nil resolver":           node.SetConflictResolver("custom", nil),
	}
	for name, err := range cases {
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
	if _, err := node.Get("users", make([]byte, MaxKeyLen+1)); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("get with a huge key: %v", err)
	}
	if err := node.Put("users", make([]byte, MaxKeyLen), make([]byte, MaxValueLen)); err != nil {
		t.Errorf("a key and value at their bounds are accepted: %v", err)
	}
}

func TestBadConfigurationsFailToOpen(t *testing.T) {
	t.Parallel() // nodes on ephemeral ports: independent of other tests
	configs := map[string]Config{
		"unknown setting":        {Settings: map[string]string{"no_such_key": "1"}},
		"bad listen address":     {Listen: "localhost:notaport"},
		"unknown mode":           {Categories: []Category{{Name: "c", Spec: "mode=psychic"}}},
		"unknown merge":          {Categories: []Category{{Name: "c", Spec: "merge=vibes"}}},
		"unknown priority":       {Categories: []Category{{Name: "c", Spec: "priority=urgent"}}},
		"unknown io backend":     {Settings: map[string]string{"io_backend": "epoll"}},
		"huge shard count":       {Shards: 1 << 20},
		"bad category name":      {Categories: []Category{{Name: "bad name\n", Spec: ""}}},
		"short identity secret":  {IdentitySecret: []byte{1, 2, 3}},
		"setting value with NUL": {Settings: map[string]string{"listen": "127.0.0.1:0\x00"}},
	}
	for name, cfg := range configs {
		node, err := Open(cfg)
		if err == nil {
			node.Close()
			t.Errorf("%s: opened", name)
		} else if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
}

func TestAClosedOrNilNodeReturnsErrClosed(t *testing.T) {
	t.Parallel() // nodes on ephemeral ports: independent of other tests
	node := openNodes(t, 1)[0]
	if err := node.Close(); err != nil {
		t.Fatal(err)
	}
	if err := node.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	var nilNode *Node
	for _, n := range []*Node{node, nilNode} {
		if err := n.Put("users", []byte("k"), []byte("v")); !errors.Is(err, ErrClosed) {
			t.Errorf("put: %v", err)
		}
		if _, err := n.Get("users", []byte("k")); !errors.Is(err, ErrClosed) {
			t.Errorf("get: %v", err)
		}
		if _, err := n.Sync(context.Background(), nil); !errors.Is(err, ErrClosed) {
			t.Errorf("sync: %v", err)
		}
		if _, err := n.StateHash(); !errors.Is(err, ErrClosed) {
			t.Errorf("state hash: %v", err)
		}
		if _, err := n.PollEvent(context.Background()); !errors.Is(err, ErrClosed) {
			t.Errorf("poll: %v", err)
		}
		if _, ok := <-n.Events(); ok {
			t.Errorf("events of a closed node delivered something")
		}
	}
	if err := nilNode.Close(); err != nil {
		t.Errorf("close of nil: %v", err)
	}
}

// Many goroutines use one node while another closes it: every call either works or
// returns ErrClosed; nothing crashes (run with -race to check the Go side too).
func TestConcurrentUseAndCloseAreSafe(t *testing.T) {
	t.Parallel() // nodes on ephemeral ports: independent of other tests
	node := openNodes(t, 1)[0]
	var wg sync.WaitGroup
	var calls atomic.Int64
	start := make(chan struct{})
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			<-start
			for i := 0; i < 200; i++ {
				k := key("g%d-%d", g, i)
				calls.Add(1)
				for _, err := range []error{node.Put("users", k, k), errOf(node.Get("users", k)), errOf(node.StateHash())} {
					if err != nil && !errors.Is(err, ErrClosed) {
						t.Errorf("goroutine %d: %v", g, err)
						return
					}
				}
			}
		}(g)
	}
	close(start)
	go func() {
		for calls.Load() < 100 { // close in the middle of the traffic
			runtime.Gosched()
		}
		node.Close()
	}()
	wg.Wait()
	if err := node.Put("users", []byte("k"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("put after close: %v", err)
	}
}

func errOf[T any](_ T, err error) error { return err }

// Every status of include/bhsync.h has its Status constant here, with the same number.
func TestEveryStatusOfTheHeaderIsKnown(t *testing.T) {
	t.Parallel()
	header, err := os.ReadFile("../../include/bhsync.h")
	if err != nil {
		t.Fatalf("read the header: %v", err)
	}
	known := map[Status]bool{}
	for _, status := range knownStatuses {
		known[status] = true
	}
	notStatus := regexp.MustCompile(`^BHS_(MAX_|ABI_|EVENT_|IO_BACKEND_|RESOLVE_)`)
	defines := regexp.MustCompile(`(?m)^#define (BHS_[A-Z_]+) (\d+)$`)
	for _, match := range defines.FindAllStringSubmatch(string(header), -1) {
		if notStatus.MatchString(match[1]) {
			continue
		}
		code, _ := strconv.Atoi(match[2])
		if !known[Status(code)] {
			t.Errorf("%s = %d has no Status constant in errors.go (or is a new non-status #define: extend notStatus)", match[1], code)
		}
	}
}
