//! A deliberate stop: SIGTERM writes the partial profiles, then detaches
//! and unpins everything, unless `--keep-attached` asks to keep recording
//! until the next start; under systemd, the descriptors go to its fd store
//! (a fake systemd here). kill -9 and a restart: tests/auto.rs.

mod common;

use std::{
    fs,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::process::CommandExt as _,
    },
    path::Path,
    process::Command,
    time::Duration,
};

use common::{daemon::Daemon, require_root, run};
use recorder::cgroup::Hierarchy;

/// The links recorderd pins: sys_enter, its two generation hooks, the two
/// workload hooks (sched_process_exec/exit), cgroup_mkdir and cgroup_rmdir.
const LINKS: usize = 7;

/// The ids of the links pinned in `pin_dir` (`link_*`).
fn pinned_link_ids(pin_dir: &Path) -> Vec<u64> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(pin_dir).unwrap() {
        let path = entry.unwrap().path();
        let is_link = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("link_"));
        if !is_link {
            continue;
        }
        let out = run(Command::new("bpftool")
            .args(["link", "show", "pinned"])
            .arg(&path)
            .arg("--json"));
        assert!(out.status.success(), "bpftool on {}", path.display());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        ids.push(v["id"].as_u64().unwrap());
    }
    ids
}

/// Whether the kernel still has link `id`.
fn link_exists(id: u64) -> bool {
    run(Command::new("bpftool").args(["link", "show", "id", &id.to_string()]))
        .status
        .success()
}

#[test]
fn sigterm_detaches_and_unpins() {
    require_root();
    let h = Hierarchy::detect().unwrap();
    let mut d = Daemon::start("stop-release", &["--all"]);
    // A manual recording, so that there is a partial profile to write.
    let rel = format!("/recorder-test-stop-{}", std::process::id());
    h.create(&rel).unwrap();
    d.ctl_ok(&["start", "--cgroup", &rel]);
    let key = format!("cgroup-{}", h.id(&rel).unwrap());
    let ids = pinned_link_ids(&d.pin_dir);
    assert_eq!(ids.len(), LINKS, "{ids:?}\n{}", d.log_text());
    assert!(ids.iter().all(|&id| link_exists(id)));

    let status = d.signal(libc::SIGTERM).expect("recorderd exit status");
    assert!(
        status.success(),
        "exit 0 on SIGTERM: {status}\n{}",
        d.log_text()
    );
    assert!(
        d.profiles.join(format!("{key}.partial.json")).exists(),
        "{}",
        d.log_text()
    );
    assert!(
        !d.pin_dir.exists(),
        "{} is left:\n{}",
        d.pin_dir.display(),
        d.log_text()
    );
    let left: Vec<u64> = ids.into_iter().filter(|&id| link_exists(id)).collect();
    assert!(left.is_empty(), "links still attached: {left:?}");

    // The next start begins afresh: nothing to resume, nothing recorded.
    d.spawn();
    assert!(!d.log_text().contains("resuming"), "{}", d.log_text());
    let list = d.ctl_ok(&["list", "--output", "json"]);
    assert!(!list.contains(&key), "{list}");
    drop(d);
    _ = h.remove(&rel, Duration::from_secs(5));
}

#[test]
fn keep_attached_keeps_recording_across_a_restart() {
    require_root();
    let h = Hierarchy::detect().unwrap();
    let mut d = Daemon::start("stop-keep", &["--all", "--keep-attached"]);
    let rel = format!("/recorder-test-stop-keep-{}", std::process::id());
    h.create(&rel).unwrap();
    d.ctl_ok(&["start", "--cgroup", &rel]);
    let key = format!("cgroup-{}", h.id(&rel).unwrap());
    let ids = pinned_link_ids(&d.pin_dir);
    assert_eq!(ids.len(), LINKS, "{ids:?}\n{}", d.log_text());

    let status = d.signal(libc::SIGTERM).expect("recorderd exit status");
    assert!(
        status.success(),
        "exit 0 on SIGTERM: {status}\n{}",
        d.log_text()
    );
    assert!(d.profiles.join(format!("{key}.partial.json")).exists());
    let gone: Vec<u64> = ids.iter().copied().filter(|&id| !link_exists(id)).collect();
    assert!(gone.is_empty(), "links detached: {gone:?}");

    d.spawn();
    assert!(d.log_text().contains("resuming"), "{}", d.log_text());
    let list = d.ctl_ok(&["list", "--output", "json"]);
    assert!(list.contains(&key), "{list}");
    drop(d);
    _ = h.remove(&rel, Duration::from_secs(5));
}

/// Receives one sd_notify datagram and the descriptors it carries.
fn recv_notify(sock: &std::os::unix::net::UnixDatagram) -> Option<(String, Vec<OwnedFd>)> {
    let mut buf = [0u8; 4096];
    let mut cmsg = [0u8; 256];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: a zeroed msghdr is valid; its pointers are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = cmsg.len();
    // SAFETY: recvmsg on our socket into buffers that outlive the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &raw mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return None;
    }
    let mut fds = Vec::new();
    // SAFETY: walking the control messages recvmsg filled in.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<i32>();
                let count = ((*c).cmsg_len - libc::CMSG_LEN(0) as usize) / 4;
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(&raw const msg, c);
        }
    }
    Some((
        String::from_utf8_lossy(&buf[..n as usize]).into_owned(),
        fds,
    ))
}

