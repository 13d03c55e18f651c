//! A newcomer's first hour (issue 21): the command line does what it says.
//! The real binaries; the recording tests need root and the real kernel.

mod common;

use std::process::Output;

use common::{recorderctl, require_root, run, run_ok};

/// A cgroup parent of this test alone.
fn cgroup_parent(test: &str) -> String {
    format!("/recorder-newcomer-{test}-{}", std::process::id())
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `recorderctl record --cgroup-parent PARENT EXTRA... -- CMD...`, the
/// profile on stdout.
fn record(test: &str, extra: &[&str], cmd: &[&str]) -> Output {
    require_root();
    let mut c = recorderctl();
    c.args(["record", "--cgroup-parent", &cgroup_parent(test)])
        .args(extra)
        .arg("--")
        .args(cmd);
    run_ok(&mut c)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn errno_alone_sets_the_default_errno() {
    let out = record("errno", &["--errno", "13"], &["true"]);
    let p = json(&stdout(&out));
    assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO", "{p}");
    assert_eq!(p["defaultErrnoRet"], 13, "{p}");
}

#[test]
fn bad_errnos_and_caps_are_refused_in_one_line() {
    for args in [&["--errno", "99999"][..], &["--cap", "CAP_FOO"]] {
        let out = run(recorderctl()
            .args(["record"])
            .args(args)
            .args(["--", "true"]));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error:") && first.contains(args[1]),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn without_output_stdout_carries_the_profile_alone() {
    let out = record("streams", &[], &["sh", "-c", "echo hello"]);
    let p = json(&stdout(&out));
    assert!(p["syscalls"].is_array(), "{p}");
    assert!(
        stderr(&out).lines().any(|l| l == "hello"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn with_output_cmd_keeps_its_stdout() {
    let dir = common::scratch("newcomer-streams-o");
    let file = dir.join("p.json");
    let out = record(
        "streams-o",
        &["--out", file.to_str().unwrap()],
        &["sh", "-c", "echo hello"],
    );
    assert_eq!(stdout(&out), "hello\n");
    assert!(!stderr(&out).contains("hello"), "{}", stderr(&out));
    json(&std::fs::read_to_string(&file).unwrap());
}

#[test]
fn a_leftover_process_is_named_when_killed() {
    // A moment for the forked shell to exec sleep: until then it is "sh".
    let out = record(
        "leftover",
        &[],
        &["sh", "-c", "sleep 30 & sleep 0.3; echo started"],
    );
    let err = stderr(&out);
    assert!(
        err.contains("1 process that CMD left behind was killed: sleep (pid"),
        "{err}"
    );
    json(&stdout(&out));
}

#[test]
fn wait_all_records_what_a_background_process_does() {
    let dir = common::scratch("newcomer-wait-all");
    let script = format!("(sleep 1; mkdir {}/made-$$) & echo started", dir.display());
    let names = |extra: &[&str], test: &str| {
        let out = record(test, extra, &["sh", "-c", &script]);
        common::allowed_names(&stdout(&out))
    };
    let mkdir =
        |n: &std::collections::BTreeSet<String>| n.contains("mkdir") || n.contains("mkdirat");
    let without = names(&[], "nowait");
    assert!(
        !mkdir(&without),
        "the background process was killed: {without:?}"
    );
    let with = names(&["--wait-all"], "waitall");
    assert!(mkdir(&with), "{with:?}");
    let made = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(made, 1, "only the --wait-all run made its directory");
}

/// Runs recorderctl with `args` and a stdout whose reader is already gone;
/// returns its exit code and stderr.
fn with_closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = run(recorderctl()
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(writer)
        .stderr(std::process::Stdio::piped()));
    (out.status.code(), stderr(&out))
}

#[test]
fn a_closed_stdout_is_no_panic() {
    let a = "../profiles/runtime-runc.json";
    let b = "../profiles/base-podman-runc.json";
    for args in [
        &["completions", "zsh"][..],
        &["completions", "bash"],
        &["convert", a],
        &["convert", a, "--format", "kafel"],
        &["merge", a, b],
        &["diff", a, b],
        &["check", a],
    ] {
        let (code, err) = with_closed_stdout(args);
        assert_eq!(code, Some(141), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    for args in [&["--help"][..], &["record", "--help"], &["--version"]] {
        let (code, err) = with_closed_stdout(args);
        assert!(matches!(code, Some(0 | 141)), "{args:?}: {code:?} {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn a_closed_stdout_ends_a_recording_quietly() {
    require_root();
    let (code, err) = with_closed_stdout(&[
        "record",
        "--cgroup-parent",
        &cgroup_parent("closed"),
        "--",
        "true",
    ]);
    assert_eq!(code, Some(141), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Asserts that `args` fail with one line on stderr that has `cause` once.
fn fails_naming_once(args: &[&str], cause: &str) {
    let out = run(recorderctl().args(args));
    assert!(!out.status.success(), "{args:?}");
    let err = stderr(&out);
    assert_eq!(err.matches(cause).count(), 1, "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
}

#[test]
fn errors_name_their_cause_once() {
    require_root();
    let dir = common::scratch("newcomer-causes");
    let parent = cgroup_parent("causes");
    let missing = dir.join("missing");
    let missing_file = missing.join("p.json");
    let enoent = "No such file or directory";
    let d = dir.to_str().unwrap();
    let m = missing_file.to_str().unwrap();
    let rec = ["record", "--cgroup-parent", &parent];
    fails_naming_once(&[&rec[..], &["--out", m, "--", "true"]].concat(), enoent);
    fails_naming_once(
        &[&rec[..], &["--out", d, "--", "true"]].concat(),
        "it is a directory",
    );
    fails_naming_once(&[&rec[..], &["--base", m, "--", "true"]].concat(), enoent);
    fails_naming_once(&[&rec[..], &["--btf", m, "--", "true"]].concat(), enoent);
    fails_naming_once(&["convert", m], enoent);
    fails_naming_once(&["check", m], enoent);
    fails_naming_once(&["merge", m, m], enoent);
    fails_naming_once(
        &["convert", "../profiles/runtime-runc.json", "--out", m],
        enoent,
    );
}

#[test]
fn profile_commands_share_one_exit_code_convention() {
    let dir = common::scratch("newcomer-exit");
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{ not json").unwrap();
    let bad = bad.to_str().unwrap();
    let good = "../profiles/runtime-runc.json";
    for args in [
        &["check", bad][..],
        &["convert", bad],
        &["convert", bad, "--format", "oci"],
        &["merge", bad, good],
        &["merge", good, bad],
        &["diff", bad, good],
    ] {
        let out = run(recorderctl().args(args));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    for cmd in ["check", "convert", "merge", "diff"] {
        let help = stdout(&run_ok(recorderctl().args([cmd, "--help"])));
        assert!(help.contains("Exit status: 0"), "{cmd}: {help}");
        assert!(help.contains("2 on trouble"), "{cmd}: {help}");
    }
}

#[test]
fn every_shipped_profile_passes_recorderctl_check() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../profiles"));
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let out = run_ok(recorderctl().arg("check").arg(&path));
            assert!(stdout(&out).ends_with(": ok\n"), "{}", stdout(&out));
            seen += 1;
        }
    }
    assert!(seen >= 2);
}

#[test]
fn socket_goes_before_or_after_the_command_or_in_the_environment() {
    require_root();
    let d = common::daemon::Daemon::start("newcomer-socket", &[]);
    let socket = d.socket.to_str().unwrap();
    for args in [
        &["--socket", socket, "status", "--output", "json"][..],
        &["status", "--socket", socket, "--output", "json"],
        &["--socket", socket, "list"],
    ] {
        let out = run_ok(recorderctl().args(args).env_remove("RECORDER_SOCKET"));
        assert!(!stdout(&out).is_empty(), "{args:?}");
    }
    let out = run_ok(
        recorderctl()
            .args(["status", "--output", "json"])
            .env("RECORDER_SOCKET", socket),
    );
    json(&stdout(&out));
    // A daemon command whose stdout is closed ends quietly too.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = run(recorderctl()
        .args(["--socket", socket, "status"])
        .stdout(writer));
    assert_eq!(out.status.code(), Some(141), "{}", stderr(&out));
    // The flag wins over the environment.
    let out = run(recorderctl()
        .args(["--socket", "/nonexistent/sock", "status"])
        .env("RECORDER_SOCKET", socket));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/nonexistent/sock"),
        "{}",
        stderr(&out)
    );
}

/// Runs `cmd` and returns its stderr, asserting a usage error (exit 2).
fn usage_error(cmd: &mut std::process::Command) -> String {
    let out = run(cmd);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(out.stdout.is_empty(), "{err}");
    err
}

#[test]
fn usage_lines_do_not_make_the_socket_look_required() {
    let good = "../profiles/runtime-runc.json";
    for args in [
        &["drift", "--socket", "/s"][..],
        &["profile", "--socket", "/s", "--image", "x", "--bogus"],
        &["--socket", "/s", "convert"],
        &["merge", "--socket", "/s", good],
    ] {
        let err = usage_error(recorderctl().args(args));
        let usage = err.lines().find(|l| l.starts_with("Usage:")).unwrap();
        assert!(
            usage.contains("[OPTIONS]") && !usage.contains("--socket"),
            "{args:?}: {err}"
        );
    }
    // The profile commands do not use the socket: not in their help.
    for cmd in ["record", "convert", "merge", "diff", "check"] {
        let help = stdout(&run_ok(recorderctl().args([cmd, "--help"])));
        assert!(!help.contains("--socket"), "{cmd}: {help}");
    }
    let help = stdout(&run_ok(recorderctl().args(["status", "--help"])));
    assert!(help.contains("--socket"), "{help}");
}

#[test]
fn convert_format_json_points_at_docker() {
    let good = "../profiles/runtime-runc.json";
    let err = usage_error(recorderctl().args(["convert", good, "--format", "json"]));
    assert!(err.contains("--format docker"), "{err}");
    assert!(!err.contains("'spo'"), "{err}");
}

#[test]
fn recorderd_blames_a_bad_scope_glob_on_its_flag_or_key() {
    let dir = common::scratch("newcomer-scope");
    let recorderd = || std::process::Command::new(common::recorderd_path());
    for (flag, value, says) in [
        ("--include-label", "app", "app=*"),
        ("--include-image", "foo[*", "bad glob"),
    ] {
        let err = usage_error(recorderd().args([flag, value]));
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.contains(flag) && first.contains(value) && first.contains(says),
            "{err}"
        );
    }
    // In the file: one line naming the file, the key and the value, a
    // usage error as a bad flag is (exit 2). No root needed: the config
    // is read before anything is loaded.
    let config = dir.join("r.toml");
    std::fs::write(&config, "[scope]\ninclude_labels = [\"app\"]\n").unwrap();
    let out = run(recorderd().arg("--config").arg(&config));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("r.toml") && err.contains("include_labels: 'app'") && err.contains("app=*"),
        "{err}"
    );
    // With a good file, a bad flag is still the flag's fault.
    std::fs::write(&config, "[scope]\ninclude_labels = [\"app=*\"]\n").unwrap();
    let err = usage_error(
        recorderd()
            .arg("--config")
            .arg(&config)
            .args(["--exclude-image", "foo[*"]),
    );
    assert!(
        err.contains("--exclude-image") && !err.contains("r.toml"),
        "{err}"
    );
}
