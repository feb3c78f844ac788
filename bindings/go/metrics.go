package bhsync

// #include "bhsync.h"
import "C"

// Metrics is a snapshot of a node's counters: totals since it opened, except
// PeersConnected (see bhs_node_metrics in include/bhsync.h).
type Metrics struct {
	IOBackend                                          string // "io_uring", "mio" or "unknown"
	PeersConnected                                     uint64
	ItemsIn, ItemsOut                                  uint64
	SyncsStarted, SyncsSucceeded, SyncsFailed          uint64
	BulkSyncs, Conflicts, ConflictsUnresolved          uint64
	EventsDropped, PushesDropped                       uint64
	BytesIn, BytesOut, FramesIn, FramesOut             uint64
	Accepted, Dials, DialFailures                      uint64
	HandshakesCompleted, HandshakesFailed              uint64
	BadFrames, PeerFaults, DisconnectedForMisbehaviour uint64
}

// Metrics reads the node's counters.
func (n *Node) Metrics() (Metrics, error) {
	var m Metrics
	err := n.with(func(handle *C.bhs_node) error {
		var raw C.bhs_node_metrics
		if err := call("metrics", func() C.bhs_status { return C.bhs_metrics(handle, &raw) }); err != nil {
			return err
		}
		m = Metrics{
			IOBackend:      ioBackendName(raw.io_backend),
			PeersConnected: uint64(raw.peers_connected),
			ItemsIn:        uint64(raw.items_in), ItemsOut: uint64(raw.items_out),
			SyncsStarted: uint64(raw.syncs_started), SyncsSucceeded: uint64(raw.syncs_succeeded),
			SyncsFailed: uint64(raw.syncs_failed), BulkSyncs: uint64(raw.bulk_syncs),
			Conflicts: uint64(raw.conflicts), ConflictsUnresolved: uint64(raw.conflicts_unresolved),
			EventsDropped: uint64(raw.events_dropped), PushesDropped: uint64(raw.pushes_dropped),
			BytesIn: uint64(raw.bytes_in), BytesOut: uint64(raw.bytes_out),
			FramesIn: uint64(raw.frames_in), FramesOut: uint64(raw.frames_out),
			Accepted: uint64(raw.accepted), Dials: uint64(raw.dials), DialFailures: uint64(raw.dial_failures),
			HandshakesCompleted: uint64(raw.handshakes_completed), HandshakesFailed: uint64(raw.handshakes_failed),
			BadFrames: uint64(raw.bad_frames), PeerFaults: uint64(raw.peer_faults),
			DisconnectedForMisbehaviour: uint64(raw.disconnected_misbehaviour),
		}
		return nil
	})
	return m, err
}

func ioBackendName(code C.uint32_t) string {
	switch code {
	case C.BHS_IO_BACKEND_IO_URING:
		return "io_uring"
	case C.BHS_IO_BACKEND_MIO:
		return "mio"
	}
	return "unknown"
}

// HealthJSON is the node's health report as a JSON object: status "healthy",
// "degraded" or "critical", warnings with recommendations, and figures.
func (n *Node) HealthJSON() ([]byte, error) {
	var report []byte
	err := n.with(func(handle *C.bhs_node) error {
		var buf C.bhs_buf
		if err := call("health_json", func() C.bhs_status { return C.bhs_health_json(handle, &buf) }); err != nil {
			return err
		}
		report = takeBuf(&buf)
		return nil
	})
	return report, err
}
