//! The docker-format model: round trips, and malformed input located.

use super::*;

#[test]
fn complex_fixture_round_trips() {
    let text = fs::read_to_string(fixture()).unwrap();
    let profile = recorder::profile::Profile::read(&fixture()).unwrap();
    // Every field of the docker format is in the fixture and in the model.
    assert_eq!(profile.default_errno_ret, Some(1));
    assert_eq!(
        profile.arch_map[0].sub_architectures,
        vec!["SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    );
    assert_eq!(
        profile.listener_path.as_deref(),
        Some("/run/seccomp-agent.socket")
    );
    assert_eq!(
        profile.listener_metadata.as_deref(),
        Some("profile=complex")
    );
    assert_eq!(profile.flags.len(), 2);
    assert_eq!(profile.syscalls[1].name.as_deref(), Some("getpid"));
    assert_eq!(profile.syscalls[3].args[0].value, 4_294_967_295);
    assert_eq!(profile.syscalls[4].excludes.caps, vec!["CAP_SYS_ADMIN"]);
    assert_eq!(profile.syscalls[6].args[2].value, u64::MAX);
    assert_eq!(
        profile.syscalls[7].includes.min_kernel.as_deref(),
        Some("4.8")
    );
    assert_eq!(profile.syscalls[10].errno_ret, Some(38));
    assert!(profile.extra.is_empty() && profile.syscalls.iter().all(|r| r.extra.is_empty()));
    // Written again, nothing is lost or changed.
    assert_eq!(json(&profile.to_json()), json(&text));
    // And the same through the command line.
    let out = run_ok(
        recorderctl()
            .args(["convert", "--format", "docker"])
            .arg(fixture()),
    );
    assert_eq!(json(&stdout(&out)), json(&text));
    let out = run_ok(recorderctl().arg("check").arg(fixture()));
    assert!(stdout(&out).contains(": ok"), "{}", stdout(&out));
}

#[test]
fn malformed_input_names_file_line_and_column() {
    let dir = scratch("profiles-malformed");
    let bad = dir.join("bad.json");
    fs::write(&bad, "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscalls\": [\n    {\"names\": [\"read\"] \"action\": 1}\n  ]\n}\n").unwrap();
    for args in [
        vec!["check"],
        vec!["convert", "--format", "oci"],
        vec!["diff"],
        vec!["merge"],
    ] {
        let mut cmd = recorderctl();
        cmd.args(&args).arg(&bad);
        if args.len() == 1 && args[0] != "check" {
            cmd.arg(fixture());
        }
        let out = run(&mut cmd);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} accepted a malformed file");
        assert!(
            err.contains(&format!("{}: line 4, column 24", bad.display())),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        // Trouble (here: a file that cannot be parsed) is 2 for every
        // profile command (cli::profile::EXIT_STATUS).
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    }
    // A wrong type inside a rule is located too.
    fs::write(&bad, "{\"defaultAction\": \"SCMP_ACT_ERRNO\",\n\"syscalls\": [{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\",\n \"args\": [{\"index\": -1, \"value\": 0, \"op\": \"SCMP_CMP_EQ\"}]}]}\n").unwrap();
    let out = run(recorderctl().arg("check").arg(&bad));
    assert!(stderr(&out).contains("line 3, column"), "{}", stderr(&out));
    let out = run(recorderctl().arg("check").arg(dir.join("missing.json")));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing.json"), "{}", stderr(&out));
}
