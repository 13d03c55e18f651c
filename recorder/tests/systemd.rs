//! The shipped systemd unit verifies, and recorderd speaks sd_notify.

mod common;

use std::{fs, os::unix::net::UnixDatagram, process::Command, time::Duration};

use common::{require_root, run};

#[test]
fn unit_passes_systemd_analyze_verify() {
    let dir = common::scratch("systemd-unit");
    let unit = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/recorderd.service"
    ))
    .unwrap();
    // Point ExecStart at the binary under test (verify checks it exists).
    let unit = unit.replace("/usr/local/bin/recorderd", common::recorderd_path());
    let path = dir.join("recorderd.service");
    fs::write(&path, unit).unwrap();
    let out = run(Command::new("systemd-analyze").arg("verify").arg(&path));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify failed: {err}");
    assert!(
        !err.contains("recorderd.service:"),
        "warnings about the unit: {err}"
    );
}

#[test]
fn shipped_config_is_the_defaults() {
    let path = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/recorderd.toml"
    ));
    let text = fs::read_to_string(path).unwrap();
    let config = recorder::config::Config::parse(path, &text).unwrap();
    assert_eq!(config, recorder::config::Config::default());
    // Uncommented, every documented value (and table) parses and equals
    // the default.
    let uncommented: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| l.contains(" = ") || l.starts_with('['))
        .map(|l| format!("{}\n", l.split(" #").next().unwrap_or(l)))
        .collect();
    let config = recorder::config::Config::parse(path, &uncommented)
        .unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    assert_eq!(config, recorder::config::Config::default());
}

#[test]
fn notifies_ready_and_stopping() {
    require_root();
    let dir = common::scratch("sd-notify");
    let sock_path = dir.join("notify");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut child = Command::new(common::recorderd_path())
        .arg("--socket")
        .arg(dir.join("ctl.sock"))
        .arg("--profiles-dir")
        .arg(dir.join("profiles"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(["--pin-dir", "/sys/fs/bpf/recorder-test-notify"])
        .env("NOTIFY_SOCKET", &sock_path)
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("READY=1 within 30 s");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let n = sock.recv(&mut buf).expect("STOPPING=1");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
    assert!(child.wait().unwrap().success());
    _ = Command::new(common::recorderd_path())
        .args(["--pin-dir", "/sys/fs/bpf/recorder-test-notify", "--unpin"])
        .output();
}
