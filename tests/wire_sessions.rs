//! Sessions between two in-memory ends, the test moving the bytes (no sockets): the
//! handshake in encrypted and plaintext mode, refusals, frames of every size through
//! arbitrary chunking, tampering, garbage at every stage, bounded buffers, and no
//! allocation per frame once warm.
//!
//! Every random choice comes from a seed printed on failure; proptest prints its own
//! minimal failing case.

use bhsync::sansio::SeededRng;
use bhsync::state::NodeId;
use bhsync::wire::{
    Features, FrameError, FrameHeader, FrameKind, GoAwayReason, Identity, Session, SessionEvent, WireConfig, WireError,
    DEFAULT_MAX_FRAME_LEN, HEADER_LEN,
};
use proptest::prelude::*;
use std::cell::Cell;
use std::collections::BTreeSet;
use std::sync::Arc;

// ---- a per-thread allocation counter, to show that warm frames do not allocate ----

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: forwarded unchanged to the system allocator that made `ptr`.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator that made `ptr`.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(|n| n.get())
}

// ---- helpers ----

fn identity(n: u8) -> Identity {
    Identity::from_secret([n; 32])
}

fn plaintext() -> WireConfig {
    WireConfig { plaintext: true, ..WireConfig::default() }
}

/// Moves everything `from` has to send into `to`, in one piece.
fn pump(from: &mut Session, to: &mut Session) -> Result<(), WireError> {
    let mut bytes = Vec::new();
    from.poll_transmit(&mut bytes);
    to.handle_bytes(&bytes)
}

/// Runs the three handshake messages; returns the two ends' results.
fn try_handshake(a: &mut Session, b: &mut Session) -> (Result<(), WireError>, Result<(), WireError>) {
    if let Err(e) = pump(a, b) {
        // The responder refused msg1 but may have queued msg2 to tell the initiator why.
        return (pump(b, a), Err(e));
    }
    if let Err(e) = pump(b, a) {
        return (Err(e), Ok(()));
    }
    let b_result = pump(a, b);
    (Ok(()), b_result)
}

fn established_pair(a_cfg: &WireConfig, b_cfg: &WireConfig) -> (Session, Session) {
    let mut a = Session::initiator(&identity(1), a_cfg).unwrap();
    let mut b = Session::responder(&identity(2), b_cfg).unwrap();
    let (ra, rb) = try_handshake(&mut a, &mut b);
    ra.unwrap();
    rb.unwrap();
    assert!(a.is_established() && b.is_established());
    (a, b)
}

/// Delivers `bytes` to `to` in chunks drawn from `rng` (never more than the session
/// accepts), draining frames after each chunk as the engine does.
fn deliver_chunked(bytes: &[u8], to: &mut Session, rng: &mut SeededRng, max_chunk: usize) -> Vec<(FrameKind, Vec<u8>)> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let want = 1 + rng.below(max_chunk as u64) as usize;
        let take = want.min(to.receive_capacity()).min(bytes.len() - at);
        assert!(take > 0, "the session must always accept more bytes once drained");
        to.handle_bytes(&bytes[at..at + take]).unwrap();
        at += take;
        while let Some(frame) = to.next_frame() {
            let frame = frame.unwrap();
            frames.push((frame.kind, frame.payload.to_vec()));
        }
    }
    frames
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = SeededRng::new(seed);
    let mut bytes: Vec<u8> = (0..len.div_ceil(8)).flat_map(|_| rng.next_u64().to_le_bytes()).collect();
    bytes.truncate(len);
    bytes
}

// ---- the handshake ----

#[test]
fn an_encrypted_handshake_authenticates_both_ends() {
    let (mut a, mut b) = established_pair(&WireConfig::default(), &WireConfig::default());
    assert_eq!(a.peer(), Some(identity(2).node_id()));
    assert_eq!(b.peer(), Some(identity(1).node_id()));
    let Some(SessionEvent::Established { peer, negotiated }) = a.poll_event() else { panic!("no event") };
    assert_eq!(peer, identity(2).node_id());
    assert!(!negotiated.plaintext());
    assert_eq!(negotiated.features, Features::ZSTD);
    assert_eq!(negotiated.max_frame_len, DEFAULT_MAX_FRAME_LEN);
    assert!(matches!(b.poll_event(), Some(SessionEvent::Established { .. })));
    assert_eq!(a.poll_event(), None, "one event only");
}

