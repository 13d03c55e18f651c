//! Output paths: planted symlinks, `..`, and what a socket-group member
//! may not choose.

use super::*;

#[test]
fn planted_symlink_is_not_followed_and_dotdot_is_refused() {
    require_root();
    let d = Daemon::start("symlink", &[]);
    let h = Hierarchy::detect().unwrap();
    let rel = format!("/recorder-test-symlink-{}", std::process::id());
    let dir = h.create(&rel).unwrap();
    d.ctl_ok(&["start", "--cgroup", &rel]);
    let id = h.id(&rel).unwrap();
    // The attacker plants a symlink at the profile's path.
    let victim = d.dir.join("victim");
    fs::write(&victim, "untouched").unwrap();
    fs::create_dir_all(&d.profiles).unwrap();
    let path = d.profile_path(&format!("cgroup-{id}"));
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    run_ok(
        Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"echo $$ > "$0" && exec /bin/true"#)
            .arg(dir.join("cgroup.procs")),
    );
    // The cgroup goes: the daemon finishes the recording by itself.
    h.remove(&rel, Duration::from_secs(5)).unwrap();
    wait_until("the profile to replace the symlink", 30, || {
        fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file())
    });
    assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
    assert!(allowed_names(&fs::read_to_string(&path).unwrap()).contains("execve"));
    // No temp files left behind.
    let left: Vec<_> = fs::read_dir(&d.profiles)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, [format!("cgroup-{id}.json")], "{left:?}");

    // `..` in a cgroup path or an output path is refused.
    for bad in ["/../..", "/..", "/a/../../etc"] {
        let out = run(&mut d.ctl(&["start", "--cgroup", bad]));
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid cgroup path"), "{bad}: {err}");
    }
    let rel2 = format!("/recorder-test-symlink2-{}", std::process::id());
    h.create(&rel2).unwrap();
    for out in ["/tmp/../etc/passwd", "relative.json"] {
        let req = serde_json::json!({
            "version": 1, "op": "start",
            "target": {"cgroup": rel2}, "output": out,
        });
        let reply = raw_call(&d.socket, format!("{req}\n").as_bytes());
        assert!(
            reply.contains("\"error\"") && reply.contains("must be an absolute path without '..'"),
            "{out}: {reply}"
        );
    }
    // Container ids from the outside are validated too.
    let out = run(&mut d.ctl(&["start", "../../etc"]));
    assert!(!out.status.success());
    h.remove(&rel2, Duration::from_secs(5)).unwrap();
    assert_eq!(status(&d)["recordings"], 0);
}

/// Connects from a thread whose own credentials (raw setresuid/setresgid,
/// which change the calling thread only) are uid/gid 65534 without
/// supplementary groups, sends `line` and returns the reply.
fn call_as_nobody(socket: &Path, line: String) -> String {
    let socket = socket.to_owned();
    thread::spawn(move || {
        // SAFETY: raw syscalls change this thread's credentials only; the
        // thread ends right after.
        unsafe {
            assert_eq!(
                libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<u32>()),
                0
            );
            assert_eq!(libc::syscall(libc::SYS_setresgid, 65534, 65534, 65534), 0);
            assert_eq!(libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534), 0);
        }
        raw_call(&socket, line.as_bytes())
    })
    .join()
    .unwrap()
}

/// A socket-group member is not root: it must not choose where recorderd
/// (running as root) writes a file.
#[test]
fn a_group_member_cannot_choose_the_output_path() {
    require_root();
    let d = Daemon::start("groupoutput", &["--socket-group", "65534"]);
    let h = Hierarchy::detect().unwrap();
    let rel = format!("/recorder-test-groupoutput-{}", std::process::id());
    let dir = h.create(&rel).unwrap();
    // Root-only target the attacker wants to overwrite.
    let victim = d.dir.join("root-only");
    fs::write(&victim, "untouched").unwrap();
    // The member is served otherwise.
    let reply = call_as_nobody(&d.socket, "{\"version\":1,\"op\":\"status\"}\n".into());
    assert!(reply.contains("\"status\""), "{reply}");
    let req = serde_json::json!({
        "version": 1, "op": "start",
        "target": {"cgroup": rel}, "output": victim,
    });
    let reply = call_as_nobody(&d.socket, format!("{req}\n"));
    // Let the cgroup go, so that a recording (if one started) is written.
    run_ok(
        Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"echo $$ > "$0" && exec /bin/true"#)
            .arg(dir.join("cgroup.procs")),
    );
    h.remove(&rel, Duration::from_secs(5)).unwrap();
    wait_until("no recording left", 30, || status(&d)["recordings"] == 0);
    assert_eq!(
        fs::read_to_string(&victim).unwrap(),
        "untouched",
        "a group member overwrote a root-only file; reply: {reply}"
    );
    assert!(
        reply.contains("permission_denied") && reply.contains("only root may choose"),
        "{reply}"
    );
    assert!(d.log_text().contains("refused output path"));
    // Root still may.
    let rel2 = format!("/recorder-test-groupoutput2-{}", std::process::id());
    h.create(&rel2).unwrap();
    let out = d.dir.join("chosen.json");
    let req = serde_json::json!({
        "version": 1, "op": "start",
        "target": {"cgroup": rel2}, "output": out,
    });
    let reply = raw_call(&d.socket, format!("{req}\n").as_bytes());
    assert!(reply.contains("\"started\""), "{reply}");
    h.remove(&rel2, Duration::from_secs(5)).unwrap();
    d.wait_for(&out);
}
