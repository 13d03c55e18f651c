//! Denials under an enforcing profile (issue 30, section 1), with real
//! docker containers: container 1 is recorded (`chown` that fails with
//! EPERM by itself, for lack of CAP_CHOWN, and no `mkdir`); container 2
//! runs under that profile (ERRNO default) and tries `mkdir` in a loop:
//! `drift -o json` lists mkdir (or mkdirat) under `denied` and not the
//! chown that failed on its own, `recorder_container_denied_syscalls_total`
//! is above 0 for it, and under `drift --widen` mkdir succeeds. Container
//! 4 runs under the same profile with a KILL_PROCESS default: `drift` tells
//! that the profile killed it, at mkdir; so for container 6 under TRAP. The image's row counts what its
//! watched runs were denied (`denied_while_recorded`). Container 5,
//! started while container 2 is watched, has its denial counted although
//! its task was seen before it was watched.

mod common;
mod support;

use std::{fs, path::Path, process::Command, time::Duration};

use common::{daemon::Daemon, *};
use support::*;

/// The body of GET `url`.
fn get(url: &str) -> Option<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    agent.get(url).call().ok()?.body_mut().read_to_string().ok()
}

/// `recorderctl drift ID -o json`, parsed; `None` when it fails.
fn drift_json(daemon: &Daemon, id: &str) -> Option<serde_json::Value> {
    let out = run(&mut daemon.ctl(&["drift", id, "-o", "json"]));
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// The `denied` entries of a report named `names`, errno ones or kills.
fn denied<'a>(
    report: &'a serde_json::Value,
    names: &[&str],
    killed: bool,
) -> Vec<&'a serde_json::Value> {
    // No list: nothing denied (yet).
    report["denied"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| names.contains(&d["name"].as_str().unwrap_or_default()))
        .filter(|d| d["killed"].as_bool().unwrap_or(false) == killed)
        .collect()
}

const MKDIRS: &[&str] = &["mkdir", "mkdirat"];
const CHOWNS: &[&str] = &["chown", "fchown", "fchownat", "lchown"];

fn cid(file: &Path) -> String {
    wait_for("cidfile", 30, || {
        fs::read_to_string(file)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    })
}

/// `docker run` of `script` in a container named `name`, with `extra`
/// options, writing its id to `cidfile`.
fn docker_run(name: &str, cidfile: &Path, extra: &[&str], script: &str) -> Command {
    let mut c = docker(&["run", "--rm", "--name", name, "--cap-drop", "CHOWN"]);
    c.arg(format!("--cidfile={}", cidfile.display()));
    c.args(extra).args([IMAGE, "sh", "-c", script]);
    c
}

