//! The loaded eBPF object through the library API, on the real kernel: the
//! bookkeeping that keeps `sys_enter`'s per-CPU last-caller entries honest.

mod common;

use std::{fs, process::Command, time::Duration};

use common::require_root;
use recorder::{
    cgroup::Hierarchy,
    ebpf::{Kernel, LoadOptions},
};

/// Every fork and every cgroup migration on the host bumps the generation
/// while the recorder is attached, and attaching bumps it once more for
/// what happened while it was not. A missing bump would let a new task
/// that got a dead task's kernel stack, or a task that changed cgroup, be
/// taken for the last caller with its old cgroup.
#[test]
fn caller_generation_moves_on_every_fork_and_cgroup_move() {
    require_root();
    let mut kernel = Kernel::load(&LoadOptions::default()).unwrap();
    kernel.attach().unwrap();

    let before = kernel.caller_generation();
    for _ in 0..100 {
        assert!(Command::new("true").status().unwrap().success());
    }
    let forks = kernel.caller_generation() - before;
    assert!(
        forks >= 100,
        "100 forks bumped the generation {forks} times"
    );

    // One sleeping process moved back and forth: no fork in between.
    let h = Hierarchy::detect().unwrap();
    let pid = std::process::id();
    let rels = [
        format!("/recorder-test-gen-a-{pid}"),
        format!("/recorder-test-gen-b-{pid}"),
    ];
    let procs: Vec<_> = rels
        .iter()
        .map(|rel| h.create(rel).unwrap().join("cgroup.procs"))
        .collect();
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    let before = kernel.caller_generation();
    for i in 0..100 {
        fs::write(&procs[i % 2], sleeper.id().to_string()).unwrap();
    }
    let moves = kernel.caller_generation() - before;
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    for rel in &rels {
        h.remove(rel, Duration::from_secs(5)).unwrap();
    }
    assert!(
        moves >= 100,
        "100 moves bumped the generation {moves} times"
    );

    // Detached, nothing counts (the hooks go with the recorder) ...
    kernel.detach().unwrap();
    let detached = kernel.caller_generation();
    for _ in 0..10 {
        assert!(Command::new("true").status().unwrap().success());
    }
    assert_eq!(kernel.caller_generation(), detached);
    // ... so attaching again starts a new generation.
    kernel.attach().unwrap();
    assert!(kernel.caller_generation() > detached);
}
