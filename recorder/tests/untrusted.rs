//! Containers are untrusted input (issue 31, items 1-3), for real: `ctr`
//! containers that try to take over a docker image's profile (one named
//! after its short id, one with forged CRI image annotations) change
//! nothing of it; a seccomp profile path full of terminal escapes reaches
//! no output raw; and 80 `docker run --rm IMG true` at 4 in parallel are
//! every one attributed to their image. Names, tags and namespaces start
//! with `h31-`.

mod common;
mod support;

use std::{fs, process::Command, time::Duration};

use common::*;
use support::*;

/// dockerd's managed containerd (the containerd tests' too).
const CONTAINERD: &str = "/var/run/docker/containerd/containerd.sock";

fn ctr(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ctr");
    c.args(["-a", CONTAINERD, "-n", ns]).args(args);
    c
}

/// A scrape of recorderd's /metrics.
fn scrape(addr: &str) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    agent
        .get(&format!("http://{addr}/metrics"))
        .call()
        .expect("/metrics answers")
        .body_mut()
        .read_to_string()
        .unwrap()
}

/// The lines of a scrape about image label `label`.
/// The `recorder_image_*` families: syscalls, runs, failed runs, ready.
const IMAGE_FAMILIES: usize = 4;

fn image_series(scrape: &str, label: &str) -> Vec<String> {
    let mut lines: Vec<String> = scrape
        .lines()
        .filter(|l| l.starts_with("recorder_image_") && l.contains(&format!("image=\"{label}\"")))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn images(daemon: &Daemon) -> Vec<serde_json::Value> {
    json(&daemon.ctl_ok(&["images", "--output", "json"]))
        .as_array()
        .unwrap()
        .clone()
}

fn profiles(daemon: &Daemon) -> Vec<serde_json::Value> {
    json(&daemon.ctl_ok(&["profiles", "--output", "json"]))
        .as_array()
        .unwrap()
        .clone()
}

/// Item 1's must show: a `ctr` container of another image named after a
/// docker image's short id, and one with forged `io.kubernetes.cri.image-name`
/// and `image-id` annotations, change neither that image's file, nor its
/// `profile --image` answer, nor its metric series; they feed a row of
/// their own image, as containerd's metadata names it.
#[test]
fn ctr_containers_cannot_take_over_a_docker_images_profile() {
    require_root();
    let _serial = serial();
    busybox_rootfs();
    let dir = scratch("h31-takeover");
    let _dockerd = Dockerd::start(&dir);
    let victim_id = import_image("h31-victim");
    let short = victim_id.trim_start_matches("sha256:")[..12].to_owned();
    let metrics = format!("127.0.0.1:{}", free_port());
    let daemon = Daemon(daemon::Daemon::start(
        "h31-takeover",
        &[
            "--all",
            "--include-image",
            "*h31-*",
            "--include-image",
            &short,
            // So that a recorderd that files it by name records it too.
            "--include-name",
            &short,
            "--include-name",
            "h31-*",
            "--metrics-addr",
            &metrics,
        ],
    ));

    // The victim, run by its short id: its row's label is that short id.
    run_container(&daemon, &dir, &[], &short, "mkdir /tmp/d && echo DONE");
    let row = wait_for("the victim's row", 30, || {
        images(&daemon)
            .into_iter()
            .find(|r| r["id"] == victim_id.as_str() && r["runs"] == 1)
    });
    let label = row["label"].as_str().unwrap().to_owned();
    assert_eq!(label, short, "{row}");
    let file = daemon.profiles.join("images").join(format!("{short}.json"));
    let file_before = fs::read_to_string(&file).unwrap();
    let answer = |spec: &str| daemon.ctl_ok(&["profile", "--image", spec]);
    let answers_before = [answer(&short), answer(&victim_id)];
    let series_before = wait_for("the victim's series", 10, || {
        Some(image_series(&scrape(&metrics), &label)).filter(|s| s.len() == IMAGE_FAMILIES)
    });

    // Another image in containerd's store, and two containers of it.
    let ns = format!("h31-ns-{}", std::process::id());
    run_ok(&mut docker(&["tag", IMAGE, "h31-other:1"]));
    pipe(
        Command::new("docker").args(["save", "h31-other:1"]),
        &mut ctr(&ns, &["image", "import", "-"]),
    );
    let other = "docker.io/library/h31-other:1";
    // Syscalls the victim never made: a takeover would show them.
    let script = "ln -s /tmp/x /tmp/l && touch /tmp/f && chmod 600 /tmp/f && echo DONE";
    let forged_id = format!("io.kubernetes.cri.image-id={victim_id}");
    let forged = [
        "--annotation",
        "io.kubernetes.cri.image-name=h31-victim:latest",
        "--annotation",
        &forged_id,
    ];
    for (id, extra) in [(short.as_str(), &[][..]), ("h31-forged", &forged[..])] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[other, id, "sh", "-c", script]);
        assert!(ran_to(&mut ctr(&ns, &args), "DONE"), "ctr {args:?}");
        wait_for_file(&daemon.profiles.join(format!("{ns}+{id}.json")));
    }

    // They changed nothing of the victim's: its file, its answers, and
    // (once the snapshot is refreshed after their profiles) its series.
    let written = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        file_before,
        "{}",
        file.display()
    );
    let answers = [answer(&short), answer(&victim_id)];
    assert_eq!(answers, answers_before);
    assert!(!allowed_names(&answers[0]).contains("symlink"));
    let series = wait_for("a scrape refreshed after their profiles", 10, || {
        let s = scrape(&metrics);
        let refreshed: f64 = s
            .lines()
            .find_map(|l| l.strip_prefix("recorder_last_refresh_timestamp_seconds "))?
            .parse()
            .ok()?;
        (refreshed > written + 1.0).then(|| image_series(&s, &label))
    });
    assert_eq!(series, series_before);
    let victims: Vec<_> = images(&daemon)
        .into_iter()
        .filter(|r| r["label"] == label.as_str() || r["key"] == short.as_str())
        .collect();
    assert_eq!(victims.len(), 1, "{victims:?}");

    // They were recorded, as containers of their own image (containerd's
    // metadata and digest), in a row of their own.
    let theirs = wait_for("the other image's row with 2 runs", 30, || {
        images(&daemon)
            .into_iter()
            .find(|r| r["image"] == "h31-other:1" && r["runs"] == 2)
    });
    eprintln!("ACCEPTANCE the ctr containers' row: {theirs}");
    assert_eq!(theirs["keyed_by"], "id", "containerd's digest: {theirs}");
    assert_ne!(theirs["label"], label.as_str());
    let s = scrape(&metrics);
    assert_eq!(image_series(&s, &label), series_before);
    assert_eq!(
        image_series(&s, theirs["label"].as_str().unwrap()).len(),
        IMAGE_FAMILIES
    );
    for e in profiles(&daemon)
        .iter()
        .filter(|e| e["key"].as_str().is_some_and(|k| k.starts_with(&ns)))
    {
        assert_eq!(e["image"], other, "{e}");
        assert_ne!(e["image_key"], victim_id.as_str(), "{e}");
    }

    // An ambiguous spec is refused, with its candidates: the tag on the
    // other image in docker's store too.
    run_container(&daemon, &dir, &[], "h31-other:1", "echo DONE");
    let out = run(&mut daemon.ctl(&["profile", "--image", "h31-other:1"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("ambiguous") && err.contains("h31-other:1@"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    // Best effort: containerd keeps the namespace's cgroup, and its
    // content until it collects it.
    _ = run(&mut ctr(&ns, &["image", "rm", other]));
    if let Ok(h) = recorder::cgroup::Hierarchy::detect() {
        _ = h.remove(&format!("/{ns}"), Duration::from_secs(1));
    }
    _ = run(Command::new("ctr").args(["-a", CONTAINERD, "namespaces", "rm", &ns]));
    _ = run(&mut docker(&["rmi", "-f", "h31-other:1", "h31-victim"]));
}

/// Item 2's must show: a seccomp profile whose path holds ESC, BEL and
/// OSC sequences (podman's `io.podman.annotations.seccomp` annotation,
/// from `--security-opt seccomp=<path>`): no byte 0x1b or 0x07 in `drift`,
/// `drift --all`, `list`, `profiles` or `images`, nor in recorderd's log or
/// its metrics; the path is shown, escaped.
#[test]
fn a_hostile_seccomp_path_reaches_no_output_raw() {
    require_root();
    let _serial = serial();
    let metrics = format!("127.0.0.1:{}", free_port());
    let daemon = Daemon(daemon::Daemon::start(
        "h31-escapes",
        &[
            "--all",
            "--include-name",
            "h31-*",
            "--metrics-addr",
            &metrics,
        ],
    ));
    let dir = daemon.dir.clone();
    let path = dir.join("x\x1b[31mRED\x1b]0;pwned-title\x07\x1b[2J.json");
    // Complain mode: everything runs, and what it does not name is drift.
    fs::write(&path, r#"{"defaultAction":"SCMP_ACT_LOG","syscalls":[]}"#).unwrap();
    let seccomp = format!("seccomp={}", path.display());
    let cidfile = dir.join("cid");
    let cidopt = format!("--cidfile={}", cidfile.display());
    run_ok(&mut podman_run(
        &[
            &cidopt,
            "-d",
            "--name",
            "h31-esc",
            "--security-opt",
            &seccomp,
        ],
        &["sh", "-c", "mkdir /tmp/d; sleep 3"],
    ));
    let id = wait_for("cidfile", 30, || {
        fs::read_to_string(&cidfile)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    });
    let raw = |what: &str, bytes: &[u8]| {
        assert!(
            !bytes.iter().any(|b| *b == 0x1b || *b == 0x07),
            "{what} holds a raw ESC or BEL:\n{}",
            String::from_utf8_lossy(bytes).escape_debug()
        );
    };
    let report = wait_for("its drift while it runs", 10, || {
        let out = run(&mut daemon.ctl(&["drift", &id]));
        out.status.success().then_some(out.stdout)
    });
    raw("drift", &report);
    let report = String::from_utf8_lossy(&report);
    eprintln!("ACCEPTANCE drift of a hostile path:\n{report}");
    assert!(
        report.contains("\\u{1b}[31mRED\\u{1b}]0;pwned-title\\u{7}"),
        "{report}"
    );
    for args in [&["list"][..], &["list", "--wide"]] {
        raw(&format!("{args:?}"), &run_ok(&mut daemon.ctl(args)).stdout);
    }
    let series = format!("recorder_container_syscalls_outside_profile{{id=\"{id}\"");
    wait_for("its drift series", 10, || {
        let s = scrape(&metrics);
        raw("/metrics", s.as_bytes());
        s.contains(&series).then_some(())
    });
    daemon.wait_for(&daemon.profile_path(&id));
    for args in [
        &["drift", &id][..],
        &["drift", "--all"],
        &["profiles"],
        &["profiles", "--wide"],
        &["images"],
        &["images", "--wide"],
        &["status"],
    ] {
        let out = run_ok(&mut daemon.ctl(args));
        raw(&format!("{args:?}"), &out.stdout);
        raw(&format!("{args:?} (stderr)"), &out.stderr);
    }
    let all =
        String::from_utf8_lossy(&run_ok(&mut daemon.ctl(&["drift", "--all"])).stdout).into_owned();
    assert!(all.contains(&id[..12]) && all.contains("\\u{7}"), "{all}");
    raw("/metrics", scrape(&metrics).as_bytes());
    let log = fs::read(&daemon.log).unwrap();
    raw("recorderd's log", &log);
    assert!(
        String::from_utf8_lossy(&log).contains("pwned-title\\u{7}"),
        "the log does not name the path"
    );
}

/// Item 3's must show: 80 `docker run --rm IMG true`, 4 at a time, are
/// every one attributed to their image in `profiles -o json`, and the
/// image's row counts 80 runs.
#[test]
fn eighty_short_lived_containers_at_four_in_parallel_keep_their_image() {
    require_root();
    let _serial = serial();
    busybox_rootfs();
    let dir = scratch("h31-burst");
    let _dockerd = Dockerd::start(&dir);
    let id = import_image("h31-burst");
    let daemon = Daemon(daemon::Daemon::start(
        "h31-burst",
        &[
            "--all",
            "--include-image",
            "h31-burst*",
            "--keep-per-image",
            "0",
        ],
    ));
    const RUNS: usize = 80;
    const AT_ONCE: usize = 4;
    let ids: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..AT_ONCE)
            .map(|w| {
                let dir = &dir;
                s.spawn(move || {
                    (0..RUNS / AT_ONCE)
                        .map(|i| {
                            let cidfile = dir.join(format!("cid-{w}-{i}"));
                            run_ok(&mut docker(&[
                                "run",
                                "--rm",
                                "--cidfile",
                                cidfile.to_str().unwrap(),
                                "h31-burst",
                                "true",
                            ]));
                            fs::read_to_string(&cidfile).unwrap().trim().to_owned()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert_eq!(ids.len(), RUNS);
    let written = wait_for("80 profiles", 120, || {
        let all = profiles(&daemon);
        let mine: Vec<serde_json::Value> = all
            .into_iter()
            .filter(|e| ids.iter().any(|i| e["key"] == i.as_str()))
            .collect();
        (mine.len() == RUNS).then_some(mine)
    });
    let lost: Vec<&serde_json::Value> = written
        .iter()
        .filter(|e| e["image"] != "h31-burst" || e["image_key"] != id.as_str())
        .collect();
    eprintln!("ACCEPTANCE {} of {RUNS} unattributed", lost.len());
    assert!(lost.is_empty(), "unattributed: {lost:?}");
    for e in &written {
        assert_eq!(e["runtime"], "docker", "{e}");
    }
    let row = wait_for("the image row", 30, || {
        images(&daemon).into_iter().find(|r| r["id"] == id.as_str())
    });
    assert_eq!(row["runs"], RUNS as u64, "{row}");
    let log = daemon.log_text();
    assert!(
        !log.contains("no OCI bundle found"),
        "a policy read too late:\n{log}"
    );
    _ = run(&mut docker(&["rmi", "-f", "h31-burst"]));
}
