//! Docker and containerd, for real: the test starts dockerd (which runs its
//! own containerd), imports the busybox rootfs as an image, and records
//! containers with recorderctl (by name, id prefix and id) and in auto mode;
//! the recorded profiles are then enforced by `docker run --security-opt
//! seccomp=...` and `ctr run --seccomp --seccomp-profile ...`.

mod common;
mod support;

use std::{fs, path::Path, process::Command};

use common::*;
use support::*;

/// docker 20.10's managed containerd.
const CONTAINERD: &str = "/var/run/docker/containerd/containerd.sock";

fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn random_id() -> String {
    let bytes = fs::read("/proc/sys/kernel/random/uuid").unwrap();
    let a = String::from_utf8_lossy(&bytes).replace(['-', '\n'], "");
    let bytes = fs::read("/proc/sys/kernel/random/uuid").unwrap();
    let b = String::from_utf8_lossy(&bytes).replace(['-', '\n'], "");
    format!("{a}{b}")
}

/// A container started with the docker CLI; removed when dropped.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = run(&mut docker(&["rm", "-f", &self.0]));
    }
}

#[test]
fn docker_start_profile_stop_by_name_and_prefix() {
    require_root();
    // Built before any test thread forks (a copy being written cannot be exec'd).
    busybox_rootfs();
    let dir = scratch("docker-manual");
    let _dockerd = Dockerd::start(&dir);
    let daemon = Daemon::start(&dir, false);
    let name = format!("recorder-test-{}", std::process::id());
    let script = format!(
        "i=0; while [ ! -e /tmp/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; {WORKLOAD}; \
         i=0; while [ ! -e /tmp/end ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done"
    );
    let id = stdout_of(&mut docker(&[
        "run", "-d", "--name", &name, IMAGE, "sh", "-c", &script,
    ]));
    let _c = Container(name.clone());
    assert!(is_id(&id), "docker run -d printed {id}");

    // By name: the daemon finds the container whose runtime calls it so.
    run_ok(&mut daemon.ctl(&["start", &name]));
    let list = daemon.list();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["key"], id.as_str());
    assert_eq!(list[0]["runtime"], "docker");
    assert_eq!(list[0]["name"], name.as_str());
    assert_eq!(list[0]["image"], IMAGE);
    assert!(!run(&mut daemon.ctl(&["start", &id[..12]])).status.success());

    run_ok(&mut docker(&["exec", &name, "touch", "/tmp/go"]));
    wait_for("the workload", 60, || {
        let out = run(&mut docker(&["logs", &name]));
        String::from_utf8_lossy(&out.stdout)
            .contains("DONE")
            .then_some(())
    });
    // By full id: the profile so far, recording goes on.
    let partial = stdout_of(&mut daemon.ctl(&["profile", &id]));
    assert_recorded(&partial);
    // By prefix: stop writes it.
    let path = stdout_of(&mut daemon.ctl(&["stop", &id[..12]]));
    assert_eq!(Path::new(&path), daemon.profiles.join(format!("{id}.json")));
    assert_recorded(&fs::read_to_string(&path).unwrap());
    assert!(daemon.list().is_empty());
    run_ok(&mut docker(&["exec", &name, "touch", "/tmp/end"]));
    drop(_c);
    // Gone, yet its profile is still found by name through the index.
    let stored = stdout_of(&mut daemon.ctl(&["profile", &name]));
    assert_eq!(
        allowed_names(&stored),
        allowed_names(&fs::read_to_string(&path).unwrap())
    );
}

#[test]
fn docker_auto_mode_profile_is_enforced() {
    require_root();
    // Built before any test thread forks (a copy being written cannot be exec'd).
    busybox_rootfs();
    let dir = scratch("docker-auto");
    let _dockerd = Dockerd::start(&dir);
    let daemon = Daemon::start(&dir, true);
    let cidfile = dir.join("cid");
    let name = format!("recorder-test-auto-{}", std::process::id());
    let id = docker_workload(&name, &cidfile);
    assert!(is_id(&id));
    // Written when docker removes the container's cgroup.
    let text = wait_for_file(&daemon.profiles.join(format!("{id}.json")));
    assert_recorded(&text);
    // The index knows it: `profiles` lists it, `profile` finds it by name.
    let out = run_ok(&mut daemon.ctl(&["profiles", "--output", "json"]));
    let profiles: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let entry = profiles
        .iter()
        .find(|e| e["key"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} not in {profiles:?}"));
    assert_eq!(entry["runtime"], "docker");
    assert_eq!(entry["name"], name.as_str());
    assert_eq!(entry["image"], IMAGE);
    let stored = stdout_of(&mut daemon.ctl(&["profile", &name]));
    assert_eq!(allowed_names(&stored), allowed_names(&text));

    assert_docker_enforces(&text, &dir);
}

fn ctr(args: &[&str]) -> Command {
    let mut c = Command::new("ctr");
    c.args(["-a", CONTAINERD, "-n", "recorder-test"]).args(args);
    c
}

#[test]
fn containerd_auto_mode_profile_is_enforced() {
    require_root();
    // Built before any test thread forks (a copy being written cannot be exec'd).
    busybox_rootfs();
    let dir = scratch("containerd-auto");
    let _dockerd = Dockerd::start(&dir);
    pipe(
        Command::new("docker").args(["save", IMAGE]),
        &mut ctr(&["image", "import", "-"]),
    );
    let image = format!("docker.io/{IMAGE}:latest");
    let daemon = Daemon::start(&dir, true);

    // ctr puts the container at /<namespace>/<id>; its profile is named
    // after both.
    let id = random_id();
    assert!(ran_to(
        &mut ctr(&["run", "--rm", &image, &id, "sh", "-c", WORKLOAD]),
        "DONE"
    ));
    let text = wait_for_file(&daemon.profiles.join(format!("recorder-test+{id}.json")));
    assert_recorded(&text);

    let profile = dir.join("profile.json");
    fs::write(&profile, &text).unwrap();
    let p = profile.to_str().unwrap();
    assert!(
        ran_to(
            &mut ctr(&[
                "run",
                "--rm",
                "--seccomp",
                "--seccomp-profile",
                p,
                &image,
                &random_id(),
                "sh",
                "-c",
                WORKLOAD
            ]),
            "DONE"
        ),
        "the workload failed under its own profile"
    );
    let denied = dir.join("no-chmod.json");
    without(&text, CHMODS, &denied);
    let d = denied.to_str().unwrap();
    assert!(
        !ran_to(
            &mut ctr(&[
                "run",
                "--rm",
                "--seccomp",
                "--seccomp-profile",
                d,
                &image,
                &random_id(),
                "sh",
                "-c",
                WORKLOAD
            ]),
            "DONE"
        ),
        "chmod ran under a profile without it"
    );
}
