//! One Raft group driven by hand (issue 8, ADR 070): refusals on the minority side,
//! messages from non-voters, restart from the journal after compaction, and changes
//! of the voter set. Deterministic; messages are delivered at once, in order.

use std::collections::BTreeMap;

use bhsync::consensus::sim::SharedJournal;
use bhsync::consensus::{GroupConfig, GroupEvent, MessageFault, Outcome, RaftGroup, Recovered, Refusal};
use bhsync::sansio::SeededRng;

struct Net {
    groups: BTreeMap<u64, RaftGroup>,
    journals: BTreeMap<u64, SharedJournal>,
    cut: Vec<u64>,
    now: u64,
    events: Vec<(u64, GroupEvent)>,
    outcomes: Vec<(u64, u64, Outcome)>,
}

fn config(id: u64, voters: &[u64]) -> GroupConfig {
    GroupConfig {
        id,
        voters: voters.to_vec(),
        tick_ms: 10,
        election_ticks: 10,
        heartbeat_ticks: 2,
        request_timeout_ms: 300,
        snapshot_every: 20,
        ..GroupConfig::default()
    }
}

impl Net {
    fn new(voters: &[u64]) -> Net {
        let mut net = Net {
            groups: BTreeMap::new(),
            journals: BTreeMap::new(),
            cut: Vec::new(),
            now: 0,
            events: Vec::new(),
            outcomes: Vec::new(),
        };
        for &id in voters {
            net.open(config(id, voters));
        }
        net
    }

