//! HyParView and Plumtree parameters, with where each number comes from.

/// The configuration of one [`super::Gossip`] node.
#[derive(Clone, Debug, PartialEq)]
pub struct GossipConfig {
    /// Active view capacity. HyParView (Leitão, Pereira, Rodrigues 2007, §5) uses
    /// fanout + 1 = 5 for 10,000 nodes, i.e. ⌈log10 n⌉ + 1; see [`GossipConfig::for_size`].
    pub active_view_capacity: usize,
    /// Passive view capacity: k · (log10 n + c); the paper uses 30 for 10,000 nodes.
    pub passive_view_capacity: usize,
    /// Active random walk length (ARWL) of a FORWARDJOIN: 6 in the paper.
    pub active_random_walk_length: u8,
    /// Passive random walk length (PRWL): at this remaining length the walk also adds
    /// the joiner to the passive view. 3 in the paper.
    pub passive_random_walk_length: u8,
    /// Period of the passive-view SHUFFLE. Not fixed by the paper; iroh-gossip uses 60 s.
    pub shuffle_interval_ms: u64,
    /// Active-view entries in a SHUFFLE (ka = 3 in the paper).
    pub shuffle_active_count: usize,
    /// Passive-view entries in a SHUFFLE (kp = 4 in the paper).
    pub shuffle_passive_count: usize,
    /// Period of the keep-alive on idle active links. HyParView relies on TCP to detect a
    /// failed neighbour; without a connection we probe links that were quiet this long.
    pub keepalive_interval_ms: u64,
    /// An active neighbour silent this long is failed and replaced from the passive view.
    pub neighbor_failure_ms: u64,
    /// How long a NEIGHBOR request waits for its reply before another candidate is tried.
    pub neighbor_request_timeout_ms: u64,
    /// Period of a reconnect attempt to one failed neighbour (re-merges split overlays).
    pub reconnect_interval_ms: u64,
    /// Failed neighbours remembered for reconnection at most.
    pub known_capacity: usize,
    /// Plumtree (Leitão, Pereira, Rodrigues 2007, "Epidemic Broadcast Trees", §3.4):
    /// timeout 1, how long an IHAVE waits for the eager copy before a GRAFT.
    pub graft_timeout_ms: u64,
    /// Plumtree timeout 2: the wait before grafting the next announcer.
    pub graft_retry_timeout_ms: u64,
    /// How often queued IHAVE announcements are flushed, batched per peer (Plumtree
    /// §3.8 "the lazy push policy may batch announcements").
    pub ihave_flush_interval_ms: u64,
    /// How long a message id is remembered for deduplication, and its payload kept to
    /// answer GRAFTs.
    pub message_ttl_ms: u64,
    /// IHAVE entries accepted per peer per second; beyond, they are dropped and counted.
    pub ihave_rate_per_s: u32,
    /// Plumtree §3.8 optimization threshold: when a lazy announcer would have brought a
    /// message this many hops sooner than the eager copy did, the tree swaps the two
    /// links. 7, as iroh-gossip. With 1 (chosen first for a lower last-delivery hop in
    /// simulation, one origin at a time: mean LDH 31 against 33 with 3 at N = 1,000),
    /// 32 real nodes writing from many origins kept swapping links, so the eager tree
    /// was torn and lazy repair sat in the normal path: 11 GRAFTs per broadcast and a
    /// one-hop p90 of 204 ms; with 7, 0.8 GRAFTs and 17.5 ms (`benches/cluster.rs`).
    pub optimization_threshold: u32,
    /// Largest payload accepted or sent.
    pub max_payload_len: usize,
    /// Payload bytes kept to answer GRAFTs at most: beyond, the oldest ids are
    /// forgotten before their `message_ttl_ms` (a node carrying bulk writes must not
    /// hold a minute of them).
    pub max_retained_bytes: usize,
    /// How payloads travel: Plumtree's tree (the default) or the seed design's push.
    pub dissemination: Dissemination,
}

/// How a broadcast's payload travels on the active view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dissemination {
    /// Plumtree: eager on tree links, IHAVE elsewhere, GRAFT when late, PRUNE on duplicates.
    #[default]
    Tree,
    /// The seed design's push gossip (src/sim/baseline.rs), kept to be measured against:
    /// the origin pushes to ⌈log2 N⌉ neighbours (N estimated from the views), every
    /// receiver of a new payload to [`PUSH_RELAY_FANOUT`] more while it has travelled
    /// fewer than [`PUSH_TTL_HOPS`] hops; duplicates are dropped, never pruned, and
    /// nothing is announced or grafted. Only active-view neighbours are linked, so the
    /// peers are drawn from the active view rather than from every member.
    Push,
}

/// Push: neighbours each relay forwards a new payload to.
pub const PUSH_RELAY_FANOUT: usize = 3;
/// Push: hops a payload travels at most.
pub const PUSH_TTL_HOPS: u32 = 10;

impl Default for GossipConfig {
    fn default() -> Self {
        GossipConfig::for_size(10_000)
    }
}

impl GossipConfig {
    /// The paper's sizing for an expected group of `node_count`: active ⌈log10 n⌉ + 1
    /// (at least 4), passive 6 × active (30 at 10,000 nodes).
    pub fn for_size(node_count: usize) -> Self {
        let log = (node_count.max(2) as f64).log10().ceil() as usize;
        let active = (log + 1).max(4);
        GossipConfig {
            active_view_capacity: active,
            passive_view_capacity: 6 * active,
            active_random_walk_length: 6,
            passive_random_walk_length: 3,
            shuffle_interval_ms: 5_000,
            shuffle_active_count: 3,
            shuffle_passive_count: 4,
            keepalive_interval_ms: 1_000,
            neighbor_failure_ms: 3_500,
            neighbor_request_timeout_ms: 500,
            reconnect_interval_ms: 2_000,
            known_capacity: 256,
            graft_timeout_ms: 200,
            graft_retry_timeout_ms: 100,
            ihave_flush_interval_ms: 20,
            message_ttl_ms: 60_000,
            ihave_rate_per_s: 2_000,
            optimization_threshold: 7,
            max_payload_len: 64 * 1024,
            max_retained_bytes: 64 << 20,
            dissemination: Dissemination::Tree,
        }
    }
}
