//! A configuration the running node cannot honour is refused with an error that names
//! it, never run as something else (issue 16: "never a silent downgrade"); one it can
//! honour opens.

use bhsync::node::{Node, NodeConfig, NodeError};
use bhsync::state::{CategorySpec, Mode, PartitionPolicy};

fn open_with(spec: CategorySpec) -> Result<Node, NodeError> {
    Node::open(NodeConfig { categories: vec![("blocks".into(), spec)], ..NodeConfig::default() })
}

#[test]
fn a_chain_category_without_a_data_directory_is_refused_rather_than_run_in_memory() {
    let error = open_with(CategorySpec { mode: Mode::Chain, ..CategorySpec::default() }).err().expect("refused");
    assert!(matches!(error, NodeError::InvalidConfig(_)), "{error:?}");
    assert!(error.to_string().contains("data directory"), "the error names the setting: {error}");
}

#[test]
fn a_read_only_policy_on_an_eventual_category_is_run_now_that_membership_runs() {
    let spec = CategorySpec { partition_policy: PartitionPolicy::ReadOnly, ..CategorySpec::default() };
    let node = open_with(spec).expect("opens: membership decides the minority side");
    node.put("blocks", b"k", b"v").expect("a lone node is its own majority");
    node.close().expect("closes");
}

#[test]
fn the_default_configuration_opens() {
    let node = open_with(CategorySpec::default()).expect("the default category opens");
    node.close().expect("closes");
}

#[test]
fn an_active_view_the_overlay_cannot_run_is_refused() {
    for target_peers in [0, 1, 65] {
        let error = Node::open(NodeConfig { target_peers, ..NodeConfig::default() }).err().expect("refused");
        assert!(matches!(error, NodeError::InvalidConfig(_)), "target_peers {target_peers}: {error:?}");
        assert!(error.to_string().contains("target_peers"), "the error names the setting: {error}");
    }
    let node = Node::open(NodeConfig { target_peers: 2, ..NodeConfig::default() }).expect("2 opens");
    node.close().expect("closes");
}
