//! Argument rules: recorded, then enforced.

use super::*;

/// A static program that makes the calls its arguments name and exits 3
/// when one fails.
const ARGPROG_C: &str = r#"
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/personality.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        long r = 0;
        if (!strcmp(argv[i], "unix")) r = socket(AF_UNIX, SOCK_STREAM, 0);
        else if (!strcmp(argv[i], "inet")) r = socket(AF_INET, SOCK_DGRAM, 0);
        else if (!strcmp(argv[i], "inet6")) r = socket(AF_INET6, SOCK_DGRAM, 0);
        else if (!strcmp(argv[i], "persona")) r = personality(0xffffffff);
        if (r < 0) { perror(argv[i]); return 3; }
    }
    puts("args ok");
    return 0;
}
"#;

#[test]
fn argument_rules_are_recorded_and_enforced() {
    require_root();
    let dir = scratch("profiles-args");
    let src = dir.join("argprog.c");
    fs::write(&src, ARGPROG_C).unwrap();
    let root = rootfs_copy(&dir);
    let out = run(Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(root.join("bin/argprog"))
        .arg(&src));
    assert!(out.status.success(), "gcc -static failed: {}", stderr(&out));
    let workload = ["/bin/argprog", "unix", "inet", "persona"];

    let b = bundle(&dir, &root, &workload, None, true);
    let path = dir.join("args.json");
    run_ok(
        recorderctl()
            .args(["record", "--args", "--format", "oci", "--out"])
            .arg(&path)
            .arg("--")
            .arg(wrapper(&dir))
            .arg(&b)
            .arg(container_id("args-rec")),
    );
    let seccomp = json(&fs::read_to_string(&path).unwrap());
    let rules = seccomp["syscalls"].as_array().unwrap();
    let socket_values: Vec<u64> = rules
        .iter()
        .filter(|r| r["names"] == json(r#"["socket"]"#))
        .map(|r| {
            assert_eq!(r["args"][0]["op"], "SCMP_CMP_EQ", "{r}");
            r["args"][0]["value"].as_u64().unwrap()
        })
        .collect();
    assert!(
        socket_values.contains(&1) && socket_values.contains(&2),
        "{socket_values:?}"
    );
    assert!(
        !socket_values.contains(&10),
        "AF_INET6 was never used: {socket_values:?}"
    );
    assert!(
        !rules
            .iter()
            .any(|r| r["args"].is_null()
                && r["names"].as_array().unwrap().iter().any(|n| n == "socket")),
        "socket must not be allowed unconditionally"
    );
    assert!(rules.iter().any(
        |r| r["names"] == json(r#"["personality"]"#) && r["args"][0]["value"] == 0xffff_ffffu64
    ));
    assert!(
        rules
            .iter()
            .any(|r| r["names"] == json(r#"["clone"]"#)
                && r["args"][0]["op"] == "SCMP_CMP_MASKED_EQ")
    );

    let b = bundle(&dir, &root, &workload, Some(seccomp.clone()), false);
    let out = run_ok(
        Command::new("runc")
            .arg("run")
            .arg("-b")
            .arg(&b)
            .arg(container_id("args-ok")),
    );
    assert_eq!(stdout(&out).trim(), "args ok");
    // A socket domain that was not recorded is refused.
    let b = bundle(
        &dir,
        &root,
        &["/bin/argprog", "unix", "inet6"],
        Some(seccomp),
        false,
    );
    let out = run(Command::new("runc")
        .arg("run")
        .arg("-b")
        .arg(&b)
        .arg(container_id("args-no")));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("inet6: Operation not permitted"),
        "{}",
        stderr(&out)
    );

    // The same rules as a Kafel policy, enforced by nsjail.
    let nsjail = nsjail();
    let prog = root.join("bin/argprog");
    let policy = dir.join("args.kafel");
    run_ok(
        recorderctl()
            .args(["record", "--args", "--format", "kafel", "--out"])
            .arg(&policy)
            .arg("--")
            .arg(&prog)
            .args(&workload[1..]),
    );
    let text = fs::read_to_string(&policy).unwrap();
    assert!(
        text.contains("socket(a0) { (a0 == 0x1) || (a0 == 0x2) }"),
        "{text}"
    );
    let jail = |args: &[&str]| {
        let mut c = Command::new(&nsjail);
        c.args(["-Mo", "--chroot", "/", "-q", "--seccomp_policy"])
            .arg(&policy)
            .arg("--")
            .arg(&prog)
            .args(args);
        c
    };
    let out = run_ok(&mut jail(&workload[1..]));
    assert_eq!(stdout(&out).trim(), "args ok");
    let out = run(&mut jail(&["unix", "inet6"]));
    assert!(
        stderr(&out).contains("inet6: Operation not permitted"),
        "{}",
        stderr(&out)
    );
}
