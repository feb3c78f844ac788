// Two bhsync nodes on loopback: a write on one becomes visible on the other.
//
//	make install PREFIX=/usr/local       # once, at the repository root
//	cd examples/go && go run .           # links libbhsync through pkg-config
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	bhsync "github.com/blackhole/bhsync/bindings/go"
)

var categories = []bhsync.Category{{Name: "notes", Spec: "mode=eventual,merge=lww,priority=high"}}

func main() {
	alice, err := bhsync.Open(bhsync.Config{Categories: categories})
	if err != nil {
		log.Fatal(err)
	}
	defer alice.Close()
	bob, err := bhsync.Open(bhsync.Config{Categories: categories})
	if err != nil {
		log.Fatal(err)
	}
	defer bob.Close()

	addr, err := alice.LocalAddr()
	if err != nil {
		log.Fatal(err)
	}
	if err := bob.Connect(addr); err != nil {
		log.Fatal(err)
	}
	if err := alice.Put("notes", []byte("greeting"), []byte("hello from alice")); err != nil {
		log.Fatal(err)
	}

	// Gossip usually delivers the write by itself; an explicit sync makes sure.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	value, err := waitFor(ctx, bob, "notes", []byte("greeting"))
	if err != nil {
		log.Fatalf("bob never saw alice's write: %v", err)
	}
	aliceID, _ := alice.ID()
	bobID, _ := bob.ID()
	fmt.Printf("bob (%.12s) reads %q written by alice (%.12s)\n", bobID, value, aliceID)
}

func waitFor(ctx context.Context, node *bhsync.Node, category string, key []byte) ([]byte, error) {
	for {
		value, err := node.Get(category, key)
		if !errors.Is(err, bhsync.ErrNotFound) {
			return value, err
		}
		syncCtx, cancel := context.WithTimeout(ctx, time.Second)
		if _, err := node.Sync(syncCtx, nil); err != nil {
			time.Sleep(50 * time.Millisecond) // the connection is still coming up
		}
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}
