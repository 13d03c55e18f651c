//! Podman containers by name: `recorderctl start|stop|profile NAME` find
//! the container through podman's containers.json, `list` shows the name,
//! and the profile index finds it by name after the container is gone.

mod common;
mod support;

use std::{fs, process::Command};

use common::*;
use support::*;

#[test]
fn podman_container_by_name() {
    require_root();
    // Built before any test thread forks (a copy being written cannot be exec'd).
    busybox_rootfs();
    let dir = scratch("podman-names");
    let daemon = Daemon::start(&dir, false);
    let name = format!("recorder-test-names-{}", std::process::id());
    let script = "i=0; while [ ! -e /tmp/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; \
                  ls / >/dev/null; echo DONE; \
                  i=0; while [ ! -e /tmp/end ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done";
    let mut run_cmd = podman_run(&["-d", "--name", &name], &["sh", "-c", script]);
    let id = stdout_of(&mut run_cmd);
    struct Rm(String);
    impl Drop for Rm {
        fn drop(&mut self) {
            _ = Command::new("podman")
                .args(["rm", "-f", "-t", "0", &self.0])
                .output();
        }
    }
    let rm = Rm(name.clone());

    run_ok(&mut daemon.ctl(&["start", &name]));
    let list = daemon.list();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["key"], id.as_str());
    assert_eq!(list[0]["runtime"], "podman");
    assert_eq!(list[0]["name"], name.as_str());

    run_ok(Command::new("podman").args(["exec", &name, "touch", "/tmp/go"]));
    wait_for("the workload", 60, || {
        let out = run(Command::new("podman").args(["logs", &name]));
        String::from_utf8_lossy(&out.stdout)
            .contains("DONE")
            .then_some(())
    });
    let path = stdout_of(&mut daemon.ctl(&["stop", &name]));
    let text = fs::read_to_string(&path).unwrap();
    assert!(allowed_names(&text).contains("getdents64"));
    drop(rm);

    let stored = stdout_of(&mut daemon.ctl(&["profile", &name]));
    assert_eq!(allowed_names(&stored), allowed_names(&text));
    let out = run_ok(&mut daemon.ctl(&["profiles"]));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains(&name) && table.contains(&id[..12]),
        "{table}"
    );
}