/// Kills a daemon the test left running when it panics.
struct Reap(u32);

impl Drop for Reap {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // SAFETY: kill(2) on the test's own child.
            unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
        }
    }
}

/// Starts recorderd as systemd would (NOTIFY_SOCKET, FDSTORE, and the
/// stored descriptors as LISTEN_FDS); waits for READY=1.
fn start_under_fake_systemd(
    d: &Daemon,
    notify: &Path,
    sock: &std::os::unix::net::UnixDatagram,
    stored: &[(String, OwnedFd)],
) -> std::process::Child {
    let raw: Vec<i32> = stored.iter().map(|(_, fd)| fd.as_raw_fd()).collect();
    let names: Vec<&str> = stored.iter().map(|(n, _)| n.as_str()).collect();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"LISTEN_PID=$$ exec "$0" "$@""#)
        .arg(common::recorderd_path())
        .arg("--socket")
        .arg(&d.socket)
        .arg("--profiles-dir")
        .arg(&d.profiles)
        .arg("--state-dir")
        .arg(d.dir.join("state"))
        .arg("--pin-dir")
        .arg(&d.pin_dir)
        .args(["--all", "--metrics-addr", "off", "--log-level", "debug"])
        .env("NOTIFY_SOCKET", notify)
        .env("FDSTORE", "16")
        .stdout(std::process::Stdio::null())
        .stderr(fs::File::create(d.dir.join("fake-systemd.log")).unwrap());
    if !raw.is_empty() {
        cmd.env("LISTEN_FDS", raw.len().to_string())
            .env("LISTEN_FDNAMES", names.join(":"));
    }
    // SAFETY: only dup2 (async-signal-safe) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for (i, &fd) in raw.iter().enumerate() {
                // Above every fd it could overwrite first.
                if libc::dup2(fd, 100 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for i in 0..raw.len() {
                if libc::dup2(100 + i as i32, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(100 + i as i32);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    loop {
        let Some((text, _)) = recv_notify(sock) else {
            _ = child.kill();
            _ = child.wait();
            panic!("no READY=1 within 30 s");
        };
        if text.contains("READY=1") {
            return child;
        }
    }
}

#[test]
fn under_systemd_the_fd_store_keeps_recording_across_a_restart() {
    require_root();
    // Only its directories (and its cleanup): the daemon itself runs
    // under the fake systemd.
    let mut d = Daemon::start("stop-fdstore", &[]);
    d.signal(libc::SIGTERM);
    _ = fs::remove_dir_all(&d.pin_dir);
    let notify = d.dir.join("notify");
    _ = fs::remove_file(&notify);
    let sock = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();

    let mut child = start_under_fake_systemd(&d, &notify, &sock, &[]);
    let _reap = Reap(child.id());
    let ids = pinned_link_ids(&d.pin_dir);
    assert_eq!(ids.len(), LINKS, "{ids:?}");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut stored = Vec::new();
    while let Some((text, mut fds)) = recv_notify(&sock) {
        if let Some(name) = text.lines().find_map(|l| l.strip_prefix("FDNAME="))
            && text.contains("FDSTORE=1")
        {
            assert_eq!(fds.len(), 1, "{text}");
            stored.push((name.to_owned(), fds.remove(0)));
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    }
    assert!(child.wait().unwrap().success());
    let log = fs::read_to_string(d.dir.join("fake-systemd.log")).unwrap();
    assert!(
        !d.pin_dir.exists() || fs::read_dir(&d.pin_dir).unwrap().count() == 0,
        "{log}"
    );
    assert!(stored.iter().any(|(n, _)| n == "link_sys_enter"), "{log}");
    // Held by the store alone, the links stay attached.
    assert!(ids.iter().all(|&id| link_exists(id)), "{log}");

    // `systemctl restart`: the descriptors come back and are pinned again.
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut child = start_under_fake_systemd(&d, &notify, &sock, &stored);
    let _reap2 = Reap(child.id());
    let log = fs::read_to_string(d.dir.join("fake-systemd.log")).unwrap();
    assert!(log.contains("resuming"), "{log}");
    // A start attaches anew and replaces the links it resumed (as after
    // kill -9): these are the ones the store must now hold.
    let ids = pinned_link_ids(&d.pin_dir);
    assert_eq!(ids.len(), LINKS, "{ids:?}\n{log}");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut restored = Vec::new();
    while let Some((text, fds)) = recv_notify(&sock) {
        if text.contains("FDSTORE=1") {
            restored.extend(fds);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    }
    assert!(child.wait().unwrap().success());

    // `systemctl stop`: systemd closes the store; nothing is left.
    drop(stored);
    drop(restored);
    let left: Vec<u64> = ids.into_iter().filter(|&id| link_exists(id)).collect();
    assert!(left.is_empty(), "links still attached: {left:?}");
}
