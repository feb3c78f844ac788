//! Strong categories inside node cores (issue 8, ADR 070), in virtual time: three
//! cores in a full mesh carry a strong category's Raft group on the `Raft` channel
//! beside an eventual category. Writes commit through the leader and land in every
//! replica under the same version (equal roots); a follower refuses with the leader's
//! id; a partitioned leader answers at once and reports it; messages from non-voters
//! and eventual traffic naming the strong category are faults.

use bhsync::consensus::GroupConfig;
use bhsync::node::StrongAnswer;
use bhsync::node::message::{encode_push, encode_raft, BatchWriter};
use bhsync::node::{CoreConfig, NodeCore, NodeError, NodeEvent, PeerFault};
use bhsync::sansio::SeededRng;
use bhsync::state::{CategorySpec, Digest, Mode, NodeId, Version};

const STRONG: &str = "ledger";

fn node_id(index: usize) -> NodeId {
    NodeId([index as u8 + 1; 32])
}

fn config() -> CoreConfig {
    CoreConfig {
        categories: vec![
            (STRONG.into(), CategorySpec { mode: Mode::Strong, ..CategorySpec::default() }),
            ("notes".into(), CategorySpec::default()),
        ],
        strong_voters: (0..3).map(node_id).collect(),
        strong_group: GroupConfig {
            tick_ms: 10,
            election_ticks: 10,
            request_timeout_ms: 500,
            ..GroupConfig::default()
        },
        anti_entropy_interval_ms: 500,
        ..CoreConfig::default()
    }
}

struct Net {
    cores: Vec<NodeCore>,
    now: u64,
    cut: Vec<usize>,
    events: Vec<(usize, NodeEvent)>,
}

impl Net {
    fn new(seed: u64) -> Net {
        let mut rng = SeededRng::new(seed);
        let cores: Vec<NodeCore> =
            (0..3).map(|i| NodeCore::new(config(), node_id(i), rng.fork(), 0).expect("core")).collect();
        let mut net = Net { cores, now: 0, cut: Vec::new(), events: Vec::new() };
        for a in 0..3 {
            for b in 0..3 {
                if a != b {
                    net.cores[a].handle_peer_up(0, node_id(b));
                }
            }
        }
        net
    }

    fn step(&mut self) {
        self.now += 1;
        for core in &mut self.cores {
            if core.poll_timeout().is_some_and(|t| t <= self.now) {
                core.handle_timeout(self.now);
            }
        }
        let mut moved = true;
        while moved {
            moved = false;
            for from in 0..3 {
                while let Some(t) = self.cores[from].poll_transmit() {
                    moved = true;
                    let to = (0..3).find(|&i| node_id(i) == t.to).expect("a known peer");
                    if self.cut.contains(&from) != self.cut.contains(&to) {
                        continue;
                    }
                    let fault = self.cores[to].handle_message(self.now, node_id(from), &t.bytes);
                    assert_eq!(fault, Ok(()), "an honest message was refused");
                }
            }
        }
        for (i, core) in self.cores.iter_mut().enumerate() {
            while let Some(event) = core.poll_event() {
                self.events.push((i, event));
            }
        }
    }

    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.step();
        }
    }

    fn leader(&self) -> usize {
        let id = self.cores[0].strong_leader(STRONG).expect("a leader");
        (0..3).find(|&i| node_id(i) == id).unwrap()
    }

    fn answer(&mut self, at: usize, ticket: u64) -> Result<StrongAnswer, NodeError> {
        for _ in 0..2_000 {
            self.step();
            while let Some((category, t, result)) = self.cores[at].poll_strong_outcome() {
                if category == STRONG && t == ticket {
                    return result;
                }
            }
        }
        panic!("ticket {ticket} never answered");
    }
}

