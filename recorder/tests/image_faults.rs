//! Image profiles under faults (issue 31, items 4 and 5), with recorderd
//! in auto mode and real docker containers of an image of this test's
//! own: an image file that cannot be written (a read-only `images/`) is
//! counted, shown in `status` and written once the fault clears; a
//! damaged index (emptied, or overwritten with garbage) is said to be so,
//! moved aside and started anew, and no image file shrinks. And the file
//! follows every change of its row, not only growth (item 6).

mod common;
mod support;

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use common::*;
use support::*;

const ALL: &str =
    "mkdir /tmp/d && touch /tmp/f && chmod 600 /tmp/f && ln -s /tmp/x /tmp/l && echo DONE";
const SMALL: &str = "echo DONE";

/// The row of image `id` once it has at least `runs` runs.
fn row(daemon: &Daemon, id: &str, runs: u64) -> serde_json::Value {
    wait_for("the image row", 60, || {
        let out = daemon.ctl_ok(&["images", "--output", "json"]);
        let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        rows.into_iter()
            .find(|r| r["id"] == id && r["runs"].as_u64() >= Some(runs))
    })
}

/// The image file of a row.
fn file_of(daemon: &Daemon, row: &serde_json::Value) -> PathBuf {
    let label = row["label"].as_str().unwrap();
    daemon
        .profiles
        .join("images")
        .join(recorder::images::file_name(label))
}

fn scrape(addr: &str) -> String {
    let mut resp = ureq::get(&format!("http://{addr}/metrics"))
        .call()
        .expect("/metrics answers");
    resp.body_mut().read_to_string().unwrap()
}

/// A read-only bind mount of a directory on itself, undone when dropped
/// (root ignores mode bits; a read-only mount fails its writes, EROFS).
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn mount(dir: &Path) -> Self {
        fs::create_dir_all(dir).unwrap();
        let d = dir.to_str().unwrap();
        run_ok(Command::new("mount").args(["--bind", d, d]));
        let ro = Self(dir.to_owned());
        run_ok(Command::new("mount").args(["-o", "remount,bind,ro", d]));
        ro
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_images_dir_is_counted_shown_and_written_once_writable() {
    require_root();
    let _serial = serial();
    let dir = scratch("image-faults-ro");
    let _dockerd = Dockerd::start(&dir);
    let tag = "recorder-robust/faults-ro:1";
    let id = import_image(tag);
    let metrics = format!("127.0.0.1:{}", free_port());
    let daemon = Daemon(daemon::Daemon::start(
        "image-faults-ro",
        &["--all", "--metrics-addr", &metrics],
    ));
    let images_dir = daemon.profiles.join("images");
    let read_only = ReadOnly::mount(&images_dir);
    assert!(
        fs::write(images_dir.join("probe"), "").is_err(),
        "not read-only"
    );

    run_container(&daemon, &dir, &[], tag, ALL);
    let r = row(&daemon, &id, 1);
    let file = file_of(&daemon, &r);
    // Counted, and shown in status, while the fault lasts.
    let status = wait_for("the pending image file in status", 30, || {
        let s = daemon.status();
        (s["pending_image_writes"].as_u64() >= Some(1)).then_some(s)
    });
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("image profile of"), "{status}");
    let text = daemon.ctl_ok(&["status"]);
    assert!(text.contains("pending images:"), "{text}");
    let counted = scrape(&metrics)
        .lines()
        .find_map(|l| l.strip_prefix("recorder_errors_total{reason=\"profile_write\"} "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(counted >= Some(1), "profile_write errors: {counted:?}");
    assert!(!file.exists());

    // The fault clears: the file is written on a tick, with no new run.
    drop(read_only);
    let text = wait_for("the image file", 60, || {
        fs::read_to_string(&file).ok().filter(|t| !t.is_empty())
    });
    let names = allowed_names(&text);
    assert!(
        names.contains("mkdir") && names.contains("symlink"),
        "{names:?}"
    );
    let profile = daemon.ctl_ok(&["profile", "--image", tag]);
    assert_eq!(allowed_names(&profile), names);
    wait_for("no pending image file", 30, || {
        (daemon.status()["pending_image_writes"] == 0).then_some(())
    });
}

/// Damages `index.redb` as `how` says, with the daemon stopped.
fn damage(state: &Path, how: &str) {
    let path = state.join("index.redb");
    match how {
        "emptied" => fs::File::create(&path).map(drop).unwrap(),
        _ => {
            use std::os::unix::fs::FileExt as _;
            let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
            let len = f.metadata().unwrap().len();
            // Garbage (not zeros) after the first page.
            let junk: Vec<u8> = (0..len - 4096)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
                .collect();
            f.write_all_at(&junk, 4096).unwrap();
        }
    }
}

fn moved_aside(state: &Path) -> usize {
    fs::read_dir(state)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("index.redb.damaged-")
        })
        .count()
}

