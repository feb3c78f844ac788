package bhsync

// #include "bhsync.h"
import "C"

import (
	"context"
	"sync"
	"time"
)

// EventKind says what happened.
type EventKind int

// The kinds of Event.
const (
	// EventPeerUp: a connection to Peer is up.
	EventPeerUp EventKind = iota + 1
	// EventPeerDown: the connection to Peer is down.
	EventPeerDown
	// EventUpdated: a remote write changed Key in Category.
	EventUpdated
	// EventStreamed: a frame of Entries entries of Category was applied (bulk sync).
	EventStreamed
	// EventSyncFinished: a sync with Peer finished (Message says why it failed, if so).
	EventSyncFinished
	// EventConflict: two versions of Key in Category conflicted and were resolved.
	EventConflict
	// EventFatal: the engine stopped on an error it cannot recover from (Message).
	EventFatal
)

// Event is something that happened on a node. Fields not used by a Kind are zero.
type Event struct {
	Kind     EventKind
	Peer     NodeID
	Category string
	Key      []byte
	Entries  uint64
	// Merged: a conflict produced a new, merged version.
	Merged bool
	// Message: why a sync, a resolution or the engine failed ("" when nothing failed).
	Message string
}

// eventPollSlice is how long one bhs_poll_event call may block, so that Close and a
// cancelled context are noticed within it.
const eventPollSlice = 100 * time.Millisecond

// eventBuffer is the capacity of the Events channel.
const eventBuffer = 256

// eventPump is the goroutine behind Node.Events.
type eventPump struct {
	once    sync.Once
	ch      chan Event
	done    chan struct{}
	stopped sync.WaitGroup
	stopMu  sync.Mutex
	closed  bool
}

// Events returns a channel of the node's events, fed by a goroutine that polls the
// library; Close closes it. The first call starts the goroutine; later calls return the
// same channel. Do not mix with PollEvent: each event goes to one of them. On a closed
// node it returns a closed channel.
func (n *Node) Events() <-chan Event {
	if n == nil {
		ch := make(chan Event)
		close(ch)
		return ch
	}
	pump := &n.events
	pump.once.Do(func() {
		pump.stopMu.Lock()
		defer pump.stopMu.Unlock()
		pump.ch = make(chan Event, eventBuffer)
		pump.done = make(chan struct{})
		if pump.closed {
			close(pump.ch)
			return
		}
		pump.stopped.Add(1)
		go n.pumpEvents()
	})
	return pump.ch
}

func (n *Node) pumpEvents() {
	pump := &n.events
	defer pump.stopped.Done()
	defer close(pump.ch)
	for {
		select {
		case <-pump.done:
			return
		default:
		}
		event, ok, err := n.pollOnce(eventPollSlice)
		if err != nil {
			return // the node is closed
		}
		if !ok {
			continue
		}
		select {
		case pump.ch <- event:
		case <-pump.done:
			return
		}
	}
}

// stop ends the pump and waits for it (called by Close before the handle goes).
func (pump *eventPump) stop() {
	pump.stopMu.Lock()
	if pump.closed {
		pump.stopMu.Unlock()
		return
	}
	pump.closed = true
	if pump.done != nil {
		close(pump.done)
	}
	pump.stopMu.Unlock()
	pump.stopped.Wait()
}

// PollEvent waits for the next event until ctx is done (then it returns ctx.Err()).
// Use either PollEvent or Events, not both.
func (n *Node) PollEvent(ctx context.Context) (Event, error) {
	for {
		slice := eventPollSlice
		if deadline, ok := ctx.Deadline(); ok {
			if left := time.Until(deadline); left < slice {
				slice = max(left, 0)
			}
		}
		event, ok, err := n.pollOnce(slice)
		if err != nil {
			return Event{}, err
		}
		if ok {
			return event, nil
		}
		if err := ctx.Err(); err != nil {
			return Event{}, err
		}
	}
}
