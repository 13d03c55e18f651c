//! Kubernetes layouts and CRI-O without a kubelet: the kubepods cgroups of
//! both drivers, every QoS class, containerd's and CRI-O's leaf names, are
//! made in the real cgroup2 tree under `recorderd --all`, and a process
//! runs in each. Each leaf becomes a recording keyed by the container id in
//! its path, with the pod UID kept, and its profile is written at rmdir.

mod common;
mod support;

use std::{
    fs,
    io::Write as _,
    path::PathBuf,
    process::{Command, Stdio},
};

use common::*;
use support::*;

fn cgroup2_mount() -> PathBuf {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .expect("no cgroup2 mount")
}

/// A fake id made of a tag and the test's pid (64 hex digits).
fn id(tag: u32) -> String {
    format!("{:08x}{:056x}", tag, std::process::id())
}

fn uid(tag: u32) -> String {
    format!("{tag:08x}-0000-4000-8000-{:012x}", std::process::id())
}

struct Case {
    /// The container's cgroup, relative to the cgroup2 mount.
    path: String,
    id: String,
    uid: String,
    runtime: &'static str,
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    // cgroupfs driver: /kubepods[/<qos>]/pod<uid>/<id>; the runtime is not in the path.
    for (i, qos) in ["besteffort/", "burstable/", ""].iter().enumerate() {
        let (id, uid) = (id(0x100 + i as u32), uid(0x100 + i as u32));
        v.push(Case {
            path: format!("kubepods/{qos}pod{uid}/{id}"),
            id,
            uid,
            runtime: "kubernetes",
        });
    }
    // systemd driver: kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_>.slice/<runtime>-<id>.scope
    for (i, qos) in ["besteffort", "burstable", ""].iter().enumerate() {
        for (j, (prefix, runtime)) in [("cri-containerd", "containerd"), ("crio", "crio")]
            .into_iter()
            .enumerate()
        {
            let tag = 0x200 + (i * 2 + j) as u32;
            let (id, uid) = (id(tag), uid(tag));
            let u = uid.replace('-', "_");
            let pod = if qos.is_empty() {
                format!("kubepods.slice/kubepods-pod{u}.slice")
            } else {
                format!("kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{u}.slice")
            };
            v.push(Case {
                path: format!("{pod}/{prefix}-{id}.scope"),
                id,
                uid,
                runtime,
            });
        }
    }
    v
}

/// Removes the test's cgroups (leaves first) however the test ends.
struct Cleanup {
    mount: PathBuf,
    leaves: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for dir in &self.leaves {
            _ = fs::write(dir.join("cgroup.kill"), "1");
        }
        for dir in &self.leaves {
            // The leaf, then its parents while they are empty.
            // Killed processes leave the cgroup shortly after.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while dir.exists()
                && fs::remove_dir(dir).is_err()
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let mut d = dir.clone();
            d.pop();
            while d.starts_with(&self.mount) && d != self.mount && fs::remove_dir(&d).is_ok() {
                d.pop();
            }
        }
    }
}

#[test]
fn kubepods_layouts_are_recorded_in_auto_mode() {
    require_root();
    // Built before any test thread forks (a copy being written cannot be exec'd).
    busybox_rootfs();
    let dir = scratch("kubepods");
    let daemon = Daemon::start(&dir, true);
    let mount = cgroup2_mount();
    let cases = cases();
    let cleanup = Cleanup {
        mount: mount.clone(),
        leaves: cases.iter().map(|c| mount.join(&c.path)).collect(),
    };

    let mut children = Vec::new();
    for c in &cases {
        let cg = mount.join(&c.path);
        fs::create_dir_all(&cg).unwrap();
        // Joins the cgroup, lists a directory, then waits for stdin to close.
        let script = format!(
            "echo $$ > {}/cgroup.procs && ls / >/dev/null && read x",
            cg.display()
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        children.push(child);
    }

    let list = wait_for("every kubepods container to be listed", 30, || {
        // Other containers on the host may be listed too (auto mode).
        let list = daemon.list();
        cases
            .iter()
            .all(|c| list.iter().any(|r| r["key"] == c.id.as_str()))
            .then_some(list)
    });
    for c in &cases {
        let r = list
            .iter()
            .find(|r| r["key"] == c.id.as_str())
            .unwrap_or_else(|| panic!("{} not recorded: {list:?}", c.path));
        assert_eq!(r["runtime"], c.runtime, "{}", c.path);
        assert_eq!(r["pod_uid"], c.uid.as_str(), "{}", c.path);
        assert_eq!(r["cgroup"], format!("/{}", c.path));
    }

    for mut child in children {
        drop(child.stdin.take().map(|mut s| s.write_all(b"\n")));
        _ = child.wait();
    }
    drop(cleanup);
    for c in &cases {
        let text = wait_for_file(&daemon.profiles.join(format!("{}.json", c.id)));
        let names = allowed_names(&text);
        assert!(names.contains("getdents64"), "{}: {names:?}", c.path);
    }
}
