//! Every output format enforced by the tool that reads it: docker by
//! podman, OCI by runc, kafel by nsjail.

use super::*;

/// The workload of the container tests: it needs mkdir, which runc's init
/// does not need after it loads the filter.
const WORKLOAD: &[&str] = &[
    "/bin/sh",
    "-c",
    "mkdir /tmp/d && echo ok > /tmp/d/f && cat /tmp/d/f && rm -r /tmp/d",
];

#[test]
fn docker_format_is_enforced_by_podman() {
    require_root();
    let dir = scratch("profiles-podman");
    let root = rootfs_copy(&dir);
    let profile = record_container(&dir, &root, WORKLOAD, "docker");
    let names = common::allowed_names(&profile);
    assert!(
        names.contains("mkdir") || names.contains("mkdirat"),
        "{names:?}"
    );
    let path = dir.join("profile.json");
    fs::write(&path, &profile).unwrap();
    let opt = format!("seccomp={}", path.display());
    let out = run_ok(&mut podman(&root, &["--security-opt", &opt], WORKLOAD));
    assert_eq!(stdout(&out).trim(), "ok");

    let denied = dir.join("no-mkdir.json");
    common::without(&profile, &["mkdir", "mkdirat"], &denied);
    let opt = format!("seccomp={}", denied.display());
    let out = run(&mut podman(&root, &["--security-opt", &opt], WORKLOAD));
    assert!(
        !out.status.success(),
        "mkdir was removed but the workload ran: {}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn oci_format_is_enforced_by_runc() {
    require_root();
    let dir = scratch("profiles-runc");
    let root = rootfs_copy(&dir);
    let seccomp = json(&record_container(&dir, &root, WORKLOAD, "oci"));
    assert!(seccomp.get("archMap").is_none());
    assert!(
        seccomp["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r.get("includes").is_none() && r.get("comment").is_none())
    );
    let names: Vec<&str> = seccomp["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["names"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
        })
        .collect();
    let mkdir: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.starts_with("mkdir"))
        .collect();
    assert!(!mkdir.is_empty(), "{names:?}");

    let b = bundle(&dir, &root, WORKLOAD, Some(seccomp.clone()), false);
    let out = run_ok(
        Command::new("runc")
            .arg("run")
            .arg("-b")
            .arg(&b)
            .arg(container_id("oci-ok")),
    );
    assert_eq!(stdout(&out).trim(), "ok");

    let mut denied = seccomp;
    for rule in denied["syscalls"].as_array_mut().unwrap() {
        rule["names"]
            .as_array_mut()
            .unwrap()
            .retain(|n| !n.as_str().unwrap().starts_with("mkdir"));
    }
    let b = bundle(&dir, &root, WORKLOAD, Some(denied), false);
    let out = run(Command::new("runc")
        .arg("run")
        .arg("-b")
        .arg(&b)
        .arg(container_id("oci-no")));
    assert!(
        !out.status.success(),
        "mkdir was removed but the workload ran: {}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn kafel_format_is_enforced_by_nsjail() {
    require_root();
    let dir = scratch("profiles-nsjail");
    let nsjail = nsjail();
    let busybox = common::busybox_rootfs().join("bin/busybox");
    // uname: Kafel calls it newuname on x86_64, so the name mapping is
    // exercised; nsjail loads the policy just before it execs the workload.
    let jail = |policy: Option<&Path>| {
        let mut c = Command::new(&nsjail);
        c.args(["-Mo", "--chroot", "/", "-q"]);
        if let Some(p) = policy {
            c.arg("--seccomp_policy").arg(p);
        }
        c.arg("--").arg(&busybox).args(["uname", "-s"]);
        c
    };
    let docker = dir.join("profile.json");
    let mut cmd = recorderctl();
    cmd.args(["record", "--out"]).arg(&docker).arg("--");
    cmd.arg(jail(None).get_program())
        .args(jail(None).get_args());
    run_ok(&mut cmd);
    let profile = fs::read_to_string(&docker).unwrap();
    assert!(
        common::allowed_names(&profile).contains("uname"),
        "{profile}"
    );

    let policy = dir.join("policy.kafel");
    run_ok(
        recorderctl()
            .args([
                "convert",
                "--format",
                "kafel",
                "--name",
                "busybox-uname",
                "--out",
            ])
            .arg(&policy)
            .arg(&docker),
    );
    let text = fs::read_to_string(&policy).unwrap();
    assert!(
        text.contains("POLICY busybox_uname {")
            && text.contains("USE busybox_uname DEFAULT ERRNO(1)"),
        "{text}"
    );
    let out = run_ok(&mut jail(Some(&policy)));
    assert_eq!(stdout(&out).trim(), "Linux", "{}", stderr(&out));

    let denied_docker = dir.join("no-uname.json");
    common::without(&profile, &["uname"], &denied_docker);
    let denied = dir.join("no-uname.kafel");
    run_ok(
        recorderctl()
            .args(["convert", "--format", "kafel", "--out"])
            .arg(&denied)
            .arg(&denied_docker),
    );
    let out = run(&mut jail(Some(&denied)));
    assert_ne!(
        stdout(&out).trim(),
        "Linux",
        "uname was removed but the workload printed it"
    );
    assert!(
        !stderr(&out).contains("Could not compile policy"),
        "{}",
        stderr(&out)
    );
}
