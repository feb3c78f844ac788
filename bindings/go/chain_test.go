package bhsync

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// openChainNodes opens count connected nodes, each with a data directory and the chain
// category "ledger", closed at the end of the test.
func openChainNodes(t *testing.T, count int) []*Node {
	t.Helper()
	nodes := make([]*Node, 0, count)
	for i := 0; i < count; i++ {
		node, err := Open(Config{
			Listen:         "127.0.0.1:0",
			DataDir:        t.TempDir(), // removed after the nodes close (cleanups run last first)
			IdentitySecret: testSecret(20 + i),
			Categories:     []Category{{Name: "ledger", Spec: "mode=chain"}},
		})
		if err != nil {
			closeAll(nodes)
			t.Fatalf("open chain node %d: %v", i, err)
		}
		nodes = append(nodes, node)
	}
	t.Cleanup(func() { closeAll(nodes) })
	connectAll(t, nodes)
	return nodes
}

func TestBlocksAppendedOnOneNodeReachEveryNodeAndReadBack(t *testing.T) {
	t.Parallel() // nodes on ephemeral ports and their own directories
	nodes := openChainNodes(t, 3)
	a := nodes[0]
	genesis, err := a.ChainHead("ledger")
	if err != nil || genesis.Height != 0 {
		t.Fatalf("head of a fresh chain: %+v, %v (want the genesis block, height 0)", genesis, err)
	}

	first, err := a.ChainAppend("ledger", [][]byte{[]byte("pay 5"), []byte("pay 7")})
	if err != nil || first.Height != 1 || first.ID == genesis.ID {
		t.Fatalf("first append: %+v, %v (want height 1, a new id)", first, err)
	}
	second, err := a.ChainAppend("ledger", [][]byte{[]byte("pay 9"), nil}) // an empty transaction is allowed
	if err != nil || second.Height != 2 {
		t.Fatalf("second append: %+v, %v (want height 2)", second, err)
	}
	if head, err := a.ChainHead("ledger"); err != nil || head != second {
		t.Fatalf("head after two appends: %+v, %v (want %+v)", head, err, second)
	}
	block, err := a.ChainBlock("ledger", 1)
	if err != nil || len(block) != 176+4+2*(4+5) || !bytes.HasSuffix(block, []byte("pay 7")) {
		t.Fatalf("block 1: %d bytes, %v (want 176 + 4 + 2 × (4 + 5), ending with the last transaction)",
			len(block), err)
	}
	if block, err := a.ChainBlock("ledger", 2); err != nil || len(block) != 176+4+(4+5)+4 {
		t.Fatalf("block 2: %d bytes, %v (want 176 + 4 + (4 + 5) + 4)", len(block), err)
	}

	deadline := time.Now().Add(30 * time.Second)
	for _, node := range nodes[1:] {
		for {
			head, err := node.ChainHead("ledger")
			if err != nil {
				t.Fatalf("chain head: %v", err)
			}
			if head == second {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a peer's head is %+v after 30 s, want %+v", head, second)
			}
			time.Sleep(50 * time.Millisecond)
		}
		copied, err := node.ChainBlock("ledger", 1)
		if err != nil || !bytes.Equal(copied, block) {
			t.Fatalf("a peer's block 1: %d bytes, %v (want the appender's bytes)", len(copied), err)
		}
	}
	if _, err := nodes[1].ChainBlock("ledger", 3); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a block above the head: %v, want ErrNotFound", err)
	}
}

func TestChainCallsRefuseBadArguments(t *testing.T) {
	t.Parallel() // nodes on ephemeral ports and their own directories
	node := openChainNodes(t, 1)[0]
	one := [][]byte{[]byte("tx")}
	_, notChain := node.ChainAppend("default", one)
	_, unknown := node.ChainHead("nosuch")
	_, emptyName := node.ChainAppend("", one)
	_, withNul := node.ChainBlock("led\x00ger", 0)
	_, tooMany := node.ChainAppend("ledger", make([][]byte, MaxBlockTransactions+1))
	_, tooLong := node.ChainAppend("ledger", [][]byte{make([]byte, MaxTransactionLen+1)})
	_, blockOfNotChain := node.ChainBlock("default", 0)
	cases := map[string]error{
		"append to a category that is not the chain": notChain,
		"head of an unknown category":                unknown,
		"an empty category name":                     emptyName,
		"a category name with NUL":                   withNul,
		"more than MaxBlockTransactions":             tooMany,
		"a transaction over MaxTransactionLen":       tooLong,
		"block of a category that is not the chain":  blockOfNotChain,
	}
	for name, err := range cases {
		var typed *Error
		if !errors.Is(err, ErrInvalidArgument) || !errors.As(err, &typed) || typed.Op == "" {
			t.Errorf("%s: %v, want an *Error with ErrInvalidArgument", name, err)
		}
	}
	if err := node.Put("ledger", []byte("k"), []byte("v")); !errors.Is(err, ErrWrongMode) {
		t.Errorf("put into the chain category: %v, want ErrWrongMode", err)
	}
	if head, err := node.ChainHead("ledger"); err != nil || head.Height != 0 {
		t.Errorf("the refused appends left the head at %+v, %v (want the genesis block)", head, err)
	}
	node.Close()
	if _, err := node.ChainHead("ledger"); !errors.Is(err, ErrClosed) {
		t.Errorf("chain head of a closed node: %v, want ErrClosed", err)
	}
}
