package bhsync

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// memberEventLimit is generous: SWIM's suspicion timeout is 2–12 s at this size
// (Lifeguard, ADR 020), and the machine running the tests may be busy.
const memberEventLimit = 40 * time.Second

// awaitPeers reads events until each of want has been named by an event of one of
// kinds, failing the test after within. It returns the kind seen for each peer.
func awaitPeers(t *testing.T, who string, events <-chan Event, kinds []EventKind, want []NodeID, within time.Duration) map[NodeID]EventKind {
	t.Helper()
	seen := map[NodeID]EventKind{}
	deadline := time.After(within)
	for len(seen) < len(want) {
		select {
		case event, ok := <-events:
			if !ok {
				t.Fatalf("%s: events closed early", who)
			}
			for _, kind := range kinds {
				if event.Kind == kind && contains(want, event.Peer) {
					seen[event.Peer] = event.Kind
				}
			}
		case <-deadline:
			t.Fatalf("%s: only %d of %d peers named by %v within %v", who, len(seen), len(want), kinds, within)
		}
	}
	return seen
}

func contains(ids []NodeID, id NodeID) bool {
	for _, candidate := range ids {
		if candidate == id {
			return true
		}
	}
	return false
}

func ids(t *testing.T, nodes ...*Node) []NodeID {
	t.Helper()
	out := make([]NodeID, 0, len(nodes))
	for _, node := range nodes {
		id, err := node.ID()
		if err != nil {
			t.Fatalf("id: %v", err)
		}
		out = append(out, id)
	}
	return out
}

// Three nodes join: each sees the two others as members up. One closes: the two left
// see it dead (or gone on purpose), named by its id.
func TestMembersUpOnJoinAndAClosedNodeIsReportedDead(t *testing.T) {
	t.Parallel() // nodes on ephemeral ports: independent of other tests
	nodes := openUnconnected(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	aEvents, bEvents := a.Events(), b.Events()
	connectAll(t, nodes)
	up := []EventKind{EventMemberUp}
	awaitPeers(t, "a sees b and c up", aEvents, up, ids(t, b, c), memberEventLimit)
	awaitPeers(t, "b sees a and c up", bEvents, up, ids(t, a, c), memberEventLimit)

	gone := ids(t, c)
	if err := c.Close(); err != nil {
		t.Fatalf("close c: %v", err)
	}
	down := []EventKind{EventMemberDead, EventMemberLeft}
	for who, events := range map[string]<-chan Event{"a": aEvents, "b": bEvents} {
		seen := awaitPeers(t, who+" sees c dead or left", events, down, gone, memberEventLimit)
		t.Logf("%s saw c %v", who, seen[gone[0]])
	}
}

func TestEventKindsHaveNamesAndUnknownKindsANumber(t *testing.T) {
	t.Parallel()
	names := map[EventKind]string{
		EventLeader: "Leader", EventPartition: "Partition", EventMemberUp: "MemberUp",
		EventMemberSuspect: "MemberSuspect", EventMemberDead: "MemberDead", EventMemberLeft: "MemberLeft",
		EventMemberRefuted: "MemberRefuted", EventKind(99): "EventKind(99)",
	}
	for kind, want := range names {
		if got := kind.String(); got != want {
			t.Errorf("EventKind(%d).String() = %q, want %q", uint32(kind), got, want)
		}
	}
}

// Every BHS_EVENT_* kind of include/bhsync.h has its EventKind here, with the same
// number and name.
func TestEveryEventKindOfTheHeaderIsKnown(t *testing.T) {
	t.Parallel()
	header, err := os.ReadFile("../../include/bhsync.h")
	if err != nil {
		t.Fatalf("read the header: %v", err)
	}
	kinds := regexp.MustCompile(`(?m)^#define BHS_EVENT_([A-Z_]+) (\d+)$`)
	for _, match := range kinds.FindAllStringSubmatch(string(header), -1) {
		if strings.HasPrefix(match[1], "FLAG_") {
			continue
		}
		code, _ := strconv.Atoi(match[2])
		want := ""
		for _, word := range strings.Split(match[1], "_") {
			want += word[:1] + strings.ToLower(word[1:])
		}
		if got := EventKind(code).String(); got != want {
			t.Errorf("BHS_EVENT_%s = %d is EventKind %q in events.go, want %q", match[1], code, got, want)
		}
	}
}
