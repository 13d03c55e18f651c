//! Profiles users can use anywhere: the docker-format model round-trips,
//! every output format is enforced by the tool that reads it (podman, runc,
//! nsjail) or parsed back, and the engineering commands (check, diff, merge)
//! do what they say.
//!
//! How the enforced profiles are recorded: a profile must cover what the
//! container runtime's init does after it loads the filter, not only the
//! workload. So the workload is recorded *as a container*: `recorderctl
//! record` runs a small wrapper that writes the bundle's
//! `linux.cgroupsPath` as the wrapper's own cgroup and execs `runc run`.
//! runc, its init and the workload then all run in the recorded cgroup: the
//! profile is a superset of what the container needs (it also has runc's
//! own syscalls), which is sound for enforcement. Each enforcement test
//! then removes a syscall only the workload needs and checks that the
//! workload fails: a test that passed with the profile not applied would
//! be worthless.

mod common;

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use common::{recorderctl, require_root, run, run_ok, scratch};
use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/fixtures/complex.json")
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// ---------------------------------------------------------------- model --

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
        let want = if args[0] == "check" || args[0] == "diff" {
            2
        } else {
            1
        };
        assert_eq!(out.status.code(), Some(want), "{args:?}: {err}");
    }
    // A wrong type inside a rule is located too.
    fs::write(&bad, "{\"defaultAction\": \"SCMP_ACT_ERRNO\",\n\"syscalls\": [{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\",\n \"args\": [{\"index\": -1, \"value\": 0, \"op\": \"SCMP_CMP_EQ\"}]}]}\n").unwrap();
    let out = run(recorderctl().arg("check").arg(&bad));
    assert!(stderr(&out).contains("line 3, column"), "{}", stderr(&out));
    let out = run(recorderctl().arg("check").arg(dir.join("missing.json")));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing.json"), "{}", stderr(&out));
}

// ------------------------------------------------------------- commands --

#[test]
fn check_reports_each_error_class_with_its_path() {
    let dir = scratch("profiles-check");
    let p = dir.join("p.json");
    fs::write(
        &p,
        r#"{
  "defaultAction": "SCMP_ACT_DENY",
  "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
  "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": []}],
  "syscalls": [
    {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
    {"names": ["openat"], "action": "SCMP_ACT_ALLOW"},
    {"names": ["close", "frobnicate", "getuid32", "close"], "action": "SCMP_ACT_ALLOW"},
    {"names": ["socket"], "action": "SCMP_ACT_PERMIT",
     "args": [{"index": 7, "value": 1, "valueTwo": 0, "op": "SCMP_CMP_SAME"}]},
    {"names": ["write"], "action": "SCMP_ACT_ALLOW"},
    {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["SCMP_ARCH_X86"]}}
  ]
}"#,
    )
    .unwrap();
    let out = run(recorderctl().arg("check").arg(&p));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    for want in [
        "$.defaultAction: unknown action \"SCMP_ACT_DENY\"",
        "$.archMap: both architectures and archMap are set",
        "$.syscalls[2].names[1]: unknown syscall \"frobnicate\"",
        "$.syscalls[2].names[3]: duplicate name \"close\"",
        "$.syscalls[3].action: unknown action \"SCMP_ACT_PERMIT\"",
        "$.syscalls[3].args[0].index: argument index 7 is above 5",
        "$.syscalls[3].args[0].op: unknown operator \"SCMP_CMP_SAME\"",
        "$.syscalls[4].names[0]: duplicate name \"write\" (also at $.syscalls[0].names[1]",
        "$.syscalls[5].includes.arches[0]: unknown architecture \"SCMP_ARCH_X86\"",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // getuid32 is an i386 name and SCMP_ARCH_X86 is listed: no problem.
    assert!(!text.contains("getuid32"), "{text}");
    assert_eq!(text.lines().count(), 9, "{text}");
    for line in text.lines() {
        assert!(line.starts_with(&format!("{}: $.", p.display())), "{line}");
    }
}

