package bhsync

// #include "bhsync.h"
import "C"

import "time"

// NetworkTime is the time the node's peers agree on (bhs_network_time).
type NetworkTime struct {
	// UnixMs is milliseconds since the Unix epoch in network time. It never goes
	// backwards from one NetworkTime call on a node to the next.
	UnixMs uint64
	// OffsetMs is network time minus the local clock, in milliseconds (0 while too few
	// peers agree, when network time is the local clock).
	OffsetMs int64
}

// Time is UnixMs as a time.Time (in the local time zone, without a monotonic reading).
func (t NetworkTime) Time() time.Time { return time.UnixMilli(int64(t.UnixMs)) }

// Offset is OffsetMs as a time.Duration.
func (t NetworkTime) Offset() time.Duration { return time.Duration(t.OffsetMs) * time.Millisecond }

// NetworkTime reads network time: the node's clock corrected by the offset its peers
// agree on, never going backwards between two calls; the local clock while too few
// peers agree.
func (n *Node) NetworkTime() (NetworkTime, error) {
	var out NetworkTime
	err := n.with(func(handle *C.bhs_node) error {
		var unixMs C.uint64_t
		var offsetMs C.int64_t
		if err := call("network_time", func() C.bhs_status {
			return C.bhs_network_time(handle, &unixMs, &offsetMs)
		}); err != nil {
			return err
		}
		out = NetworkTime{UnixMs: uint64(unixMs), OffsetMs: int64(offsetMs)}
		return nil
	})
	return out, err
}