    fn open(&mut self, config: GroupConfig) {
        let id = config.id;
        let journal = self.journals.entry(id).or_default().clone();
        let recovered: Recovered = journal.0.lock().unwrap().durable.clone();
        let group = RaftGroup::open(config, Box::new(journal), &recovered, SeededRng::new(id), self.now).unwrap();
        self.groups.insert(id, group);
    }

    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.now += 1;
            let ids: Vec<u64> = self.groups.keys().copied().collect();
            for id in &ids {
                self.groups.get_mut(id).unwrap().handle_timeout(self.now);
            }
            self.deliver();
        }
    }

    fn deliver(&mut self) {
        loop {
            let mut moved = false;
            let ids: Vec<u64> = self.groups.keys().copied().collect();
            for from in ids {
                let mut out = Vec::new();
                let group = self.groups.get_mut(&from).unwrap();
                while let Some(t) = group.poll_transmit() {
                    out.push(t);
                }
                while let Some(e) = group.poll_event() {
                    self.events.push((from, e));
                }
                while let Some((ticket, outcome)) = group.poll_outcome() {
                    self.outcomes.push((from, ticket, outcome));
                }
                for (to, bytes) in out {
                    moved = true;
                    if self.cut.contains(&from) != self.cut.contains(&to) {
                        continue;
                    }
                    if let Some(peer) = self.groups.get_mut(&to) {
                        peer.handle_message(self.now, from, &bytes).unwrap();
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn leader(&self) -> Option<u64> {
        self.groups.values().find(|g| g.is_leader()).map(|g| g.id())
    }

    fn write(&mut self, key: &[u8], value: &[u8]) -> Outcome {
        let leader = self.leader().expect("a leader");
        let ticket = self.groups.get_mut(&leader).unwrap().propose_put(self.now, key, value).unwrap();
        self.wait(leader, ticket)
    }

    fn wait(&mut self, member: u64, ticket: u64) -> Outcome {
        for _ in 0..1_000 {
            self.deliver();
            if let Some(at) = self.outcomes.iter().position(|(m, t, _)| *m == member && *t == ticket) {
                return self.outcomes.remove(at).2;
            }
            self.run(1);
        }
        panic!("ticket {ticket} at {member} never answered");
    }
}

#[test]
fn the_minority_side_answers_at_once_and_the_majority_goes_on() {
    let mut net = Net::new(&[1, 2, 3, 4, 5]);
    net.run(500);
    let old = net.leader().expect("a leader within 500 ms");
    assert!(matches!(net.write(b"k", b"1"), Outcome::Written { .. }));
    // Cut the leader and one follower off.
    let follower = (1..=5).find(|&id| id != old).unwrap();
    net.cut = vec![old, follower];
    net.run(400);
    let new = net.leader().filter(|&l| l != old && l != follower);
    let new = new
        .or_else(|| net.groups.values().filter(|g| g.is_leader() && !net.cut.contains(&g.id())).map(|g| g.id()).next());
    let new = new.expect("the majority elects a leader");
    for &id in &[old, follower] {
        let group = net.groups.get_mut(&id).unwrap();
        let refusal = group.propose_put(net.now, b"k", b"2").unwrap_err();
        assert!(matches!(refusal, Refusal::ReadOnly | Refusal::NotLeader { .. }), "{id}: {refusal:?}");
        assert!(group.read(net.now, b"k").is_err());
        assert_eq!(group.get_stale(b"k"), Some(&b"1"[..]), "stale reads still work");
    }
    assert!(net.events.iter().any(|(id, e)| *id == old && *e == GroupEvent::Quorum { reachable: false }));
    // A majority follower redirects to the new leader.
    let other = (1..=5).find(|id| ![old, follower, new].contains(id)).unwrap();
    let refusal = net.groups.get_mut(&other).unwrap().propose_put(net.now, b"k", b"3").unwrap_err();
    assert_eq!(refusal, Refusal::NotLeader { leader: new });
    assert!(matches!(net.write(b"k", b"3"), Outcome::Written { .. }));
    let ticket = net.groups.get_mut(&new).unwrap().read(net.now, b"k").unwrap();
    assert_eq!(net.wait(new, ticket), Outcome::Read { value: Some(b"3".to_vec()) });
    // Heal: the old side catches up.
    net.cut.clear();
    net.run(500);
    assert!(net.groups.values().all(|g| g.get_stale(b"k") == Some(&b"3"[..])));
}

#[test]
fn messages_from_non_voters_and_garbage_are_refused() {
    let mut net = Net::new(&[1, 2, 3]);
    net.run(300);
    let group = net.groups.get_mut(&1).unwrap();
    assert_eq!(group.handle_message(net.now, 9, b"\x08\x01"), Err(MessageFault::NotAVoter));
    assert_eq!(group.handle_message(net.now, 2, b"\xff\xff\xff"), Err(MessageFault::Malformed));
    assert_eq!(group.stats().messages_refused, 2);
}

#[test]
fn a_member_restarts_from_its_compacted_journal() {
    let mut net = Net::new(&[1, 2, 3]);
    net.run(300);
    for i in 0..50u32 {
        assert!(matches!(net.write(&i.to_le_bytes(), b"v"), Outcome::Written { .. }));
    }
    net.run(100);
    let victim = net.groups.keys().copied().find(|&id| Some(id) != net.leader()).unwrap();
    assert!(net.journals[&victim].0.lock().unwrap().compactions > 0, "the journal was compacted");
    let before = net.groups[&victim].registers().clone();
    net.groups.remove(&victim);
    net.open(config(victim, &[1, 2, 3]));
    // At open: the image's snapshot and the entries up to the journaled commit index
    // (the commit index is not journaled on every change, so the rest is applied once
    // the leader's next message tells it).
    let reopened = &net.groups[&victim];
    assert!(reopened.applied_index() >= 20 && !reopened.registers().is_empty(), "state rebuilt at open");
    net.run(200);
    assert_eq!(net.groups[&victim].registers(), &before, "caught up after reopening");
}

#[test]
fn voters_are_removed_and_added_one_at_a_time() {
    let mut net = Net::new(&[1, 2, 3]);
    net.run(300);
    assert!(matches!(net.write(b"a", b"1"), Outcome::Written { .. }));
    let leader = net.leader().unwrap();
    let removed = (1..=3).find(|&id| id != leader).unwrap();
    let ticket = net.groups.get_mut(&leader).unwrap().propose_voter_change(net.now, removed, false).unwrap();
    let Outcome::VotersChanged { voters } = net.wait(leader, ticket) else { panic!("remove failed") };
    assert!(!voters.contains(&removed));
    net.groups.remove(&removed);
    // A new member joins with no configuration and learns the group from the leader.
    let mut join = config(4, &[1, 2, 3, 4]);
    join.join = true;
    net.open(join);
    let leader = net.leader().unwrap();
    let ticket = net.groups.get_mut(&leader).unwrap().propose_voter_change(net.now, 4, true).unwrap();
    let Outcome::VotersChanged { voters } = net.wait(leader, ticket) else { panic!("add failed") };
    assert!(voters.contains(&4));
    net.run(300);
    assert_eq!(net.groups[&4].get_stale(b"a"), Some(&b"1"[..]));
    assert!(matches!(net.write(b"b", b"2"), Outcome::Written { .. }));
}

#[test]
fn a_group_recovers_from_the_storage_log_after_compactions() {
    use bhsync::node::strong::open_log_journal;
    let dir = std::env::temp_dir().join(format!("bhsync-consensus-journal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let open = |now: u64| {
        let (journal, recovered) = open_log_journal(&dir).expect("log opens");
        RaftGroup::open(config(1, &[1]), journal, &recovered, SeededRng::new(now), now).expect("group opens")
    };
    let mut group = open(0);
    let mut now = 0;
    while !group.is_leader() {
        now += 10;
        group.handle_timeout(now);
    }
    for i in 0..70u32 {
        let ticket = group.propose_put(now, &i.to_le_bytes(), &i.to_be_bytes()).expect("accepted");
        while group.poll_transmit().is_some() {}
        let outcome = group.poll_outcome();
        assert!(matches!(outcome, Some((t, Outcome::Written { .. })) if t == ticket), "{outcome:?}");
    }
    let before = group.registers().clone();
    drop(group);
    // Reopen: the log's snapshot (the last image) and the records after it.
    let group = open(now);
    assert!(group.applied_index() >= 60, "applied {} at open", group.applied_index());
    let mut group = group;
    while !group.is_leader() {
        now += 10;
        group.handle_timeout(now);
    }
    while group.poll_transmit().is_some() {}
    assert_eq!(group.registers(), &before, "every committed write is back");
    drop(group);
    let _ = std::fs::remove_dir_all(&dir);
}
