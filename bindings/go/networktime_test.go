package bhsync

import (
	"errors"
	"testing"
	"time"
)

func TestNetworkTimeOfALoneNodeIsTheLocalClockAndNeverGoesBack(t *testing.T) {
	t.Parallel() // nodes on ephemeral ports: independent of other tests
	node := openNodes(t, 1)[0]
	first, err := node.NetworkTime()
	if err != nil {
		t.Fatalf("network time: %v", err)
	}
	if first.OffsetMs <= -1000 || first.OffsetMs >= 1000 {
		t.Fatalf("a lone node's offset is %d ms, want about 0", first.OffsetMs)
	}
	if first.Offset() != time.Duration(first.OffsetMs)*time.Millisecond {
		t.Fatalf("Offset() = %v for %d ms", first.Offset(), first.OffsetMs)
	}
	previous := first
	for i := 0; i < 50; i++ {
		now, err := node.NetworkTime()
		if err != nil {
			t.Fatalf("network time, call %d: %v", i, err)
		}
		if now.UnixMs < previous.UnixMs {
			t.Fatalf("network time went back from %d to %d ms", previous.UnixMs, now.UnixMs)
		}
		previous = now
	}
	if drift := time.Since(previous.Time()); drift < -2*time.Second || drift > 2*time.Second {
		t.Fatalf("network time %v is %v away from the local clock", previous.Time(), drift)
	}
	if previous.Time().UnixMilli() != int64(previous.UnixMs) {
		t.Fatalf("Time() = %v for %d ms", previous.Time(), previous.UnixMs)
	}
	node.Close()
	if _, err := node.NetworkTime(); !errors.Is(err, ErrClosed) {
		t.Fatalf("network time of a closed node: %v, want ErrClosed", err)
	}
}