#[test]
fn a_plaintext_handshake_is_still_authenticated_and_frames_travel_in_clear() {
    let (mut a, mut b) = established_pair(&plaintext(), &plaintext());
    assert!(a.negotiated().unwrap().plaintext() && b.negotiated().unwrap().plaintext());
    assert_eq!(b.peer(), Some(identity(1).node_id()));
    a.send_frame(FrameKind::Data, b"visible payload").unwrap();
    let mut wire = Vec::new();
    a.poll_transmit(&mut wire);
    assert_eq!(wire.len(), HEADER_LEN + 15, "no Noise framing, no tag");
    assert!(wire.windows(15).any(|w| w == b"visible payload"));
    b.handle_bytes(&wire).unwrap();
    assert_eq!(b.next_frame().unwrap().unwrap().payload, b"visible payload");
}

#[test]
fn encrypted_frames_do_not_show_their_payload() {
    let (mut a, mut b) = established_pair(&WireConfig::default(), &WireConfig::default());
    a.send_frame(FrameKind::Data, b"secret payload!").unwrap();
    let mut wire = Vec::new();
    a.poll_transmit(&mut wire);
    assert!(!wire.windows(15).any(|w| w == b"secret payload!"));
    b.handle_bytes(&wire).unwrap();
    assert_eq!(b.next_frame().unwrap().unwrap().payload, b"secret payload!");
}

#[test]
fn a_key_outside_the_allowlist_is_refused() {
    let only_three: Arc<BTreeSet<NodeId>> = Arc::new([identity(3).node_id()].into_iter().collect());
    let strict = WireConfig { allowlist: Some(only_three), ..WireConfig::default() };
    // The responder refuses the initiator (it learns the key in msg3).
    let mut a = Session::initiator(&identity(1), &WireConfig::default()).unwrap();
    let mut b = Session::responder(&identity(2), &strict).unwrap();
    let (_, rb) = try_handshake(&mut a, &mut b);
    assert!(matches!(rb, Err(WireError::NotAllowed(peer)) if peer == identity(1).node_id()), "{rb:?}");
    assert!(!b.is_established() && b.peer().is_none());
    // The initiator refuses the responder (it learns the key in msg2).
    let mut a = Session::initiator(&identity(1), &strict).unwrap();
    let mut b = Session::responder(&identity(2), &WireConfig::default()).unwrap();
    let (ra, _) = try_handshake(&mut a, &mut b);
    assert!(matches!(ra, Err(WireError::NotAllowed(peer)) if peer == identity(2).node_id()), "{ra:?}");
}

#[test]
fn a_key_inside_the_allowlist_is_accepted() {
    let both: Arc<BTreeSet<NodeId>> = Arc::new([identity(1).node_id(), identity(2).node_id()].into_iter().collect());
    let cfg = WireConfig { allowlist: Some(both), ..WireConfig::default() };
    established_pair(&cfg, &cfg);
}

#[test]
fn disjoint_versions_are_refused_by_both_ends() {
    let old = WireConfig { version_min: 1, version_max: 1, ..WireConfig::default() };
    let new = WireConfig { version_min: 2, version_max: 3, ..WireConfig::default() };
    let mut a = Session::initiator(&identity(1), &old).unwrap();
    let mut b = Session::responder(&identity(2), &new).unwrap();
    let (ra, rb) = try_handshake(&mut a, &mut b);
    assert!(matches!(rb, Err(WireError::NoCommonVersion { ours: (2, 3), theirs: (1, 1) })), "{rb:?}");
    assert!(matches!(ra, Err(WireError::NoCommonVersion { ours: (1, 1), theirs: (2, 3) })), "{ra:?}");
}

#[test]
fn the_highest_common_version_is_chosen() {
    let a_cfg = WireConfig { version_min: 1, version_max: 4, ..WireConfig::default() };
    let b_cfg = WireConfig { version_min: 2, version_max: 3, ..WireConfig::default() };
    let (a, b) = established_pair(&a_cfg, &b_cfg);
    assert_eq!(a.negotiated().unwrap().version, 3);
    assert_eq!(b.negotiated().unwrap().version, 3);
}

