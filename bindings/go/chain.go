package bhsync

// #include "bhsync.h"
import "C"

import (
	"encoding/hex"
	"runtime"
	"unsafe"
)

// The chain's bounds (include/bhsync.h).
const (
	// MaxBlockTransactions is the most transactions one block holds.
	MaxBlockTransactions = int(C.BHS_MAX_BLOCK_TRANSACTIONS)
	// MaxTransactionLen is the longest transaction in bytes.
	MaxTransactionLen = int(C.BHS_MAX_TRANSACTION_LEN)
)

// BlockID is the 32-byte id of a chain block.
type BlockID [32]byte

// String is the id in hex.
func (id BlockID) String() string { return hex.EncodeToString(id[:]) }

// ChainHead names a block of a chain: its height (genesis at 0) and its id.
type ChainHead struct {
	Height uint64
	ID     BlockID
}

// ChainAppend appends transactions to the chain category (mode=chain; the node needs a
// DataDir) as one block signed by this node, on its current head, and returns the new
// block once it is durable. Peers learn it through the chain's sync; fork choice keeps
// the highest chain (ties: the lowest head id), so a block appended on a losing branch
// may later leave the main chain. ErrInvalidArgument over MaxBlockTransactions or
// MaxTransactionLen, or for a category that is not the node's chain (nothing appended).
// The library copies the bytes.
func (n *Node) ChainAppend(category string, transactions [][]byte) (ChainHead, error) {
	if len(transactions) > MaxBlockTransactions {
		return ChainHead{}, invalid("chain_append", "more transactions than MaxBlockTransactions")
	}
	for _, transaction := range transactions {
		if len(transaction) > MaxTransactionLen {
			return ChainHead{}, invalid("chain_append", "a transaction longer than MaxTransactionLen")
		}
	}
	// The arrays of pointers and lengths are Go memory lent for the call; the pointers
	// in them point to Go memory too, which cgo allows only while it is pinned.
	var pinner runtime.Pinner
	defer pinner.Unpin()
	pointers := make([]*C.uint8_t, len(transactions))
	lengths := make([]C.size_t, len(transactions))
	for i, transaction := range transactions {
		if len(transaction) > 0 {
			pinner.Pin(&transaction[0])
			pointers[i] = (*C.uint8_t)(unsafe.Pointer(&transaction[0]))
		}
		lengths[i] = C.size_t(len(transaction))
	}
	var pointersPtr **C.uint8_t
	var lengthsPtr *C.size_t
	if len(transactions) > 0 {
		pointersPtr, lengthsPtr = &pointers[0], &lengths[0]
	}
	var head ChainHead
	err := n.categorized("chain_append", category, func(handle *C.bhs_node, cat *C.char) C.bhs_status {
		var height C.uint64_t
		status := C.bhs_chain_append(handle, cat, pointersPtr, lengthsPtr, C.size_t(len(transactions)), &height,
			(*C.uint8_t)(unsafe.Pointer(&head.ID[0])))
		head.Height = uint64(height)
		return status
	})
	if err != nil {
		return ChainHead{}, err
	}
	return head, nil
}

// ChainHead is the head of the chain category: the height and id of its main chain's
// last block (the genesis block, height 0, on a fresh chain).
func (n *Node) ChainHead(category string) (ChainHead, error) {
	var head ChainHead
	err := n.categorized("chain_head", category, func(handle *C.bhs_node, cat *C.char) C.bhs_status {
		var height C.uint64_t
		status := C.bhs_chain_head(handle, cat, &height, (*C.uint8_t)(unsafe.Pointer(&head.ID[0])))
		head.Height = uint64(height)
		return status
	})
	if err != nil {
		return ChainHead{}, err
	}
	return head, nil
}

// ChainBlock is the encoded block at height on the main chain of the category (genesis
// at 0): a 176-byte header (height, timestamp ms, parent id, transactions' Merkle root,
// proposer key, Ed25519 signature; little endian), a uint32 transaction count, then
// each transaction as a uint32 length and its bytes. ErrNotFound above the head.
func (n *Node) ChainBlock(category string, height uint64) ([]byte, error) {
	var block []byte
	err := n.categorized("chain_block", category, func(handle *C.bhs_node, cat *C.char) C.bhs_status {
		var buf C.bhs_buf
		status := C.bhs_chain_block(handle, cat, C.uint64_t(height), &buf)
		if status == C.BHS_OK {
			block = takeBuf(&buf)
		}
		return status
	})
	return block, err
}
