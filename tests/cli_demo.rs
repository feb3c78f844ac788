//! `bhsync demo --nodes 3 --quick` end to end: the binary starts a real three-node
//! cluster over loopback, splits it, heals it, and must exit 0 with every state hash
//! agreeing; `--report` must leave a self-contained HTML page with its charts.
//!
//! Reproduce: `cargo run -- demo --nodes 3 --quick --report /tmp/demo.html`.

use std::process::Command;

#[test]
fn the_quick_demo_converges_and_writes_its_report() {
    let dir = std::env::temp_dir().join(format!("bhsync-cli-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let report = dir.join("demo.html");
    let output = Command::new(env!("CARGO_BIN_EXE_bhsync"))
        .args(["demo", "--nodes", "3", "--quick", "--timeout", "15", "--report"])
        .arg(&report)
        .output()
        .expect("run bhsync demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed ({:?}):\n{stdout}\n{stderr}", output.status.code());
    assert!(stdout.contains("converged: every state hash agrees"), "{stdout}");
    let while_split: usize = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("while split: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|count| count.parse().ok())
        .unwrap_or(0);
    assert!(while_split >= 2, "the halves did not diverge while split:\n{stdout}");
    // The table: a header and one row per node, all with the same state hash.
    let rows: Vec<&str> = stdout.lines().skip_while(|line| !line.starts_with("node ")).skip(1).take(3).collect();
    let hashes: Vec<&str> = rows.iter().filter_map(|row| row.split_whitespace().nth(2)).collect();
    assert_eq!(hashes.len(), 3, "{stdout}");
    assert!(hashes.windows(2).all(|pair| pair[0] == pair[1]), "hashes differ: {hashes:?}");
    let page = std::fs::read_to_string(&report).expect("the report was written");
    assert!(page.starts_with("<!DOCTYPE html>") && page.matches("<svg").count() == 3, "{page}");
    // Self-contained: no script, nothing loaded from elsewhere.
    assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("href="), "{page}");
    let _ = std::fs::remove_dir_all(&dir);
}