#[test]
fn mismatched_plaintext_expectations_are_refused_by_both_ends() {
    for (a_cfg, b_cfg) in [(plaintext(), WireConfig::default()), (WireConfig::default(), plaintext())] {
        let mut a = Session::initiator(&identity(1), &a_cfg).unwrap();
        let mut b = Session::responder(&identity(2), &b_cfg).unwrap();
        let (ra, rb) = try_handshake(&mut a, &mut b);
        assert!(
            matches!(ra, Err(WireError::TransportMismatch { ours_plaintext }) if ours_plaintext == a_cfg.plaintext)
        );
        assert!(
            matches!(rb, Err(WireError::TransportMismatch { ours_plaintext }) if ours_plaintext == b_cfg.plaintext)
        );
    }
}

#[test]
fn dialling_ourselves_is_refused() {
    let mut a = Session::initiator(&identity(1), &WireConfig::default()).unwrap();
    let mut b = Session::responder(&identity(1), &WireConfig::default()).unwrap();
    let (ra, _) = try_handshake(&mut a, &mut b);
    assert!(matches!(ra, Err(WireError::SelfConnection)), "{ra:?}");
}

#[test]
fn dialling_one_node_and_reaching_another_is_refused() {
    let mut a = Session::initiator_to(&identity(1), &WireConfig::default(), identity(9).node_id()).unwrap();
    let mut b = Session::responder(&identity(2), &WireConfig::default()).unwrap();
    let (ra, _) = try_handshake(&mut a, &mut b);
    assert!(matches!(ra, Err(WireError::UnexpectedPeer { .. })), "{ra:?}");
}

