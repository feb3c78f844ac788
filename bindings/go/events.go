package bhsync

// #include "bhsync.h"
import "C"

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// EventKind says what happened (the BHS_EVENT_* codes).
type EventKind uint32

// The kinds of Event. Kinds a later library adds are skipped by this package.
const (
	// EventPeerUp: a connection to Peer came up.
	EventPeerUp EventKind = C.BHS_EVENT_PEER_UP
	// EventPeerDown: the connection to Peer went down.
	EventPeerDown EventKind = C.BHS_EVENT_PEER_DOWN
	// EventUpdated: a write from a peer changed Key in Category.
	EventUpdated EventKind = C.BHS_EVENT_UPDATED
	// EventStreamed: a frame of Count entries of Category was applied (bulk sync).
	EventStreamed EventKind = C.BHS_EVENT_STREAMED
	// EventSyncFinished: sync SyncID with Peer finished, Count entries applied; Failed
	// and Message when it failed.
	EventSyncFinished EventKind = C.BHS_EVENT_SYNC_FINISHED
	// EventFatal: the engine stopped on an error it cannot recover from (Message).
	EventFatal EventKind = C.BHS_EVENT_FATAL
	// EventConflict: two versions of Key in Category conflicted and were resolved;
	// Merged when a merged value was stored, Failed and Message when the rule failed.
	EventConflict EventKind = C.BHS_EVENT_CONFLICT
	// EventLeader: the Raft group of the strong Category has a new leader, Peer (zero
	// when unknown), in term Count.
	EventLeader EventKind = C.BHS_EVENT_LEADER
	// EventPartition: the strong Category lost (Reachable false) or regained (Reachable
	// true) a quorum of its Raft group. With an empty Category, the node's membership
	// saw itself on a minority side, or a majority reachable again: Count members are
	// reachable and Message says how many are known.
	EventPartition EventKind = C.BHS_EVENT_PARTITION
	// EventMemberUp: membership (SWIM) counts Peer as a live member: it joined or came
	// back.
	EventMemberUp EventKind = C.BHS_EVENT_MEMBER_UP
	// EventMemberSuspect: membership suspects Peer; it may still refute.
	EventMemberSuspect EventKind = C.BHS_EVENT_MEMBER_SUSPECT
	// EventMemberDead: membership declared Peer dead.
	EventMemberDead EventKind = C.BHS_EVENT_MEMBER_DEAD
	// EventMemberLeft: Peer left the membership on purpose.
	EventMemberLeft EventKind = C.BHS_EVENT_MEMBER_LEFT
	// EventMemberRefuted: this node refuted a suspicion about itself; Count is its new
	// incarnation.
	EventMemberRefuted EventKind = C.BHS_EVENT_MEMBER_REFUTED
)

var eventKindNames = map[EventKind]string{
	EventPeerUp: "PeerUp", EventPeerDown: "PeerDown", EventUpdated: "Updated", EventStreamed: "Streamed",
	EventSyncFinished: "SyncFinished", EventFatal: "Fatal", EventConflict: "Conflict",
	EventLeader: "Leader", EventPartition: "Partition", EventMemberUp: "MemberUp",
	EventMemberSuspect: "MemberSuspect", EventMemberDead: "MemberDead", EventMemberLeft: "MemberLeft",
	EventMemberRefuted: "MemberRefuted",
}

func (k EventKind) String() string {
	if name, ok := eventKindNames[k]; ok {
		return name
	}
	return fmt.Sprintf("EventKind(%d)", uint32(k))
}

// Event is something that happened on a node. Fields a Kind does not use are zero.
type Event struct {
	Kind EventKind
	// Peer: the peer of EventPeerUp, EventPeerDown and EventSyncFinished, the leader of
	// EventLeader (zero when unknown), the member of EventMember{Up,Suspect,Dead,Left}.
	Peer     NodeID
	Category string
	Key      []byte
	// Count: entries applied (EventSyncFinished) or streamed (EventStreamed), the term
	// (EventLeader), the members reachable (EventPartition with no Category), or this
	// node's new incarnation (EventMemberRefuted).
	Count  uint64
	SyncID uint32
	// Merged: a conflict produced a merged value. Failed: the sync or resolution failed.
	Merged, Failed bool
	// Reachable: an EventPartition reports a quorum (or a majority) reachable again.
	Reachable bool
	// Message: why a sync, a resolution or the engine failed, or how many members an
	// EventPartition knows.
	Message string
}

// pollOnce waits up to timeout for one event; ok is false when none came (or its kind
// is unknown to this package).
func (n *Node) pollOnce(timeout time.Duration) (event Event, ok bool, err error) {
	err = n.with(func(handle *C.bhs_node) error {
		var raw C.bhs_event
		millis := C.uint32_t(min(max(timeout, 0), maxTimeout) / time.Millisecond)
		runtime.LockOSThread() // the error message is thread-local
		defer runtime.UnlockOSThread()
		status := C.bhs_poll_event(handle, &raw, millis)
		if status == C.BHS_TIMEOUT {
			return nil
		}
		if err := check("poll_event", status); err != nil {
			return err
		}
		defer C.bhs_event_free(&raw)
		event, ok = convertEvent(&raw)
		return nil
	})
	return event, ok, err
}

func convertEvent(raw *C.bhs_event) (Event, bool) {
	kind := EventKind(raw.kind)
	if _, known := eventKindNames[kind]; !known {
		return Event{}, false
	}
	event := Event{
		Kind:     kind,
		Category: string(copyBuf(&raw.category)),
		Key:      copyBuf(&raw.key),
		Count:    uint64(raw.count),
		SyncID:   uint32(raw.sync_id),
		Merged:   raw.flags&C.BHS_EVENT_FLAG_MERGED != 0,
		Failed:   raw.flags&C.BHS_EVENT_FLAG_FAILED != 0,
		Message:  string(copyBuf(&raw.message)),
		// The flag is defined for EventPartition only; other kinds leave it false.
		Reachable: kind == EventPartition && raw.flags&C.BHS_EVENT_FLAG_REACHABLE != 0,
	}
	for i := range event.Peer {
		event.Peer[i] = byte(raw.peer[i])
	}
	return event, true
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
