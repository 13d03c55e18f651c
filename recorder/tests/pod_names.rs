//! Pod and namespace names of Kubernetes containers without a kubelet
//! (issue 21): real containerd containers (`ctr` against dockerd's own
//! containerd) in kubepods cgroups, with the annotations containerd's CRI
//! plugin or CRI-O write into the bundle, recorded by recorderd in auto
//! mode. `list`, the profile index and the name show the pod.

mod common;
mod support;

use std::{process::Command, time::Duration};

use common::*;
use support::*;

/// dockerd's managed containerd.
const CONTAINERD: &str = "/var/run/docker/containerd/containerd.sock";

fn ctr(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ctr");
    c.args(["-a", CONTAINERD, "-n", ns]).args(args);
    c
}

/// A fake container id made of a tag and the test's pid (64 hex digits).
fn id(tag: u32) -> String {
    format!("{tag:08x}{:056x}", std::process::id())
}

fn uid(tag: u32) -> String {
    format!("{tag:08x}-0000-4000-8000-{:012x}", std::process::id())
}

/// A ctr container in a kubepods cgroup: killed, deleted and its pod
/// cgroup removed when dropped.
struct Pod {
    ns: String,
    id: String,
    pod_cgroup: String,
}

impl Pod {
    fn cgroup(&self) -> String {
        format!("{}/{}", self.pod_cgroup, self.id)
    }

    fn stop(&self) {
        _ = run(&mut ctr(
            &self.ns,
            &["task", "kill", "-s", "KILL", &self.id],
        ));
        // The task exits, then its delete removes the cgroup.
        for _ in 0..50 {
            if run(&mut ctr(&self.ns, &["task", "delete", &self.id]))
                .status
                .success()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        _ = run(&mut ctr(&self.ns, &["container", "delete", &self.id]));
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.stop();
        if let Ok(h) = recorder::cgroup::Hierarchy::detect() {
            // Best effort: the parents stay while another test uses them.
            for p in [
                self.pod_cgroup.as_str(),
                "/kubepods/besteffort",
                "/kubepods",
            ] {
                _ = h.remove(p, Duration::from_millis(200));
            }
        }
    }
}

/// Runs a long-lived container `tag` with `annotations` in
/// /kubepods/besteffort/pod<uid>/<id>.
fn run_pod(ns: &str, image: &str, tag: u32, annotations: &[(&str, &str)]) -> Pod {
    let pod = Pod {
        ns: ns.to_owned(),
        id: id(tag),
        pod_cgroup: format!("/kubepods/besteffort/pod{}", uid(tag)),
    };
    let mut c = ctr(ns, &["run", "-d", "--cgroup", &pod.cgroup()]);
    for (k, v) in annotations {
        c.args(["--annotation", &format!("{k}={v}")]);
    }
    let script = "while true; do ls / >/dev/null; sleep 0.2; done";
    run_ok(c.args([image, &pod.id, "sh", "-c", script]));
    pod
}

#[test]
fn pod_and_namespace_come_from_the_bundle_annotations() {
    require_root();
    busybox_rootfs();
    let dir = scratch("pod-names");
    let _dockerd = Dockerd::start(&dir);
    // Not k8s.io: the bundle is found in whichever namespace has the task.
    let ns = format!("rt21-pods-{}", std::process::id());
    pipe(
        Command::new("docker").args(["save", IMAGE]),
        &mut ctr(&ns, &["image", "import", "-"]),
    );
    let image = format!("docker.io/{IMAGE}:latest");
    let daemon = Daemon::start(&dir, true);

    let cri = run_pod(
        &ns,
        &image,
        0x2101,
        &[
            ("io.kubernetes.cri.container-type", "container"),
            ("io.kubernetes.cri.sandbox-name", "web"),
            ("io.kubernetes.cri.sandbox-namespace", "shop"),
            ("io.kubernetes.cri.container-name", "nginx"),
        ],
    );
    let crio = run_pod(
        &ns,
        &image,
        0x2102,
        &[
            ("io.kubernetes.pod.name", "db-0"),
            ("io.kubernetes.pod.namespace", "default"),
            ("io.kubernetes.container.name", "postgres"),
        ],
    );
    let plain = run_pod(&ns, &image, 0x2103, &[]);

    let list = wait_for("the three pods to be listed", 30, || {
        let list = daemon.list();
        [&cri, &crio, &plain]
            .iter()
            .all(|p| list.iter().any(|r| r["key"] == p.id.as_str()))
            .then_some(list)
    });
    let find = |p: &Pod| {
        list.iter()
            .find(|r| r["key"] == p.id.as_str())
            .unwrap()
            .clone()
    };
    let r = find(&cri);
    assert_eq!(r["runtime"], "kubernetes", "{r}");
    assert_eq!(r["pod_uid"], uid(0x2101).as_str(), "{r}");
    assert_eq!(r["cgroup"], cri.cgroup().as_str(), "{r}");
    assert_eq!(r["pod"], "web", "{r}");
    assert_eq!(r["namespace"], "shop", "{r}");
    assert_eq!(r["name"], "shop/web/nginx", "{r}");
    let r = find(&crio);
    assert_eq!(
        (&r["pod"], &r["namespace"], &r["name"]),
        (
            &"db-0".into(),
            &"default".into(),
            &"default/db-0/postgres".into()
        ),
        "{r}"
    );
    // No annotations: no pod, no name, as before.
    let r = find(&plain);
    assert!(r.get("pod").is_none() && r.get("name").is_none(), "{r}");
    let text = daemon.ctl_ok(&["list"]);
    let line = text
        .lines()
        .find(|l| l.starts_with(&cri.id[..12]))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("shop/web/nginx") && line.contains(" shop/web "),
        "{text}"
    );
    assert!(text.lines().next().unwrap().contains("POD"), "{text}");

    // That name finds the recording in progress.
    let shown = daemon.ctl_ok(&["profile", "default/db-0/postgres"]);
    assert!(allowed_names(&shown).contains("getdents64"), "{shown}");

    // The profile index keeps them after the container is gone.
    cri.stop();
    wait_for_file(&daemon.profiles.join(format!("{}.json", cri.id)));
    let profiles: Vec<serde_json::Value> =
        serde_json::from_str(&daemon.ctl_ok(&["profiles", "-o", "json"])).unwrap();
    let e = profiles
        .iter()
        .find(|e| e["key"] == cri.id.as_str())
        .unwrap_or_else(|| panic!("{profiles:?}"));
    assert_eq!(
        (&e["pod"], &e["namespace"], &e["name"]),
        (&"web".into(), &"shop".into(), &"shop/web/nginx".into()),
        "{e}"
    );
    // Found by that name.
    let shown = daemon.ctl_ok(&["profile", "shop/web/nginx"]);
    assert!(allowed_names(&shown).contains("getdents64"), "{shown}");
    drop((cri, crio, plain));
    _ = run(&mut ctr(&ns, &["image", "rm", &image]));
}
