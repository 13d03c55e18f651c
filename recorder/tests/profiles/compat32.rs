//! 32-bit compat syscalls, and recording on top of a base profile with a
//! default action.

use super::*;

/// A static i386 program that calls getuid32, a syscall x86_64 does not
/// have, and exits 3 if it fails.
const COMPAT32_C: &str = r#"
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(void) {
    long uid = syscall(SYS_getuid32);
    if (uid < 0) { perror("getuid32"); return 3; }
    printf("compat32 ok\n");
    return 0;
}
"#;

#[cfg(target_arch = "x86_64")]
#[test]
fn compat32_profile_runs_in_podman() {
    require_root();
    let dir = scratch("profiles-compat32");
    let src = dir.join("compat32.c");
    fs::write(&src, COMPAT32_C).unwrap();
    let root = rootfs_copy(&dir);
    let bin = root.join("bin/compat32");
    let out = run(Command::new("gcc")
        .args(["-m32", "-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src));
    assert!(
        out.status.success(),
        "gcc -m32 -static failed (cargo xtask setup installs gcc-multilib): {}",
        stderr(&out)
    );
    let profile = record_container(&dir, &root, &["/bin/compat32"], "docker");
    let parsed = json(&profile);
    let rules = parsed["syscalls"].as_array().unwrap();
    let compat: Vec<&Value> = rules
        .iter()
        .filter(|r| {
            r["comment"]
                .as_str()
                .is_some_and(|c| c.contains("SCMP_ARCH_X86 "))
        })
        .collect();
    assert_eq!(compat.len(), 1, "one rule for i386 syscalls: {profile}");
    let compat = compat[0];
    // Limited to hosts of the recording's architecture, in the naming
    // podman matches includes.arches with.
    assert_eq!(
        compat["includes"]["arches"],
        json(r#"["amd64"]"#),
        "{profile}"
    );
    let i386: Vec<&str> = compat["names"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(i386.contains(&"getuid32"), "{i386:?}");
    assert!(i386.contains(&"set_thread_area"), "{i386:?}");
    for r in rules.iter().filter(|r| r["comment"].is_null()) {
        let names = r["names"].as_array().unwrap();
        assert!(
            !names.iter().any(|n| n == "getuid32"),
            "getuid32 in a native rule: {profile}"
        );
    }

    let path = dir.join("profile.json");
    fs::write(&path, &profile).unwrap();
    let opt = format!("seccomp={}", path.display());
    let out = run_ok(&mut podman(
        &root,
        &["--security-opt", &opt],
        &["/bin/compat32"],
    ));
    assert_eq!(stdout(&out).trim(), "compat32 ok");

    let denied = dir.join("no-getuid32.json");
    common::without(&profile, &["getuid32"], &denied);
    let opt = format!("seccomp={}", denied.display());
    let out = run(&mut podman(
        &root,
        &["--security-opt", &opt],
        &["/bin/compat32"],
    ));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("getuid32: Operation not permitted"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn record_takes_a_base_and_a_default_action() {
    require_root();
    let dir = scratch("profiles-record-base");
    let base = dir.join("base.json");
    fs::write(
        &base,
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"names":["reboot","write"],"action":"SCMP_ACT_ALLOW"},
        {"names":["ptrace"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
    )
    .unwrap();
    let out_path = dir.join("p.json");
    run_ok(
        recorderctl()
            .args(["record", "--default-action", "log", "--base"])
            .arg(&base)
            .arg("--out")
            .arg(&out_path)
            .args(["--", "/bin/sh", "-c", "echo hi"]),
    );
    let p = json(&fs::read_to_string(&out_path).unwrap());
    assert_eq!(p["defaultAction"], "SCMP_ACT_LOG", "audit mode");
    assert!(p.get("defaultErrnoRet").is_none(), "{p:#}");
    let rules = p["syscalls"].as_array().unwrap();
    let allow = &rules[0]["names"];
    // Recorded and base names share one sorted rule, each once.
    assert!(
        allow.as_array().unwrap().iter().any(|n| n == "reboot"),
        "{p:#}"
    );
    assert!(
        allow.as_array().unwrap().iter().any(|n| n == "execve"),
        "{p:#}"
    );
    assert_eq!(
        allow
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| *n == "write")
            .count(),
        1
    );
    let ptrace = rules
        .iter()
        .find(|r| r["names"][0] == "ptrace")
        .expect("base's errno rule kept");
    assert_eq!(ptrace["errnoRet"], 38);
}
