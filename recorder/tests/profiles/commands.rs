//! The engineering commands (check, diff, merge) and the SPO resource.

use super::*;

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
            .arg("--out")
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