#[test]
fn diff_shows_added_and_removed_per_arch() {
    let dir = scratch("profiles-diff");
    let a = dir.join("a.json");
    let b = dir.join("b.json");
    fs::write(
        &a,
        r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
        "syscalls":[{"names":["read","write","close"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap();
    fs::write(
        &b,
        r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
        "syscalls":[{"names":["read","close","openat","getuid32"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap();
    let out = run(recorderctl().arg("diff").arg(&a).arg(&b));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("SCMP_ARCH_X86_64:\n+ openat\n- write\n"),
        "{text}"
    );
    assert!(
        text.contains("SCMP_ARCH_X86:\n+ getuid32\n+ openat\n- write\n"),
        "{text}"
    );
    let out = run(recorderctl().arg("diff").arg(&a).arg(&a));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "");
}

#[test]
fn merge_unions_and_dedups() {
    let dir = scratch("profiles-merge");
    let a = dir.join("a.json");
    let b = dir.join("b.json");
    let out_path = dir.join("merged.json");
    fs::write(&a, r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"architectures":["SCMP_ARCH_X86_64"],
        "syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"},
        {"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"valueTwo":0,"op":"SCMP_CMP_EQ"}]},
        {"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":17,"valueTwo":0,"op":"SCMP_CMP_EQ"}]}]}"#).unwrap();
    fs::write(&b, r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
        "syscalls":[{"names":["write","clone"],"action":"SCMP_ACT_ALLOW"},
        {"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"valueTwo":0,"op":"SCMP_CMP_EQ"}]},
        {"names":["clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#).unwrap();
    run_ok(
        recorderctl()
            .arg("merge")
            .arg(&a)
            .arg(&b)
            .arg("--output")
            .arg(&out_path),
    );
    let merged = json(&fs::read_to_string(&out_path).unwrap());
    assert_eq!(
        merged["architectures"],
        json(r#"["SCMP_ARCH_X86_64","SCMP_ARCH_X86"]"#)
    );
    let rules = merged["syscalls"].as_array().unwrap();
    assert_eq!(rules.len(), 3, "{merged:#}");
    assert_eq!(
        rules[0]["names"],
        json(r#"["clone","read","write"]"#),
        "unconditional clone wins"
    );
    assert_eq!(rules[1]["names"], json(r#"["socket"]"#));
    assert_eq!(
        rules[1]["args"].as_array().unwrap().len(),
        1,
        "identical arg rules once"
    );
    // clone3 answers ENOSYS, so glibc falls back to clone.
    assert_eq!(rules[2]["names"], json(r#"["clone3"]"#));
    // The merged profile is clean.
    run_ok(recorderctl().arg("check").arg(&out_path));
}

#[test]
fn spo_resource_parses_back() {
    let out = run_ok(
        recorderctl()
            .args([
                "convert",
                "--format",
                "spo",
                "--name",
                "web-app",
                "--namespace",
                "shop",
            ])
            .args(["--default-action", "log"])
            .arg(fixture()),
    );
    let text = stdout(&out);
    let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let get = |path: &[&str]| {
        let mut v = &doc;
        for k in path {
            v = &v[*k];
        }
        v.clone()
    };
    assert_eq!(
        get(&["apiVersion"]).as_str(),
        Some("security-profiles-operator.x-k8s.io/v1beta1")
    );
    assert_eq!(get(&["kind"]).as_str(), Some("SeccompProfile"));
    assert_eq!(get(&["metadata", "name"]).as_str(), Some("web-app"));
    assert_eq!(get(&["metadata", "namespace"]).as_str(), Some("shop"));
    assert_eq!(
        get(&["spec", "defaultAction"]).as_str(),
        Some("SCMP_ACT_LOG"),
        "audit mode"
    );
    let arches = get(&["spec", "architectures"]);
    let arches: Vec<&str> = arches
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        arches,
        vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "archMap flattened"
    );
    let syscalls = get(&["spec", "syscalls"]);
    let syscalls = syscalls.as_sequence().unwrap();
    for s in syscalls {
        assert!(
            s.get("includes").is_none() && s.get("comment").is_none(),
            "{s:?}"
        );
        let action = s["action"].as_str().unwrap();
        assert!(recorder::profile::ACTIONS.contains(&action), "{action}");
    }
    let ptrace = syscalls
        .iter()
        .find(|s| s["names"][0].as_str() == Some("ptrace"))
        .expect("ptrace rule");
    assert_eq!(
        ptrace["errnoRet"].as_str(),
        Some("38"),
        "the operator's errnoRet is a string"
    );
    let socket = syscalls
        .iter()
        .find(|s| s["names"][0].as_str() == Some("socket"))
        .expect("socket rule");
    assert_eq!(socket["args"][0]["op"].as_str(), Some("SCMP_CMP_EQ"));
    assert_eq!(socket["args"][0]["value"].as_u64(), Some(1));
    // Rules needing CAP_SYS_ADMIN are left out unless the container has it.
    assert!(!text.contains("mount"), "{text}");
    let out = run_ok(
        recorderctl()
            .args(["convert", "--format", "spo", "--cap", "CAP_SYS_ADMIN"])
            .arg(fixture()),
    );
    assert!(stdout(&out).contains("umount2"));
    let out = run(recorderctl()
        .args(["convert", "--format", "spo", "--name", "Not_Valid"])
        .arg(fixture()));
    assert!(!out.status.success());
}

// ---------------------------------------------------- enforced formats --

/// A copy of the busybox root filesystem that tests may write to.
fn rootfs_copy(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(common::busybox_rootfs())
            .arg(&root),
    );
    root
}

/// An OCI bundle in `dir` running `args` on `root`; `record` makes the
/// bundle a template whose cgroupsPath the recording wrapper fills in.
fn bundle(dir: &Path, root: &Path, args: &[&str], seccomp: Option<Value>, record: bool) -> PathBuf {
    let b = dir.join(if record { "bundle-record" } else { "bundle" });
    let _ = fs::remove_dir_all(&b);
    fs::create_dir_all(&b).unwrap();
    run_ok(Command::new("runc").arg("spec").current_dir(&b));
    let mut config = json(&fs::read_to_string(b.join("config.json")).unwrap());
    config["root"] = serde_json::json!({"path": root, "readonly": false});
    config["process"]["terminal"] = Value::Bool(false);
    config["process"]["args"] = serde_json::json!(args);
    if let Some(s) = seccomp {
        config["linux"]["seccomp"] = s;
    }
    let name = if record {
        "config.json.in"
    } else {
        "config.json"
    };
    if record {
        config["linux"]["cgroupsPath"] = Value::String("@CGROUP@".into());
        fs::remove_file(b.join("config.json")).unwrap();
    }
    fs::write(b.join(name), serde_json::to_string_pretty(&config).unwrap()).unwrap();
    b
}

/// A wrapper that runs a recording bundle inside its own cgroup2 cgroup
/// (the one `recorderctl record` created), so that the whole container is
/// recorded.
fn wrapper(dir: &Path) -> PathBuf {
    let w = dir.join("runc-in-my-cgroup.sh");
    fs::write(
        &w,
        "#!/bin/sh\n# usage: BUNDLE ID\nset -e\ncg=$(sed -n 's/^0:://p' /proc/self/cgroup)\n\
         sed \"s#@CGROUP@#$cg#\" \"$1/config.json.in\" > \"$1/config.json\"\n\
         exec runc run -b \"$1\" \"$2\"\n",
    )
    .unwrap();
    fs::set_permissions(&w, fs::Permissions::from_mode(0o755)).unwrap();
    w
}

fn container_id(tag: &str) -> String {
    format!("recorder-test-{tag}-{}", std::process::id())
}

/// Records `args` run as a runc container on `root`; returns the profile
/// in `format`.
fn record_container(dir: &Path, root: &Path, args: &[&str], format: &str) -> String {
    let b = bundle(dir, root, args, None, true);
    let path = dir.join(format!("recorded.{format}"));
    run_ok(
        recorderctl()
            .args(["record", "--format", format, "--output"])
            .arg(&path)
            .arg("--")
            .arg(wrapper(dir))
            .arg(&b)
            .arg(container_id("rec")),
    );
    fs::read_to_string(&path).unwrap()
}

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

/// `podman run` as `common::podman_run` does it, on this test's own
/// writable copy of the rootfs.
fn podman(root: &Path, extra: &[&str], cmd: &[&str]) -> Command {
    let mut c = Command::new("podman");
    c.args(["--runtime", "runc", "run", "--rm"])
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ])
        .args(extra)
        .arg("--rootfs")
        .arg(root)
        .args(cmd);
    c
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

fn nsjail() -> PathBuf {
    let path = std::env::var_os("NSJAIL").map_or_else(|| PathBuf::from("nsjail"), PathBuf::from);
    let ok = Command::new(&path).arg("--help").output().is_ok();
    assert!(
        ok,
        "nsjail is not installed (cargo xtask setup installs it; or set NSJAIL)"
    );
    path
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
    cmd.args(["record", "--output"]).arg(&docker).arg("--");
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
                "--output",
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
            .args(["convert", "--format", "kafel", "--output"])
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

// ------------------------------------------------------ 32-bit compat --

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
            .arg("--output")
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

// ------------------------------------------------------ argument rules --

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
            .args(["record", "--args", "--format", "oci", "--output"])
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
            .args(["record", "--args", "--format", "kafel", "--output"])
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
