//! Chain behaviour: validation reasons, fork choice, sync with honest and lying peers,
//! persistence through the log.

use ed25519_dalek::SigningKey;

use super::*;
use crate::state::NodeId;

const NOW_MS: u64 = 1_000_000_000;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn genesis() -> Block {
    Block::create(None, vec![], 0, &key(0))
}

fn next(parent: &BlockHeader, tag: u8) -> Block {
    let transactions = vec![vec![tag, parent.height as u8], vec![tag; 40]];
    Block::create(Some(parent), transactions, parent.timestamp_ms + 1_000, &key(tag))
}

/// A chain of `len` blocks after genesis; `tag` tells branches apart.
fn grow(chain: &mut Chain, len: u64, tag: u8) {
    for _ in 0..len {
        let block = next(&chain.head().header, tag);
        chain.insert(block, NOW_MS).unwrap();
    }
}

fn chain_of(len: u64) -> Chain {
    let mut chain = Chain::new(genesis(), ChainRules::default());
    grow(&mut chain, len, 1);
    chain
}

#[test]
fn invalid_blocks_are_rejected_with_their_reason() {
    let mut chain = chain_of(3);
    let head = chain.head().header;
    let mut bad_root = next(&head, 2);
    bad_root.transactions.push(b"smuggled".to_vec());
    assert_eq!(chain.insert(bad_root, NOW_MS), Err(BlockError::BadTransactionRoot));
    let mut bad_signature = next(&head, 2);
    bad_signature.header.signature[5] ^= 1;
    assert_eq!(chain.insert(bad_signature, NOW_MS), Err(BlockError::BadSignature));
    let mut stranger = next(&head, 2);
    stranger.header.prev_id = [9; 32];
    assert_eq!(chain.insert(stranger, NOW_MS), Err(BlockError::UnknownParent { prev_id: [9; 32] }));
    let mut tall = head;
    tall.height += 5;
    let wrong_height = Block::create(Some(&tall), vec![], head.timestamp_ms + 1, &key(2));
    assert!(matches!(chain.insert(wrong_height, NOW_MS), Err(BlockError::UnknownParent { .. })));
    let early = Block::create(Some(&head), vec![], head.timestamp_ms - 1, &key(2));
    assert_eq!(chain.insert(early, NOW_MS), Err(BlockError::TimestampBeforeParent));
    let late = Block::create(Some(&head), vec![], NOW_MS + 60_000, &key(2));
    assert_eq!(chain.insert(late, NOW_MS), Err(BlockError::TimestampInFuture));
    assert_eq!(chain.tip_height(), 3, "nothing invalid was stored");
}

#[test]
fn an_unknown_proposer_is_rejected() {
    let rules =
        ChainRules { proposers: Some([NodeId(key(1).verifying_key().to_bytes())].into()), ..Default::default() };
    let mut chain = Chain::new(genesis(), rules);
    let head = chain.head().header;
    assert!(chain.insert(next(&head, 1), NOW_MS).is_ok());
    let outsider = next(&chain.head().header, 2);
    assert!(matches!(chain.insert(outsider, NOW_MS), Err(BlockError::UnknownProposer { .. })));
}

#[test]
fn the_highest_branch_wins_and_ties_go_to_the_lowest_id() {
    let mut chain = chain_of(5);
    let fork_point = chain.block_by_height(3).unwrap().header;
    let side = next(&fork_point, 7);
    assert_eq!(chain.insert(side.clone(), NOW_MS), Ok(InsertOutcome::SideBranch));
    let side2 = next(&side.header, 7);
    let tied = chain.insert(side2.clone(), NOW_MS).unwrap();
    let main_tip = chain.id_at(5).unwrap();
    let expected_tip =
        if side2.id() < chain.block_by_height(5).map_or(main_tip, |b| b.id()) { side2.id() } else { main_tip };
    assert_eq!(chain.id_at(5), Some(expected_tip), "a tie goes to the lowest id ({tied:?})");
    let side3 = next(&side2.header, 7);
    let outcome = chain.insert(side3.clone(), NOW_MS).unwrap();
    assert!(matches!(outcome, InsertOutcome::Reorganized { fork_height: 3 } | InsertOutcome::Extended));
    assert_eq!((chain.tip_height(), chain.head().id()), (6, side3.id()));
    assert_eq!(chain.main_height_of(&side.id()), Some(4));
}

/// Runs a session against responders until nothing is left to send; returns the
/// messages each peer received. `tamper` may alter a peer's replies.
fn run_sync(
    local: &mut Chain,
    peers: &[(NodeId, &Chain)],
    tamper: impl Fn(NodeId, &mut SyncMessage),
) -> (SyncSession, Vec<(NodeId, SyncMessage)>) {
    run_sync_with(SyncConfig::default(), local, peers, tamper)
}

