//! Faults: a read-only or full profiles dir, a cgroup removed mid-stop,
//! tracefs and bpffs missing, kill -9 with a pending write.

use super::*;

fn mount_tmpfs(at: &Path, opts: &str) {
    run_ok(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(at),
    );
}

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

/// The profiles dir read-only, then full: the error is in the log and in
/// status; the recording is kept (list, map) and written once possible.
#[test]
fn profiles_dir_read_only_or_full_keeps_and_retries() {
    require_root();
    let d = Daemon::start("rofull", &[]);
    let h = Hierarchy::detect().unwrap();
    fs::create_dir_all(&d.profiles).unwrap();
    mount_tmpfs(&d.profiles, "size=64k,mode=755");
    let _guard = Unmount(d.profiles.clone());

    for case in ["read-only", "full"] {
        match case {
            "read-only" => {
                run_ok(
                    Command::new("mount")
                        .args(["-o", "remount,ro"])
                        .arg(&d.profiles),
                );
            }
            _ => {
                run_ok(
                    Command::new("mount")
                        .args(["-o", "remount,rw"])
                        .arg(&d.profiles),
                );
                // Fill it up.
                let _ = run(Command::new("dd")
                    .args(["if=/dev/zero", "bs=4k", "count=64"])
                    .arg(format!("of={}", d.profiles.join("filler").display())));
                run(&mut Command::new("sync"));
            }
        }
        let rel = format!("/recorder-test-rofull-{case}-{}", std::process::id());
        let dir = h.create(&rel).unwrap();
        d.ctl_ok(&["start", "--cgroup", &rel]);
        let id = h.id(&rel).unwrap();
        let key = format!("cgroup-{id}");
        run_ok(
            Command::new("/bin/sh")
                .arg("-c")
                .arg(r#"echo $$ > "$0" && exec /bin/true"#)
                .arg(dir.join("cgroup.procs")),
        );
        let entries_before = status(&d)["map_entries"].as_u64().unwrap();
        h.remove(&rel, Duration::from_secs(5)).unwrap();
        let mut st = serde_json::Value::Null;
        wait_until("a failed write in status", 30, || {
            st = status(&d);
            st["pending_writes"] == 1
        });
        let last_error = st["last_error"].as_str().unwrap_or_default().to_owned();
        let want = if case == "read-only" {
            "Read-only file system"
        } else {
            "No space left on device"
        };
        assert!(
            last_error.contains(&key) && last_error.contains(want),
            "{case}: {last_error}"
        );
        assert!(d.log_text().contains(&last_error), "{case}: not logged");
        // Kept in memory and in the map.
        let list = d.ctl_ok(&["list", "--output", "json"]);
        assert!(list.contains(&key), "{case}: {list}");
        assert_eq!(
            st["map_entries"].as_u64().unwrap(),
            entries_before,
            "{case}: map entry dropped"
        );
        println!("RESULT {case}: last_error = {last_error}; pending_writes = 1");
        // Space returns: the retry writes it.
        match case {
            "read-only" => {
                run_ok(
                    Command::new("mount")
                        .args(["-o", "remount,rw"])
                        .arg(&d.profiles),
                );
            }
            _ => {
                fs::remove_file(d.profiles.join("filler")).unwrap();
                run_ok(&mut Command::new("sync"));
            }
        }
        let text = d.wait_for(&d.profile_path(&key));
        assert!(allowed_names(&text).contains("execve"), "{case}: {text}");
        wait_until("pending writes cleared", 30, || {
            status(&d)["pending_writes"] == 0
        });
    }
}

#[test]
fn cgroup_removed_while_stop_is_in_flight() {
    require_root();
    let d = Daemon::start("stoprace", &[]);
    let h = Hierarchy::detect().unwrap();
    for round in 0..10 {
        let rel = format!("/recorder-test-stoprace-{}-{round}", std::process::id());
        let dir = h.create(&rel).unwrap();
        d.ctl_ok(&["start", "--cgroup", &rel]);
        let key = format!("cgroup-{}", h.id(&rel).unwrap());
        run_ok(
            Command::new("/bin/sh")
                .arg("-c")
                .arg(r#"echo $$ > "$0" && exec /bin/true"#)
                .arg(dir.join("cgroup.procs")),
        );
        let go = Barrier::new(2);
        let (stop, _) = thread::scope(|s| {
            let stop = s.spawn(|| {
                go.wait();
                run(&mut d.ctl(&["stop", "--cgroup", &rel]))
            });
            go.wait();
            h.remove(&rel, Duration::from_secs(5)).unwrap();
            (stop.join().unwrap(), ())
        });
        let path = d.profile_path(&key);
        let text = d.wait_for(&path);
        assert!(allowed_names(&text).contains("execve"), "{round}");
        // One profile, no leftovers, no recording left, daemon alive.
        let files = fs::read_dir(&d.profiles)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(&key))
            .count();
        assert_eq!(files, 1, "round {round}");
        wait_until("the recording to go", 10, || status(&d)["recordings"] == 0);
        if !stop.status.success() {
            let err = String::from_utf8_lossy(&stop.stderr);
            assert!(
                err.contains("not being recorded") || err.contains("does not exist"),
                "round {round}: {err}"
            );
        }
    }
    assert_eq!(
        fs::read_dir(&d.profiles).unwrap().count(),
        10,
        "one profile per recording"
    );
}

/// tracefs and bpffs unmounted when recorderd starts: it mounts them. Done
/// in a private mount namespace, so the host (and every other test) keeps
/// its mounts whatever happens.
#[test]
fn missing_tracefs_and_bpffs_are_mounted_at_startup() {
    require_root();
    let dir = common::scratch("nomounts");
    let socket = dir.join("sock");
    let log = dir.join("log");
    let pin = format!("/sys/fs/bpf/recorder-test-nomounts-{}", std::process::id());
    let script = r#"
        umount -l /sys/kernel/tracing 2>/dev/null
        umount -l /sys/kernel/debug/tracing 2>/dev/null
        umount -l /sys/fs/bpf 2>/dev/null
        if grep -qE ' /sys/(kernel/tracing|fs/bpf) ' /proc/self/mountinfo; then
            echo "still mounted" >&2; exit 99
        fi
        exec "$@"
    "#;
    let mut child = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            script,
            "sh",
        ])
        .arg(common::recorderd_path())
        .arg("--socket")
        .arg(&socket)
        .arg("--profiles-dir")
        .arg(dir.join("profiles"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--pin-dir")
        .arg(&pin)
        .args(["--log-level", "debug"])
        .stdout(fs::File::create(&log).unwrap())
        .stderr(fs::File::create(dir.join("err")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let answered = loop {
        let out = run(common::recorderctl()
            .args(["status", "--socket"])
            .arg(&socket));
        if out.status.success() {
            break true;
        }
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            break false;
        }
        thread::sleep(Duration::from_millis(100));
    };
    let stderr = fs::read_to_string(dir.join("err")).unwrap_or_default();
    let mountinfo =
        fs::read_to_string(format!("/proc/{}/mountinfo", child.id())).unwrap_or_default();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    _ = child.wait();
    assert!(answered, "recorderd did not come up:\n{stderr}");
    assert!(!stderr.contains("still mounted"), "{stderr}");
    // It mounted both in its namespace.
    assert!(mountinfo.contains(" /sys/fs/bpf "), "{mountinfo}");
    assert!(mountinfo.contains("tracefs"), "{mountinfo}");
    println!("RESULT nomounts: recorderd mounted tracefs and bpffs and answered");
}

/// kill -9 of recorderd with a manual (`start --cgroup`) recording running
/// and a profile write pending; then a restart. tests/auto.rs covers auto
/// mode; this covers what it does not: syscalls made while the daemon is
/// down land in a manual recording, and a pending write survives the kill.
#[test]
fn kill_9_with_a_manual_recording_and_a_pending_write() {
    require_root();
    let bin = race_program();
    let h = Hierarchy::detect().unwrap();
    let mut d = Daemon::start("kill9manual", &[]);
    fs::create_dir_all(&d.profiles).unwrap();
    mount_tmpfs(&d.profiles, "size=64k,mode=755");
    let _guard = Unmount(d.profiles.clone());
    let pid = std::process::id();
    let (first, second) = RARE.split_at(32);
    let in_cgroup = |dir: &Path, nrs: &[(u32, &str)]| race_in(dir, &bin, nrs);
    // A: recorded; half its syscalls before the kill, half while down.
    let rel_a = format!("/recorder-test-kill9-a-{pid}");
    let dir_a = h.create(&rel_a).unwrap();
    d.ctl_ok(&["start", "--cgroup", &rel_a]);
    let key_a = format!("cgroup-{}", h.id(&rel_a).unwrap());
    // B: finished while the profiles dir is read-only: a pending write.
    let rel_b = format!("/recorder-test-kill9-b-{pid}");
    let dir_b = h.create(&rel_b).unwrap();
    d.ctl_ok(&["start", "--cgroup", &rel_b]);
    let key_b = format!("cgroup-{}", h.id(&rel_b).unwrap());
    in_cgroup(&dir_a, first);
    in_cgroup(&dir_b, RARE.as_slice());
    run_ok(
        Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&d.profiles),
    );
    h.remove(&rel_b, Duration::from_secs(5)).unwrap();
    wait_until("the pending write", 30, || {
        status(&d)["pending_writes"] == 1
    });

    d.signal(libc::SIGKILL);
    // The recorder stays attached with the hooks that keep its last-caller
    // entries honest (a recorder without them could credit a task's
    // syscalls to the cgroup it just left).
    for prog in [
        programs::SYS_ENTER,
        programs::CGROUP_ATTACH_TASK,
        programs::SCHED_PROCESS_FORK,
    ] {
        let link = format!("link_{prog}");
        assert!(d.pin_dir.join(&link).exists(), "{link} not pinned");
    }
    in_cgroup(&dir_a, second);
    d.spawn();

    // B is still pending after the restart, and is written once possible.
    let st = status(&d);
    let list = d.ctl_ok(&["list", "--output", "json"]);
    assert!(list.contains(&key_a) && list.contains(&key_b), "{list}");
    // The pinned filter came back with the pinned map, in step with it.
    assert_eq!(st["filter_count"], st["map_entries"], "{st}");
    run_ok(
        Command::new("mount")
            .args(["-o", "remount,rw"])
            .arg(&d.profiles),
    );
    let b = allowed_names(&d.wait_for(&d.profile_path(&key_b)));
    assert!(lost(&b).is_empty(), "B lost {:?}", lost(&b));
    // A has both halves.
    d.ctl_ok(&["stop", "--cgroup", &rel_a]);
    let a = allowed_names(&fs::read_to_string(d.profile_path(&key_a)).unwrap());
    h.remove(&rel_a, Duration::from_secs(5)).unwrap();
    println!(
        "RESULT kill9 manual: A lost = {}, B lost = {}, pending after restart = {}",
        lost(&a).len(),
        lost(&b).len(),
        st["pending_writes"]
    );
    assert!(lost(&a).is_empty(), "A lost {:?}", lost(&a));
}
