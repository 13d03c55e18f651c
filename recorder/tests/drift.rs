//! Drift (issue 20), with real docker and podman containers: container 1
//! (`mkdir /tmp/d`) is recorded in auto mode, its profile converted to
//! complain mode (`--default-action log`), and container 2 runs under it
//! doing one thing more (`chmod`). While container 2 runs, `drift` names
//! chmod (or fchmodat) and nothing the profile allows, `/metrics` has its
//! `recorder_container_syscalls_outside_profile` series, and after it
//! exited `drift` still names chmod (from the profile index) and the series
//! stays a while. A container under the runtime's default profile is not
//! reported; one under an enforcing profile is, with the note that what
//! it denies is listed under `denied`. A name run again (the review's item 4) means the
//! newest watched run of it, for `drift` and `profile`.

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

/// `recorderctl drift ARGS --output json`, parsed (one container: an
/// object; `--all`: a list); `None` when it fails.
fn drift_json(daemon: &Daemon, args: &[&str]) -> Option<serde_json::Value> {
    let mut all = vec!["drift"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--output", "json"]);
    let out = run(&mut daemon.ctl(&all));
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// The names in a report's `outside`.
fn outside(report: &serde_json::Value) -> Vec<String> {
    report["outside"]
        .as_array()
        .unwrap_or_else(|| panic!("no outside list: {report}"))
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect()
}

fn has_chmod(names: &[String]) -> bool {
    names.iter().any(|n| n == "chmod" || n == "fchmodat")
}

fn cid(file: &Path) -> String {
    wait_for("cidfile", 30, || {
        fs::read_to_string(file)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    })
}

/// How a test starts its runtime's containers.
struct Runtime<'a> {
    name: &'a str,
    /// Runs `sh -c SCRIPT` with the extra options, to the end (`detach`:
    /// returns once it started).
    run: &'a dyn Fn(&[&str], &str, bool) -> Command,
}

/// Must show 1-6 of issue 20 with `rt`.
fn must_show(rt: &Runtime<'_>) {
    let port = free_port();
    let metrics = format!("127.0.0.1:{port}");
    let daemon = Daemon::start(
        &format!("drift-{}", rt.name),
        &["--all", "--metrics-addr", &metrics],
    );
    let dir = daemon.dir.clone();

    // 1. Container 1, recorded in auto mode; its profile in complain mode.
    let c1file = dir.join("c1");
    let opt = format!("--cidfile={}", c1file.display());
    run_ok(&mut (rt.run)(&[&opt], "mkdir /tmp/d", false));
    let c1 = cid(&c1file);
    let recorded = daemon.wait_for(&daemon.profile_path(&c1));
    let names = allowed_names(&recorded);
    assert!(
        names.contains("mkdir") || names.contains("mkdirat"),
        "{names:?}"
    );
    let profile = dir.join("c1.json");
    fs::write(&profile, &recorded).unwrap();
    let log = daemon.ctl_ok(&[
        "convert",
        profile.to_str().unwrap(),
        "--default-action",
        "log",
    ]);
    let log_profile = dir.join("c1-log.json");
    fs::write(&log_profile, &log).unwrap();

    // 2. Container 2 under it, doing one thing more.
    let c2file = dir.join("c2");
    let opt = format!("--cidfile={}", c2file.display());
    let seccomp = format!("seccomp={}", log_profile.display());
    let name = format!("drift-{}-web", rt.name);
    run_ok(&mut (rt.run)(
        &[&opt, "--name", &name, "--security-opt", &seccomp],
        "mkdir /tmp/d; chmod 600 /tmp/d; sleep 4",
        true,
    ));
    let c2 = cid(&c2file);

    // 3. While it runs: chmod or fchmodat, and nothing the profile allows.
    let report = wait_for("drift of container 2 naming chmod", 4, || {
        drift_json(&daemon, &[&c2]).filter(|r| has_chmod(&outside(r)))
    });
    let report = &report;
    eprintln!("ACCEPTANCE drift under {}: {report}", rt.name);
    assert_eq!(report["running"], true, "{report}");
    assert_eq!(report["id"], c2.as_str());
    assert_eq!(report["default_action"], "SCMP_ACT_LOG");
    assert!(report["profile"].as_str().is_some_and(|p| !p.is_empty()));
    let names = outside(report);
    for inside in ["mkdir", "mkdirat", "execve"] {
        assert!(!names.iter().any(|n| n == inside), "{inside}: {report}");
    }
    for key in ["name", "image", "outside_since"] {
        assert!(report.get(key).is_some(), "{key}: {report}");
    }

    // 4. Its series on /metrics.
    let series = format!("recorder_container_syscalls_outside_profile{{id=\"{c2}\"");
    let text = wait_for("the outside-profile series", 10, || {
        get(&format!("http://{metrics}/metrics")).filter(|t| t.contains(&series))
    });
    assert!(!text.contains(&format!("outside_profile{{id=\"{c1}\"")));

    // 5. After it exited, from the index.
    wait_for("container 2's profile", 60, || {
        daemon.profile_path(&c2).exists().then_some(())
    });
    // Its series stays a while (drift_series_secs), for short runs' alerts.
    let text = get(&format!("http://{metrics}/metrics")).unwrap_or_default();
    assert!(
        text.contains(&series),
        "the ended series went at once:\n{text}"
    );
    let report = drift_json(&daemon, &[&c2]).expect("drift after exit");
    assert_eq!(report["running"], false, "{report}");
    assert!(has_chmod(&outside(&report)), "{report}");
    // --widen gives the profile to enforce next: the drift allowed.
    let wide = daemon.ctl_ok(&["drift", &c2, "--widen"]);
    assert!(has_chmod(
        &allowed_names(&wide).into_iter().collect::<Vec<_>>()
    ));

    // The name run again, under the same profile: drift and profile NAME
    // mean the newest run, also after a run under the default profile.
    wait_for("container 2's name to be free", 30, || {
        let gone = !run(Command::new(rt.name).args(["container", "inspect", &name]))
            .status
            .success();
        gone.then_some(())
    });
    let c5file = dir.join("c5");
    let opt = format!("--cidfile={}", c5file.display());
    run_ok(&mut (rt.run)(
        &[&opt, "--name", &name, "--security-opt", &seccomp],
        "mkdir /tmp/d; chmod 600 /tmp/d",
        false,
    ));
    let c5 = cid(&c5file);
    daemon.wait_for(&daemon.profile_path(&c5));
    let report = drift_json(&daemon, &[&name]).expect("drift NAME after a re-run");
    assert_eq!(report["id"], c5.as_str(), "{report}");
    assert!(has_chmod(&outside(&report)), "{report}");
    let c6file = dir.join("c6");
    let opt = format!("--cidfile={}", c6file.display());
    run_ok(&mut (rt.run)(&[&opt, "--name", &name], "true", false));
    let c6 = cid(&c6file);
    daemon.wait_for(&daemon.profile_path(&c6));
    let report = drift_json(&daemon, &[&name]).expect("drift NAME after a default run");
    assert_eq!(report["id"], c5.as_str(), "{report}");
    // profile NAME: the newest run's, also with --out.
    let file = dir.join("named.json");
    let out = daemon.ctl_ok(&["profile", &name, "--out", file.to_str().unwrap()]);
    assert!(out.is_empty(), "{out}");
    let json = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&fs::read_to_string(p).unwrap()).unwrap()
    };
    assert_eq!(json(&file), json(&daemon.profile_path(&c6)));

    // 6. A container under the runtime's default profile: not drifting.
    let c3file = dir.join("c3");
    let opt = format!("--cidfile={}", c3file.display());
    run_ok(&mut (rt.run)(
        &[&opt],
        "mkdir /tmp/d; chmod 600 /tmp/d",
        false,
    ));
    let c3 = cid(&c3file);
    daemon.wait_for(&daemon.profile_path(&c3));
    let out = run(&mut daemon.ctl(&["drift", &c3]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("nothing to compare"), "{err}");
    let all = drift_json(&daemon, &["--all"]).expect("drift --all");
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(ids.contains(&c2.as_str()), "{all}");
    assert!(!ids.contains(&c3.as_str()) && !ids.contains(&c1.as_str()));
    // An enforcing profile (container 1's own): watched, and the report
    // says that what it denies is listed as denied (tests/denials.rs).
    let c4file = dir.join("c4");
    let opt = format!("--cidfile={}", c4file.display());
    let seccomp = format!("seccomp={}", profile.display());
    run_ok(&mut (rt.run)(
        &[&opt, "--security-opt", &seccomp],
        "mkdir /tmp/d",
        false,
    ));
    let c4 = cid(&c4file);
    daemon.wait_for(&daemon.profile_path(&c4));
    let report = drift_json(&daemon, &[&c4]).expect("drift of an enforced container");
    assert_eq!(report["enforcing"], true, "{report}");
    assert!(
        report["note"]
            .as_str()
            .is_some_and(|n| n.contains("listed under denied")),
        "{report}"
    );
    // An unknown container: one clear line.
    let out = run(&mut daemon.ctl(&["drift", "no-such-container"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unknown container"),
        "{err}"
    );
}

#[test]
fn docker_drift() {
    require_root();
    let _serial = serial();
    let dir = scratch("drift-docker");
    let _dockerd = Dockerd::start(&dir);
    let run = |extra: &[&str], script: &str, detach: bool| {
        let mut c = Command::new("docker");
        c.args(["run", "--rm"]);
        if detach {
            c.arg("-d");
        }
        c.args(extra).args([IMAGE, "sh", "-c", script]);
        c
    };
    must_show(&Runtime {
        name: "docker",
        run: &run,
    });
}

#[test]
fn podman_drift() {
    require_root();
    let _serial = serial();
    let run = |extra: &[&str], script: &str, detach: bool| {
        let mut opts: Vec<&str> = extra.to_vec();
        if detach {
            opts.push("-d");
        }
        podman_run(&opts, &["sh", "-c", script])
    };
    must_show(&Runtime {
        name: "podman",
        run: &run,
    });
}
