//! One meaning per flag name (issue 21): `-o/--output FORMAT` is a report's
//! format on every command, `--out FILE` is where a profile is written, and
//! the old `-o FILE` or a format given as a file fail at once with a hint.
//! The tests without a daemon need no root.

mod common;

use std::{path::Path, process::Output};

use common::{recorderctl, require_root, run, run_ok};

const A: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../profiles/runtime-runc.json");
const B: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../profiles/base-podman-runc.json"
);

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs recorderctl `args` in `dir`; asserts a usage error (exit 2) whose
/// first line is clap's error and has `hint`, and that nothing ran.
fn usage_error_with(dir: &Path, args: &[&str], hint: &str) {
    let out = run(recorderctl().args(args).current_dir(dir));
    assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    let err = stderr(&out);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error:") && first.contains(hint),
        "{args:?}: {err}"
    );
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?}");
}

/// The names of the files in `dir`.
fn files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn merge_output_json_writes_no_file_named_json() {
    let dir = common::scratch("output-flag-merge");
    for args in [
        &["merge", A, B, "--output", "json"][..],
        &["merge", A, B, "-o", "json"],
        &["convert", A, "--output", "text"],
    ] {
        usage_error_with(&dir, args, "--format");
        usage_error_with(&dir, args, "--out");
    }
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
}

#[test]
fn the_old_record_o_file_form_names_out() {
    let dir = common::scratch("output-flag-record");
    // Refused by the parser: no root needed, and CMD never runs.
    usage_error_with(
        &dir,
        &["record", "-o", "app.json", "--", "touch", "ran"],
        "--out app.json",
    );
    usage_error_with(
        &dir,
        &["record", "--output", "app.json", "--", "touch", "ran"],
        "--out app.json",
    );
    usage_error_with(&dir, &["convert", A, "-o", "b.json"], "--out b.json");
    usage_error_with(&dir, &["merge", A, B, "-o", "ab.json"], "--out ab.json");
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
}

#[test]
fn a_format_name_given_as_a_file_is_refused() {
    let dir = common::scratch("output-flag-names");
    for name in ["json", "text", "yaml", "docker", "oci", "spo", "kafel"] {
        let hint = format!("--out ./{name}");
        usage_error_with(&dir, &["merge", A, B, "--out", name], &hint);
        usage_error_with(&dir, &["convert", A, "--out", name], &hint);
        usage_error_with(&dir, &["record", "--out", name, "--", "true"], &hint);
        usage_error_with(&dir, &["profile", "web", "--out", name], &hint);
        usage_error_with(&dir, &["drift", "web", "--widen", "--out", name], &hint);
    }
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    // A path that only ends in a format name is a file.
    run_ok(
        recorderctl()
            .args(["merge", A, B, "--out", "./json"])
            .current_dir(&dir),
    );
    assert_eq!(files(&dir), ["json"]);
}

#[test]
fn drift_holds_to_what_it_prints() {
    let dir = common::scratch("output-flag-drift");
    // --out goes with --widen only (refused before any daemon is asked).
    usage_error_with(
        &dir,
        &["drift", "--all", "--out", "x.json"],
        "cannot be used with",
    );
    usage_error_with(&dir, &["drift", "web", "--out", "x.json"], "required");
    // --widen prints a profile: -o is refused as by every such command.
    usage_error_with(&dir, &["drift", "web", "--widen", "-o", "json"], "--format");
    usage_error_with(
        &dir,
        &["drift", "web", "--widen", "-o", "next.json"],
        "invalid value",
    );
    let out = run(recorderctl()
        .args(["drift", "web", "--widen", "-o", "next.json"])
        .current_dir(&dir));
    assert!(stderr(&out).contains("drift --widen"), "{}", stderr(&out));
    // Without --widen it prints a report: no profile options.
    for args in [
        &["drift", "web", "--format", "spo"][..],
        &["drift", "--all", "--default-action", "log"],
    ] {
        usage_error_with(&dir, args, "without --widen");
    }
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
}

#[test]
fn out_writes_the_file() {
    let dir = common::scratch("output-flag-out");
    let merged = dir.join("ab.json");
    let out = run_ok(recorderctl().args(["merge", A, B, "--out"]).arg(&merged));
    assert!(out.stdout.is_empty());
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&merged).unwrap()).unwrap();
    assert!(v["syscalls"].is_array(), "{v}");
    let kafel = dir.join("a.kafel");
    let out = run_ok(
        recorderctl()
            .args(["convert", A, "--format", "kafel", "--out"])
            .arg(&kafel),
    );
    assert!(out.stdout.is_empty());
    assert!(
        std::fs::read_to_string(&kafel).unwrap().contains("POLICY "),
        "kafel"
    );
}

#[test]
fn record_out_writes_the_file() {
    require_root();
    let dir = common::scratch("output-flag-record-out");
    let file = dir.join("p.json");
    let parent = format!("/recorder-output-flag-{}", std::process::id());
    let out = run_ok(
        recorderctl()
            .args(["record", "--cgroup-parent", &parent, "--out"])
            .arg(&file)
            .args(["--", "sh", "-c", "echo hello"]),
    );
    // CMD keeps its stdout when the profile goes to a file.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(v["syscalls"].is_array(), "{v}");
}

#[test]
fn o_json_on_the_daemon_commands() {
    require_root();
    let d = common::daemon::Daemon::start("output-flag", &[]);
    let json = |args: &[&str]| -> serde_json::Value {
        let text = d.ctl_ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {text}"))
    };
    assert!(json(&["list", "-o", "json"]).is_array());
    assert!(json(&["profiles", "-o", "json"]).is_array());
    assert!(json(&["status", "-o", "json"])["version"].is_string());
    assert!(json(&["status", "--output=json"])["version"].is_string());
    // Before and after the positional CONTAINER: parsed (the daemon answers
    // that there is no such recording), never a usage error.
    for args in [
        &["stop", "-o", "json", "nonesuch"][..],
        &["stop", "nonesuch", "-o", "json"],
    ] {
        let out = run(&mut d.ctl(args));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("nonesuch"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // A file where a format goes: the hint names --out.
    let out = run(&mut d.ctl(&["list", "-o", "list.json"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--out FILE"), "{}", stderr(&out));
}