fn run_sync_with(
    config: SyncConfig,
    local: &mut Chain,
    peers: &[(NodeId, &Chain)],
    tamper: impl Fn(NodeId, &mut SyncMessage),
) -> (SyncSession, Vec<(NodeId, SyncMessage)>) {
    let mut session = SyncSession::new(config, peers.iter().map(|(id, _)| *id).collect());
    session.start(local);
    let mut sent = Vec::new();
    while let Some((to, request)) = session.poll_transmit() {
        assert!(sent.len() < 10_000, "the session keeps asking: a loop");
        sent.push((to, request.clone()));
        let (_, store) = peers.iter().find(|(id, _)| *id == to).expect("a known peer");
        let Ok(Some(mut reply)) = respond(*store, &request) else { continue };
        tamper(to, &mut reply);
        session.handle_bytes(local, NOW_MS, to, &reply.to_bytes());
    }
    (session, sent)
}

fn events(session: &mut SyncSession) -> Vec<SyncEvent> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

#[test]
fn a_fresh_node_syncs_the_whole_chain_from_several_peers() {
    let remote = chain_of(700);
    let mut local = Chain::new(genesis(), ChainRules::default());
    let peers = [(NodeId([1; 32]), &remote), (NodeId([2; 32]), &remote), (NodeId([3; 32]), &remote)];
    let (mut session, sent) = run_sync(&mut local, &peers, |_, _| {});
    assert_eq!(local.head().id(), remote.head().id());
    assert!(events(&mut session).contains(&SyncEvent::Done { height: 700 }));
    for (peer, _) in peers {
        assert!(sent.iter().any(|(to, m)| *to == peer && matches!(m, SyncMessage::GetBlocks { .. })), "{peer:?} used");
    }
    let batches = sent.iter().filter(|(_, m)| matches!(m, SyncMessage::GetBlocks { .. })).count();
    assert_eq!(batches, 700usize.div_ceil(128), "bounded batches, none repeated");
}

#[test]
fn a_forked_node_finds_the_ancestor_in_one_round_trip_and_reorganizes() {
    let remote = chain_of(300);
    let mut local = chain_of(250);
    grow(&mut local, 0, 1);
    // Local forks 30 blocks below its head: keep 220 shared blocks, then its own 30.
    let mut forked = Chain::new(genesis(), ChainRules::default());
    for height in 1..=220 {
        forked.insert(remote.block_by_height(height).unwrap().clone(), NOW_MS).unwrap();
    }
    grow(&mut forked, 30, 9);
    drop(local);
    let (mut session, sent) = run_sync(&mut forked, &[(NodeId([1; 32]), &remote)], |_, _| {});
    let ancestor = events(&mut session).into_iter().find_map(|e| match e {
        SyncEvent::AncestorFound { height } => Some(height),
        _ => None,
    });
    let overshoot = 220 - ancestor.expect("ancestor found");
    assert!(overshoot <= 2 * 30, "overshoot {overshoot} for depth 30");
    assert_eq!(sent.iter().filter(|(_, m)| matches!(m, SyncMessage::GetHeaders { .. })).count(), 1);
    assert_eq!(forked.head().id(), remote.head().id(), "the longer chain wins");
}

#[test]
fn a_peer_sending_invalid_blocks_is_banned_and_others_finish_the_sync() {
    let remote = chain_of(400);
    let mut local = Chain::new(genesis(), ChainRules::default());
    let (liar, honest) = (NodeId([6; 32]), NodeId([7; 32]));
    let tamper = |peer: NodeId, reply: &mut SyncMessage| {
        if let (true, SyncMessage::Blocks { blocks, .. }) = (peer == liar, reply) {
            blocks.iter_mut().for_each(|b| b.transactions.push(b"forged".to_vec()));
        }
    };
    let (mut session, _) = run_sync(&mut local, &[(honest, &remote), (liar, &remote)], tamper);
    let events = events(&mut session);
    assert!(events.contains(&SyncEvent::Banned { peer: liar }), "{events:?}");
    let offence = Misbehaviour::InvalidBlock(BlockError::BadTransactionRoot);
    assert!(events.contains(&SyncEvent::Misbehaved { peer: liar, offence, score: 100 }));
    assert_eq!(session.scores().score(&honest), 0);
    assert_eq!(local.head().id(), remote.head().id());
}