#[test]
fn garbage_before_the_handshake_is_a_typed_error() {
    let mut b = Session::responder(&identity(2), &WireConfig::default()).unwrap();
    let err = b.handle_bytes(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n").unwrap_err();
    assert!(matches!(err, WireError::HandshakeTooLarge), "{err:?}");
    let mut b = Session::responder(&identity(2), &WireConfig::default()).unwrap();
    let mut garbage = vec![0, 60];
    garbage.extend_from_slice(&pattern(60, 7));
    let err = b.handle_bytes(&garbage).unwrap_err();
    assert!(matches!(err, WireError::BadHello(_) | WireError::Handshake(_)), "{err:?}");
    assert!(matches!(b.handle_bytes(b"more"), Err(WireError::Closed)), "a failed session stays closed");
}

#[test]
fn frames_cannot_be_sent_before_the_handshake() {
    let mut a = Session::initiator(&identity(1), &WireConfig::default()).unwrap();
    assert!(matches!(a.send_frame(FrameKind::Data, b"early"), Err(WireError::NotEstablished)));
}

// ---- frames ----

const SMALL_SIZES: [usize; 4] = [0, 1, 65_535, 1 << 20];
const LARGEST: [usize; 1] = [DEFAULT_MAX_FRAME_LEN as usize];

fn round_trip_sizes(cfg: &WireConfig, sizes: &[usize], seed: u64) {
    let (mut a, mut b) = established_pair(cfg, cfg);
    let mut rng = SeededRng::new(seed);
    for (i, &size) in sizes.iter().enumerate() {
        let payload = pattern(size, seed + i as u64);
        a.send_frame(FrameKind::Data, &payload).unwrap();
        let mut wire = Vec::new();
        a.poll_transmit(&mut wire);
        let frames = deliver_chunked(&wire, &mut b, &mut rng, 200_000);
        assert_eq!(frames.len(), 1, "size {size}, seed {seed}");
        assert!(frames[0].0 == FrameKind::Data && frames[0].1 == payload, "size {size}, seed {seed}");
        assert!(b.buffered_bytes() < HEADER_LEN + 65_537, "drained: at most a partial message remains");
    }
}

// The 4 MiB frame has its own test: ChaCha20-Poly1305 is slow in debug builds, and two
// tests run in parallel.
#[test]
fn frames_up_to_1_mib_round_trip_encrypted_through_random_chunking() {
    round_trip_sizes(&WireConfig::default(), &SMALL_SIZES, 11);
}

#[test]
fn a_4_mib_frame_round_trips_encrypted_through_random_chunking() {
    round_trip_sizes(&WireConfig::default(), &LARGEST, 13);
}

#[test]
fn frames_of_every_size_round_trip_in_plaintext_through_random_chunking() {
    round_trip_sizes(&plaintext(), &[SMALL_SIZES.as_slice(), &LARGEST].concat(), 12);
}

#[test]
fn control_frames_round_trip() {
    let (mut a, mut b) = established_pair(&WireConfig::default(), &WireConfig::default());
    a.send_frame(FrameKind::Ping, &42u64.to_le_bytes()).unwrap();
    a.send_frame(FrameKind::Pong, &[]).unwrap();
    a.send_goaway(GoAwayReason::Shutdown).unwrap();
    pump(&mut a, &mut b).unwrap();
    let ping = b.next_frame().unwrap().unwrap();
    assert_eq!((ping.kind, ping.payload), (FrameKind::Ping, &42u64.to_le_bytes()[..]));
    assert_eq!(b.next_frame().unwrap().unwrap().kind, FrameKind::Pong);
    assert_eq!(b.next_frame().unwrap().unwrap().goaway_reason(), Some(GoAwayReason::Shutdown));
    assert!(b.next_frame().is_none());
}

#[test]
fn frames_flow_both_ways() {
    let (mut a, mut b) = established_pair(&WireConfig::default(), &WireConfig::default());
    b.send_frame(FrameKind::Data, b"from the responder").unwrap();
    pump(&mut b, &mut a).unwrap();
    assert_eq!(a.next_frame().unwrap().unwrap().payload, b"from the responder");
}

#[test]
fn a_frame_larger_than_negotiated_is_refused_by_the_sender() {
    let small = WireConfig { max_frame_len: 1000, ..WireConfig::default() };
    let (mut a, _b) = established_pair(&WireConfig::default(), &small);
    assert_eq!(a.negotiated().unwrap().max_frame_len, 1000);
    let err = a.send_frame(FrameKind::Data, &[0; 1001]).unwrap_err();
    assert!(matches!(err, WireError::Frame(FrameError::TooLong { len: 1001, max: 1000 })), "{err:?}");
}

#[test]
fn tampered_ciphertext_is_refused() {
    let (mut a, mut b) = established_pair(&WireConfig::default(), &WireConfig::default());
    a.send_frame(FrameKind::Data, &pattern(500, 3)).unwrap();
    let mut wire = Vec::new();
    a.poll_transmit(&mut wire);
    wire[100] ^= 1;
    b.handle_bytes(&wire).unwrap();
    assert!(matches!(b.next_frame(), Some(Err(WireError::Decrypt))));
    assert!(b.is_failed());
    assert!(b.next_frame().is_none() && b.handle_bytes(&[1]).is_err());
}

#[test]
fn a_replayed_message_is_refused() {
    let (mut a, mut b) = established_pair(&WireConfig::default(), &WireConfig::default());
    a.send_frame(FrameKind::Data, b"once").unwrap();
    let mut wire = Vec::new();
    a.poll_transmit(&mut wire);
    b.handle_bytes(&wire).unwrap();
    assert!(b.next_frame().unwrap().is_ok());
    b.handle_bytes(&wire).unwrap();
    assert!(matches!(b.next_frame(), Some(Err(WireError::Decrypt))), "the nonce has moved on");
}

#[test]
fn a_header_announcing_4_gib_is_an_error_without_allocation() {
    let (_a, mut b) = established_pair(&plaintext(), &plaintext());
    let mut header = FrameHeader::new(FrameKind::Data, 0, 0).as_bytes().to_owned();
    header[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    b.handle_bytes(&header).unwrap();
    let before = allocations();
    let result = b.next_frame();
    assert_eq!(allocations(), before, "refused before any allocation");
    assert!(matches!(result, Some(Err(WireError::Frame(FrameError::TooLong { len: u32::MAX, .. })))), "{result:?}");
    assert!(b.buffered_bytes() <= HEADER_LEN);
}

#[test]
fn the_receive_buffer_is_bounded_when_frames_are_not_drained() {
    let small = WireConfig { max_frame_len: 1 << 16, ..WireConfig::default() };
    let (mut a, mut b) = established_pair(&small, &small);
    let limit = b.receive_capacity();
    assert!(limit < (1 << 16) + 3 * 65_537, "one frame and two messages: {limit}");
    for _ in 0..8 {
        a.send_frame(FrameKind::Data, &[5; 1 << 15]).unwrap();
    }
    let mut wire = Vec::new();
    a.poll_transmit(&mut wire);
    assert!(wire.len() > limit);
    assert!(matches!(b.handle_bytes(&wire), Err(WireError::ReceiveBufferFull)));
}

#[test]
fn warm_frames_cost_no_allocation() {
    let (mut a, mut b) = established_pair(&WireConfig::default(), &WireConfig::default());
    let payload = pattern(1000, 5);
    let mut wire = Vec::new();
    let mut step = |wire: &mut Vec<u8>| {
        for _ in 0..4 {
            a.send_frame(FrameKind::Data, &payload).unwrap();
        }
        a.poll_transmit(wire);
        b.handle_bytes(wire).unwrap();
        wire.clear();
        let mut got = 0;
        while let Some(frame) = b.next_frame() {
            assert_eq!(frame.unwrap().payload.len(), 1000);
            got += 1;
        }
        assert_eq!(got, 4);
    };
    for _ in 0..4 {
        step(&mut wire); // warm the buffers
    }
    let before = allocations();
    for _ in 0..100 {
        step(&mut wire);
    }
    assert_eq!(allocations(), before, "a warm session allocates nothing per frame");
}

// ---- properties ----

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn frames_round_trip_through_arbitrary_chunking(
        sizes in proptest::collection::vec(0usize..100_000, 1..5),
        chunk in 1usize..100_000,
        seed in any::<u64>(),
        plain in any::<bool>(),
    ) {
        let cfg = if plain { plaintext() } else { WireConfig::default() };
        let (mut a, mut b) = established_pair(&cfg, &cfg);
        let payloads: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &n)| pattern(n, seed ^ i as u64)).collect();
        for payload in &payloads {
            a.send_frame(FrameKind::Data, payload).unwrap();
        }
        let mut wire = Vec::new();
        a.poll_transmit(&mut wire);
        let frames = deliver_chunked(&wire, &mut b, &mut SeededRng::new(seed), chunk);
        let got: Vec<Vec<u8>> = frames.into_iter().map(|(_, p)| p).collect();
        prop_assert_eq!(got, payloads, "seed {}", seed);
    }

    #[test]
    fn the_handshake_survives_arbitrary_chunking(cuts in proptest::collection::vec(1usize..64, 1..8), plain in any::<bool>()) {
        let cfg = if plain { plaintext() } else { WireConfig::default() };
        let mut a = Session::initiator(&identity(1), &cfg).unwrap();
        let mut b = Session::responder(&identity(2), &cfg).unwrap();
        for _ in 0..3 {
            deliver_cut(&mut a, &mut b, &cuts);
            deliver_cut(&mut b, &mut a, &cuts);
        }
        prop_assert!(a.is_established() && b.is_established());
    }

    #[test]
    fn arbitrary_bytes_at_every_stage_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), stage in 0u8..5) {
        let mut target = session_at_stage(stage);
        let _ = target.handle_bytes(&bytes);
        let mut drained = 0;
        while let Some(frame) = target.next_frame() {
            drained += 1;
            if frame.is_err() || drained > 1000 { break; }
        }
        let mut out = Vec::new();
        target.poll_transmit(&mut out);
        prop_assert!(target.buffered_bytes() <= bytes.len() + 4096);
    }
}

/// Moves `from`'s bytes to `to`, cut into pieces of the given sizes (cycled).
fn deliver_cut(from: &mut Session, to: &mut Session, cuts: &[usize]) {
    let mut wire = Vec::new();
    from.poll_transmit(&mut wire);
    let mut rest = &wire[..];
    for &cut in cuts.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (head, tail) = rest.split_at(cut.min(rest.len()));
        to.handle_bytes(head).unwrap();
        rest = tail;
    }
}

/// A session waiting at one stage: 0 fresh responder, 1 initiator after msg1, 2
/// responder after msg2, 3 established (encrypted), 4 established (plaintext).
fn session_at_stage(stage: u8) -> Session {
    let cfg = if stage == 4 { plaintext() } else { WireConfig::default() };
    let mut a = Session::initiator(&identity(1), &cfg).unwrap();
    let mut b = Session::responder(&identity(2), &cfg).unwrap();
    match stage {
        0 => b,
        1 => a,
        2 => {
            pump(&mut a, &mut b).unwrap();
            b
        }
        _ => established_pair(&cfg, &cfg).1,
    }
}

#[test]
fn sessions_and_identities_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<Session>();
    assert_send::<Identity>();
    assert_send::<WireError>();
}