#[test]
fn writes_commit_through_the_leader_into_every_replica() {
    let mut net = Net::new(1);
    net.run(400);
    let leader = net.leader();
    let now = net.now;
    let ticket = net.cores[leader].strong_put(now, STRONG, b"k", b"v1").expect("accepted");
    let Ok(StrongAnswer::Written(version)) = net.answer(leader, ticket) else { panic!("not written") };
    assert_eq!((version.hlc, version.origin), (version.counter, node_id(leader)));
    net.run(100);
    let roots: Vec<Digest> = net.cores.iter().map(|c| c.category_root(STRONG).unwrap()).collect();
    assert!(roots.windows(2).all(|w| w[0] == w[1]), "strong roots differ: {roots:?}");
    for core in &net.cores {
        assert_eq!(core.get(STRONG, b"k").map(|e| e.value.to_vec()), Some(b"v1".to_vec()));
    }
    let follower = (leader + 1) % 3;
    let now = net.now;
    assert_eq!(
        net.cores[follower].strong_put(now, STRONG, b"k", b"v2"),
        Err(NodeError::NotLeader { leader: Some(node_id(leader)) })
    );
    assert!(matches!(net.cores[follower].put(now, STRONG, b"k", b"v2"), Err(NodeError::WrongMode(_))));
    let ticket = net.cores[leader].strong_read(now, STRONG, b"k").expect("read accepted");
    assert_eq!(net.answer(leader, ticket), Ok(StrongAnswer::Read(Some(b"v1".to_vec()))));
    // The eventual category still gossips as before.
    net.cores[follower].put(net.now, "notes", b"n", b"1").expect("eventual write");
    net.run(50);
    assert!(net.cores.iter().all(|c| c.get("notes", b"n").is_some()));
}

#[test]
fn a_partitioned_leader_answers_at_once_and_reports_it() {
    let mut net = Net::new(2);
    net.run(400);
    let old = net.leader();
    net.cut = vec![old];
    net.run(300);
    let now = net.now;
    let refusal = net.cores[old].strong_put(now, STRONG, b"k", b"x").unwrap_err();
    assert!(matches!(refusal, NodeError::ReadOnly | NodeError::NotLeader { .. }), "{refusal:?}");
    assert!(net.cores[old].strong_read(now, STRONG, b"k").is_err());
    let reported = net.events.iter().any(|(i, e)| {
        *i == old && matches!(e, NodeEvent::Partition { category, reachable: false } if category == STRONG)
    });
    assert!(reported, "the cut-off leader did not report the partition");
    // The majority side has a new leader that commits.
    let new = (0..3).find(|&i| i != old && net.cores[i].strong_group(STRONG).unwrap().is_leader()).expect("new leader");
    let ticket = net.cores[new].strong_put(now, STRONG, b"k", b"y").expect("accepted");
    assert!(matches!(net.answer(new, ticket), Ok(StrongAnswer::Written(_))));
    net.cut.clear();
    net.run(300);
    assert_eq!(net.cores[old].get(STRONG, b"k").map(|e| e.value.to_vec()), Some(b"y".to_vec()));
}

#[test]
fn raft_from_a_non_voter_and_gossip_of_a_strong_category_are_faults() {
    let mut net = Net::new(3);
    net.run(100);
    let stranger = NodeId([9; 32]);
    net.cores[0].handle_peer_up(net.now, stranger);
    let bytes = encode_raft(STRONG, b"\x08\x01");
    assert!(matches!(net.cores[0].handle_message(net.now, stranger, &bytes), Err(PeerFault::Protocol(_))));
    let mut writer = BatchWriter::new();
    let version = Version { hlc: 1, origin: node_id(1), counter: 1, tombstone: false };
    writer.push(b"k", b"forged", &version, &Digest::EMPTY);
    let (push, _) = encode_push(0, STRONG, writer, false);
    assert!(matches!(net.cores[0].handle_message(net.now, node_id(1), &push), Err(PeerFault::Protocol(_))));
    assert!(net.cores[0].get(STRONG, b"k").is_none(), "nothing of it was applied");
}
