//! A deliberate stop: SIGTERM writes the partial profiles, then detaches
//! and unpins everything, unless `--keep-attached` asks to keep recording
//! until the next start. (kill -9 and a restart: tests/auto.rs.)

mod common;

use std::{fs, path::Path, process::Command, time::Duration};

use common::{daemon::Daemon, require_root, run};
use recorder::cgroup::Hierarchy;

/// The ids of the links pinned in `pin_dir` (`link_*`).
fn pinned_link_ids(pin_dir: &Path) -> Vec<u64> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(pin_dir).unwrap() {
        let path = entry.unwrap().path();
        let is_link = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("link_"));
        if !is_link {
            continue;
        }
        let out = run(Command::new("bpftool")
            .args(["link", "show", "pinned"])
            .arg(&path)
            .arg("--json"));
        assert!(out.status.success(), "bpftool on {}", path.display());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        ids.push(v["id"].as_u64().unwrap());
    }
    ids
}

/// Whether the kernel still has link `id`.
fn link_exists(id: u64) -> bool {
    run(Command::new("bpftool").args(["link", "show", "id", &id.to_string()]))
        .status
        .success()
}

#[test]
fn sigterm_detaches_and_unpins() {
    require_root();
    let h = Hierarchy::detect().unwrap();
    let mut d = Daemon::start("stop-release", &["--all"]);
    // A manual recording, so that there is a partial profile to write.
    let rel = format!("/recorder-test-stop-{}", std::process::id());
    h.create(&rel).unwrap();
    d.ctl_ok(&["start", "--cgroup", &rel]);
    let key = format!("cgroup-{}", h.id(&rel).unwrap());
    let ids = pinned_link_ids(&d.pin_dir);
    // sys_enter, its two generation hooks, cgroup_mkdir and cgroup_rmdir.
    assert_eq!(ids.len(), 5, "{ids:?}\n{}", d.log_text());
    assert!(ids.iter().all(|&id| link_exists(id)));

    let status = d.signal(libc::SIGTERM).expect("recorderd exit status");
    assert!(
        status.success(),
        "exit 0 on SIGTERM: {status}\n{}",
        d.log_text()
    );
    assert!(
        d.profiles.join(format!("{key}.partial.json")).exists(),
        "{}",
        d.log_text()
    );
    assert!(
        !d.pin_dir.exists(),
        "{} is left:\n{}",
        d.pin_dir.display(),
        d.log_text()
    );
    let left: Vec<u64> = ids.into_iter().filter(|&id| link_exists(id)).collect();
    assert!(left.is_empty(), "links still attached: {left:?}");

    // The next start begins afresh: nothing to resume, nothing recorded.
    d.spawn();
    assert!(!d.log_text().contains("resuming"), "{}", d.log_text());
    let list = d.ctl_ok(&["list", "--output", "json"]);
    assert!(!list.contains(&key), "{list}");
    drop(d);
    _ = h.remove(&rel, Duration::from_secs(5));
}

#[test]
fn keep_attached_keeps_recording_across_a_restart() {
    require_root();
    let h = Hierarchy::detect().unwrap();
    let mut d = Daemon::start("stop-keep", &["--all", "--keep-attached"]);
    let rel = format!("/recorder-test-stop-keep-{}", std::process::id());
    h.create(&rel).unwrap();
    d.ctl_ok(&["start", "--cgroup", &rel]);
    let key = format!("cgroup-{}", h.id(&rel).unwrap());
    let ids = pinned_link_ids(&d.pin_dir);
    assert_eq!(ids.len(), 5, "{ids:?}\n{}", d.log_text());

    let status = d.signal(libc::SIGTERM).expect("recorderd exit status");
    assert!(
        status.success(),
        "exit 0 on SIGTERM: {status}\n{}",
        d.log_text()
    );
    assert!(d.profiles.join(format!("{key}.partial.json")).exists());
    let gone: Vec<u64> = ids.iter().copied().filter(|&id| !link_exists(id)).collect();
    assert!(gone.is_empty(), "links detached: {gone:?}");

    d.spawn();
    assert!(d.log_text().contains("resuming"), "{}", d.log_text());
    let list = d.ctl_ok(&["list", "--output", "json"]);
    assert!(list.contains(&key), "{list}");
    drop(d);
    _ = h.remove(&rel, Duration::from_secs(5));
}