#[test]
fn docker_denials() {
    require_root();
    let _serial = serial();
    let port = free_port();
    let metrics = format!("127.0.0.1:{port}");
    // Runs under a chosen profile feed the image profile too, so that its
    // row counts what they were denied.
    let cfg = scratch("h30k-denials-config").join("recorderd.toml");
    fs::write(&cfg, "[images]\nskip_chosen_profile = false\n").unwrap();
    let daemon = Daemon::start(
        "h30k-denials",
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--all",
            "--include-name",
            "h30k-*",
            "--metrics-addr",
            &metrics,
        ],
    );
    let dir = daemon.dir.clone();
    let _dockerd = Dockerd::start(&dir);

    // 1. Container 1: chown fails by itself (no CAP_CHOWN); no mkdir.
    let c1file = dir.join("c1");
    let script = "touch /tmp/f; chown 1 /tmp/f; sleep 1; echo DONE";
    assert!(ran_to(
        &mut docker_run("h30k-den-1", &c1file, &[], script),
        "DONE"
    ));
    let c1 = cid(&c1file);
    let recorded = daemon.wait_for(&daemon.profile_path(&c1));
    let names = allowed_names(&recorded);
    assert!(CHOWNS.iter().any(|n| names.contains(*n)), "{names:?}");
    assert!(!MKDIRS.iter().any(|n| names.contains(*n)), "{names:?}");
    let profile = dir.join("c1.json");
    fs::write(&profile, &recorded).unwrap();

    // 2. Container 2 under it (ERRNO default), trying mkdir in a loop.
    let c2file = dir.join("c2");
    let seccomp = format!("seccomp={}", profile.display());
    let script = "touch /tmp/f; for i in 1 2 3 4 5 6 7 8; do mkdir /tmp/d; chown 1 /tmp/f; sleep 1; done; echo DONE";
    run_ok(&mut docker_run(
        "h30k-den-2",
        &c2file,
        &["-d", "--security-opt", &seccomp],
        script,
    ));
    let c2 = cid(&c2file);
    let report = wait_for("mkdir denied to container 2", 20, || {
        drift_json(&daemon, &c2).filter(|r| !denied(r, MKDIRS, false).is_empty())
    });
    eprintln!("ACCEPTANCE denials under docker: {report}");
    // Container 5, started while container 2 is watched (the denial
    // programs attached): its shell's syscalls are seen before it is
    // watched, and the mkdir comes from that same task (exec).
    let c5file = dir.join("c5");
    run_ok(&mut docker_run(
        "h30k-den-5",
        &c5file,
        &["-d", "--security-opt", &seccomp],
        "sleep 3; exec mkdir /tmp/d",
    ));
    let c5 = cid(&c5file);
    assert_eq!(report["enforcing"], true, "{report}");
    let mkdir = denied(&report, MKDIRS, false)[0];
    assert!(mkdir["count"].as_u64().is_some_and(|n| n > 0), "{report}");
    assert!(mkdir["first_seen"].as_u64().is_some(), "{report}");
    assert_eq!(mkdir["abi"], "x86_64", "{report}");
    // The allowed chown, failing with EPERM on its own, is no denial.
    assert!(denied(&report, CHOWNS, false).is_empty(), "{report}");
    // The text lists the denials first.
    let text = daemon.ctl_ok(&["drift", &c2]);
    let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("{s}: {text}"));
    assert!(
        at("denied by the profile") < at("outside the profile"),
        "{text}"
    );

    // 3. Its counter on /metrics, above 0.
    let series = format!("recorder_container_denied_syscalls_total{{id=\"{c2}\"");
    let text = wait_for("the denied series", 10, || {
        get(&format!("http://{metrics}/metrics")).filter(|t| t.contains(&series))
    });
    let value: f64 = text
        .lines()
        .find(|l| l.starts_with(&series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(value > 0.0, "{text}");

    // Container 5's mkdir counted too, though its task was first seen
    // unwatched.
    daemon.wait_for(&daemon.profile_path(&c5));
    let report = drift_json(&daemon, &c5).expect("drift of container 5");
    assert!(!denied(&report, MKDIRS, false).is_empty(), "{report}");

    // 4. After it exited: from the index, and --widen lets mkdir run.
    wait_for("container 2's profile", 60, || {
        daemon.profile_path(&c2).exists().then_some(())
    });
    let report = drift_json(&daemon, &c2).expect("drift after exit");
    assert_eq!(report["running"], false, "{report}");
    assert!(!denied(&report, MKDIRS, false).is_empty(), "{report}");
    let all = run_ok(&mut daemon.ctl(&["drift", "--all", "-o", "json"]));
    let all: serde_json::Value = serde_json::from_slice(&all.stdout).unwrap();
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == c2.as_str() && !denied(r, MKDIRS, false).is_empty()),
        "{all}"
    );
    // The image's row counts what its watched runs were denied.
    let images = run_ok(&mut daemon.ctl(&["images", "-o", "json"]));
    let images: serde_json::Value = serde_json::from_slice(&images.stdout).unwrap();
    let row = images
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["image"].as_str().is_some_and(|i| i.contains(IMAGE)))
        .unwrap_or_else(|| panic!("no row of {IMAGE}: {images}"));
    assert!(
        row["denied_while_recorded"].as_u64().is_some_and(|n| n > 0),
        "{row}"
    );
    let wide = dir.join("wide.json");
    daemon.ctl_ok(&["drift", &c2, "--widen", "--out", wide.to_str().unwrap()]);
    let seccomp_wide = format!("seccomp={}", wide.display());
    let c3file = dir.join("c3");
    assert!(ran_to(
        &mut docker_run(
            "h30k-den-3",
            &c3file,
            &["--security-opt", &seccomp_wide],
            "mkdir /tmp/d && echo DONE"
        ),
        "DONE"
    ));

    // 5. KILL_PROCESS: the container is killed by its profile, at mkdir.
    let kill = daemon.ctl_ok(&[
        "convert",
        profile.to_str().unwrap(),
        "--default-action",
        "kill-process",
    ]);
    let kill_profile = dir.join("c1-kill.json");
    fs::write(&kill_profile, &kill).unwrap();
    let c4file = dir.join("c4");
    let seccomp = format!("seccomp={}", kill_profile.display());
    let out = run(&mut docker_run(
        "h30k-den-4",
        &c4file,
        &["--security-opt", &seccomp],
        "sleep 4; exec mkdir /tmp/d",
    ));
    // 128 + SIGSYS.
    assert_eq!(out.status.code(), Some(159), "{out:?}");
    let c4 = cid(&c4file);
    daemon.wait_for(&daemon.profile_path(&c4));
    let report = drift_json(&daemon, &c4).expect("drift of the killed container");
    eprintln!("ACCEPTANCE killed by its profile: {report}");
    assert!(!denied(&report, MKDIRS, true).is_empty(), "{report}");

    // 6. TRAP: SIGSYS with no handler kills the task too; the syscall
    // left through sys_exit first (rolled back), so it is also denied.
    let trap = daemon.ctl_ok(&[
        "convert",
        profile.to_str().unwrap(),
        "--default-action",
        "trap",
    ]);
    let trap_profile = dir.join("c1-trap.json");
    fs::write(&trap_profile, &trap).unwrap();
    let c6file = dir.join("c6");
    let seccomp = format!("seccomp={}", trap_profile.display());
    let out = run(&mut docker_run(
        "h30k-den-6",
        &c6file,
        &["--security-opt", &seccomp],
        "sleep 4; exec mkdir /tmp/d",
    ));
    assert_eq!(out.status.code(), Some(159), "{out:?}");
    let c6 = cid(&c6file);
    daemon.wait_for(&daemon.profile_path(&c6));
    let report = drift_json(&daemon, &c6).expect("drift of the trapped container");
    assert!(!denied(&report, MKDIRS, true).is_empty(), "{report}");
    assert!(!denied(&report, MKDIRS, false).is_empty(), "{report}");
}