#[test]
fn a_damaged_index_is_said_moved_aside_and_no_image_file_shrinks() {
    require_root();
    let _serial = serial();
    let dir = scratch("image-faults-index");
    let _dockerd = Dockerd::start(&dir);
    let tag = "recorder-robust/faults-index:1";
    let id = import_image(tag);
    let mut daemon = Daemon(daemon::Daemon::start("image-faults-index", &["--all"]));
    let state = daemon.dir.join("state");

    run_container(&daemon, &dir, &[], tag, ALL);
    let file = file_of(&daemon, &row(&daemon, &id, 1));
    let before: BTreeSet<String> = allowed_names(&wait_for_file(&file));
    assert!(before.contains("symlink"), "{before:?}");

    for (n, how) in (1..).zip(["emptied", "corrupted"]) {
        daemon.0.signal(libc::SIGTERM);
        damage(&state, how);
        daemon.0.spawn();
        // Said loudly (log and status), and moved aside.
        let status = wait_for("the damage in status", 30, || {
            let s = daemon.status();
            let e = s["last_error"].as_str().unwrap_or_default().to_owned();
            e.contains("is damaged").then_some(e)
        });
        assert!(status.contains("moved to"), "{how}: {status}");
        assert_eq!(moved_aside(&state), n, "{how}");
        let log = daemon.log_text();
        let said = log
            .lines()
            .filter(|l| l.contains("ERROR") && l.contains("is damaged"))
            .count();
        assert_eq!(said, n, "{how}: {log}");
        assert!(daemon.status()["unhealthy"].is_null(), "{how}: repaired");

        // A smaller run of the image: the file keeps every name it had.
        run_container(&daemon, &dir, &[], tag, SMALL);
        let r = row(&daemon, &id, 1);
        assert_eq!(r["runs"], 1, "{how}: the runs count again: {r}");
        let after = allowed_names(&fs::read_to_string(&file).unwrap());
        assert!(after.is_superset(&before), "{how}: {before:?} -> {after:?}");
        let answer = daemon.ctl_ok(&["profile", "--image", tag]);
        assert_eq!(allowed_names(&answer), after, "{how}");
    }
}

/// A run that adds no syscall but new answers (those of the seccomp
/// profile it ran under, for syscalls it did not make): the image file
/// changes with the row, and holds what `profile --image` answers.
#[test]
fn the_image_file_follows_changes_that_are_not_growth() {
    require_root();
    let _serial = serial();
    let dir = scratch("image-faults-answers");
    let _dockerd = Dockerd::start(&dir);
    let tag = "recorder-robust/faults-answers:1";
    let id = import_image(tag);
    let daemon = Daemon(daemon::Daemon::start(
        "image-faults-answers",
        &["--all", "--skip-chosen-profile", "false"],
    ));
    run_container(&daemon, &dir, &[], tag, ALL);
    let first = fs::read_to_string(file_of(&daemon, &row(&daemon, &id, 1))).unwrap();
    // Everything allowed, but two syscalls the workload never makes
    // answer ENOSYS: the profile carries that answer.
    let policy = dir.join("enosys.json");
    let rule =
        r#"{"names": ["mbind", "set_mempolicy"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}"#;
    fs::write(
        &policy,
        format!(r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{rule}]}}"#),
    )
    .unwrap();
    let seccomp = format!("seccomp={}", policy.display());
    run_container(&daemon, &dir, &["--security-opt", &seccomp], tag, SMALL);
    let r = row(&daemon, &id, 2);
    assert_eq!(
        r["runs_since_last_new"], 1,
        "the second run grew the union: {r}"
    );
    let answer = daemon.ctl_ok(&["profile", "--image", tag]);
    assert!(answer.contains("mbind"), "no ENOSYS block: {answer}");
    assert!(!first.contains("mbind"), "{first}");
    let file = fs::read_to_string(file_of(&daemon, &r)).unwrap();
    let json = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap();
    assert_eq!(json(&file), json(&answer));
}