#[test]
fn headers_that_do_not_connect_and_long_locators_are_misbehaviour() {
    let remote = chain_of(50);
    let mut local = Chain::new(genesis(), ChainRules::default());
    let peer = NodeId([4; 32]);
    let tamper = |_: NodeId, reply: &mut SyncMessage| {
        if let SyncMessage::Headers { headers, .. } = reply {
            headers.swap(3, 4);
        }
    };
    let (mut session, _) = run_sync(&mut local, &[(peer, &remote)], tamper);
    let offence = Misbehaviour::HeadersDoNotConnect;
    assert!(events(&mut session).contains(&SyncEvent::Misbehaved { peer, offence, score: 50 }));
    let long = SyncMessage::GetHeaders { locator: vec![[0; 32]; 10_000], headers_max: 1 };
    assert_eq!(respond(&remote, &long), Err(Misbehaviour::LocatorTooLong));
    let mut session = SyncSession::new(SyncConfig::default(), vec![peer]);
    session.handle_bytes(&mut local, NOW_MS, peer, &long.to_bytes());
    let malformed = Misbehaviour::Malformed(MessageError::LocatorTooLong { len: 10_000 });
    assert_eq!(session.poll_event(), Some(SyncEvent::Misbehaved { peer, offence: malformed, score: 20 }));
    assert_eq!(
        respond(&remote, &SyncMessage::GetBlocks { from: 0, count: 10_000 }),
        Err(Misbehaviour::RequestTooLarge)
    );
}

#[test]
fn a_chain_persisted_in_the_log_comes_back_after_reopen() {
    let dir = crate::storage::tests::TempDir::new("chain");
    let config = crate::storage::LogConfig::default();
    let mut chain = chain_of(0);
    {
        let (log, _) = crate::storage::Log::open(&dir.0, config.clone()).unwrap();
        grow(&mut chain, 40, 1);
        let side = next(&chain.block_by_height(38).unwrap().header, 5);
        chain.insert(side, NOW_MS).unwrap();
        chain.persist(&log).unwrap();
    }
    let (_, recovery) = crate::storage::Log::open(&dir.0, config).unwrap();
    let recovered = Chain::recover(genesis(), ChainRules::default(), &recovery).unwrap();
    assert_eq!((recovered.head().id(), recovered.len()), (chain.head().id(), chain.len()));
}

#[test]
fn a_long_branch_behind_a_longer_local_fork_is_fetched_over_several_header_rounds() {
    // Local: 100 shared blocks, then 200 of its own. Remote: the 100, then 300 others.
    // Rounds of 50 headers: the remote branch stays a side branch for the first rounds
    // (shorter than the local one), so each round must resume after the last header.
    let remote = chain_of(400);
    let mut local = Chain::new(genesis(), ChainRules::default());
    for height in 1..=100 {
        local.insert(remote.block_by_height(height).unwrap().clone(), NOW_MS).unwrap();
    }
    grow(&mut local, 200, 9);
    let config = SyncConfig { headers_per_request: 50, ..SyncConfig::default() };
    let (mut session, sent) = run_sync_with(config, &mut local, &[(NodeId([1; 32]), &remote)], |_, _| {});
    assert!(events(&mut session).contains(&SyncEvent::Done { height: 400 }));
    assert_eq!(local.head().id(), remote.head().id());
    let rounds = sent.iter().filter(|(_, m)| matches!(m, SyncMessage::GetHeaders { .. })).count();
    // 300 new headers, plus the locator's overshoot below the fork (< 200), in rounds
    // of 50, and a last short round.
    assert!((300 / 50 + 1..=500 / 50 + 1).contains(&rounds), "{rounds} header rounds");
}

#[test]
fn a_peer_serving_blocks_of_another_branch_is_bypassed_not_scored() {
    let remote = chain_of(300);
    let other = {
        let mut chain = Chain::new(genesis(), ChainRules::default());
        grow(&mut chain, 300, 3);
        chain
    };
    let mut local = Chain::new(genesis(), ChainRules::default());
    let (honest, swapper) = (NodeId([1; 32]), NodeId([2; 32]));
    let tamper = |peer: NodeId, reply: &mut SyncMessage| {
        if let (true, SyncMessage::Blocks { from, blocks }) = (peer == swapper, reply) {
            for (offset, block) in blocks.iter_mut().enumerate() {
                *block = other.block_by_height(*from + offset as u64).unwrap().clone();
            }
        }
    };
    let (mut session, _) = run_sync(&mut local, &[(honest, &remote), (swapper, &remote)], tamper);
    // Signed blocks of another branch are what an honest peer on that branch serves
    // when asked by height: it is asked no more, and not scored.
    assert!(!events(&mut session).iter().any(|e| matches!(e, SyncEvent::Misbehaved { .. })));
    assert_eq!(session.scores().score(&swapper), 0);
    assert_eq!(session.scores().score(&honest), 0);
    assert_eq!(local.head().id(), remote.head().id());
}
