//! containerd containers whose ids are names (issue 23), for real: `ctr`
//! against dockerd's own containerd, with ids such as `myapp`, recorded by
//! recorderd in auto mode and on request, found by `id` and `ns/id`, with
//! one profile per namespace; and a cgroup made under a containerd
//! namespace that is no container, logged and counted.

mod common;
mod support;

use std::{fs, net::TcpListener, path::Path, time::Duration};

use common::*;
use support::*;

const WORKLOAD: &str = "mkdir /tmp/d && chmod 600 /tmp/d && echo DONE";
const CHMODS: &[&str] = &["chmod", "fchmod", "fchmodat", "fchmodat2"];

/// A containerd namespace of this test process alone; its cgroup (which
/// containerd leaves behind) is removed when dropped.
struct Ns(String);

impl std::ops::Deref for Ns {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Ns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        if let Ok(h) = recorder::cgroup::Hierarchy::detect() {
            // Best effort: a namespace still in use elsewhere stays.
            if let Err(e) = h.remove(&format!("/{}", self.0), Duration::from_secs(1)) {
                eprintln!("{}: {e}", self.0);
            }
        }
    }
}

fn namespace(what: &str) -> Ns {
    Ns(format!("rt23-{what}-{}", std::process::id()))
}

/// The busybox image (dockerd has it) imported into namespace `ns`.
fn import(ns: &str) -> String {
    ctr_import(ns, IMAGE)
}

/// A ctr container, killed and deleted when dropped.
struct Task<'a>(&'a str, &'a str);

impl Drop for Task<'_> {
    fn drop(&mut self) {
        let _ = run(&mut ctr(self.0, &["task", "kill", "-s", "KILL", self.1]));
        std::thread::sleep(Duration::from_millis(300));
        let _ = run(&mut ctr(self.0, &["task", "delete", "-f", self.1]));
        let _ = run(&mut ctr(self.0, &["container", "delete", self.1]));
    }
}

fn assert_recorded(text: &str) {
    let names = allowed_names(text);
    assert!(
        names.contains("mkdir") || names.contains("mkdirat"),
        "no mkdir(at) in {names:?}"
    );
    assert!(
        names.contains("chmod") || names.contains("fchmodat"),
        "no chmod/fchmodat in {names:?}"
    );
}

#[test]
fn auto_mode_records_a_named_container_and_its_profile_is_enforced() {
    require_root();
    busybox_rootfs();
    let dir = scratch("containerd-named");
    let _dockerd = Dockerd::start(&dir);
    let ns = namespace("auto");
    let image = import(&ns);
    let daemon = Daemon::start(&dir, true);

    assert!(ran_to(
        &mut ctr(&ns, &["run", "--rm", &image, "myapp", "sh", "-c", WORKLOAD]),
        "DONE"
    ));
    let file = daemon.profiles.join(format!("{ns}+myapp.json"));
    let text = wait_for_file(&file);
    assert_recorded(&text);

    // By id and by namespace/id, through the index.
    for spec in ["myapp", &format!("{ns}/myapp")] {
        let shown = stdout_of(&mut daemon.ctl(&["profile", spec]));
        assert_eq!(allowed_names(&shown), allowed_names(&text), "{spec}");
    }
    let out = run_ok(&mut daemon.ctl(&["profiles", "--output", "json"]));
    let profiles: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let entry = profiles
        .iter()
        .find(|e| e["key"] == format!("{ns}/myapp").as_str())
        .unwrap_or_else(|| panic!("{ns}/myapp not in {profiles:?}"));
    assert_eq!(entry["runtime"], "containerd");
    assert_eq!(entry["name"], "myapp");

    let profile = dir.join("profile.json");
    fs::write(&profile, &text).unwrap();
    let p = profile.to_str().unwrap();
    let enforced = |p: &str, id: &str| {
        ran_to(
            &mut ctr(
                &ns,
                &[
                    "run",
                    "--rm",
                    "--seccomp",
                    "--seccomp-profile",
                    p,
                    &image,
                    id,
                    "sh",
                    "-c",
                    WORKLOAD,
                ],
            ),
            "DONE",
        )
    };
    assert!(
        enforced(p, "myapp-enforced"),
        "the workload failed under its own profile"
    );
    let denied = dir.join("no-chmod.json");
    without(&text, CHMODS, &denied);
    assert!(
        !enforced(denied.to_str().unwrap(), "myapp-denied"),
        "chmod ran under a profile without it"
    );
}

#[test]
fn start_and_stop_a_running_named_container() {
    require_root();
    busybox_rootfs();
    let dir = scratch("containerd-start");
    let _dockerd = Dockerd::start(&dir);
    let ns = namespace("start");
    let image = import(&ns);
    let daemon = Daemon::start(&dir, false);
    let script = "while true; do mkdir -p /tmp/d; chmod 600 /tmp/d; sleep 0.1; done";
    run_ok(&mut ctr(
        &ns,
        &["run", "-d", &image, "myapp2", "sh", "-c", script],
    ));
    let _task = Task(&ns, "myapp2");

    daemon.ctl_ok(&["start", "myapp2"]);
    let list = daemon.list();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["key"], format!("{ns}/myapp2").as_str());
    assert_eq!(list[0]["runtime"], "containerd");
    assert_eq!(list[0]["name"], "myapp2");
    assert_eq!(list[0]["cgroup"], format!("/{ns}/myapp2").as_str());
    std::thread::sleep(Duration::from_millis(1500));
    let path = daemon.ctl_ok(&["stop", "myapp2"]);
    assert_eq!(
        Path::new(path.trim()),
        daemon.profiles.join(format!("{ns}+myapp2.json"))
    );
    assert_recorded(&fs::read_to_string(path.trim()).unwrap());
    assert!(daemon.list().is_empty());
    // By namespace/id too.
    daemon.ctl_ok(&["start", &format!("{ns}/myapp2")]);
    daemon.ctl_ok(&["stop", &format!("{ns}/myapp2")]);
}

#[test]
fn two_namespaces_one_id_two_profiles() {
    require_root();
    busybox_rootfs();
    let dir = scratch("containerd-two-ns");
    let _dockerd = Dockerd::start(&dir);
    let (ns1, ns2) = (namespace("one"), namespace("two"));
    let (image1, image2) = (import(&ns1), import(&ns2));
    let daemon = Daemon::start(&dir, true);
    // Only the second one calls sync(2), which runc does not.
    let two = "sync && echo DONE";
    assert!(ran_to(
        &mut ctr(
            &ns1,
            &["run", "--rm", &image1, "myapp", "sh", "-c", WORKLOAD]
        ),
        "DONE"
    ));
    assert!(ran_to(
        &mut ctr(&ns2, &["run", "--rm", &image2, "myapp", "sh", "-c", two]),
        "DONE"
    ));
    let p1 = wait_for_file(&daemon.profiles.join(format!("{ns1}+myapp.json")));
    let p2 = wait_for_file(&daemon.profiles.join(format!("{ns2}+myapp.json")));
    let (n1, n2) = (allowed_names(&p1), allowed_names(&p2));
    assert!(n2.contains("sync"), "{n2:?}");
    assert!(!n1.contains("sync"), "{n1:?}");
    assert_recorded(&p1);
    // `myapp` alone is ambiguous; ns/myapp is not.
    let out = run(&mut daemon.ctl(&["profile", "myapp"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ambiguous"));
    let shown = stdout_of(&mut daemon.ctl(&["profile", &format!("{ns1}/myapp")]));
    assert_eq!(allowed_names(&shown), n1);
}

#[test]
fn an_unrecognised_cgroup_under_a_namespace_is_logged_and_counted() {
    require_root();
    busybox_rootfs();
    let dir = scratch("containerd-unrecognised");
    let _dockerd = Dockerd::start(&dir);
    let ns = namespace("unrec");
    let image = import(&ns);
    // containerd keeps the namespace's task directory: a known parent.
    assert!(ran_to(
        &mut ctr(&ns, &["run", "--rm", &image, "first", "echo", "DONE"]),
        "DONE"
    ));
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let daemon = daemon::Daemon::start(
        "rt-containerd-unrecognised",
        &["--all", "--metrics-addr", &addr],
    );
    let h = recorder::cgroup::Hierarchy::detect().unwrap();
    let path = format!("/{ns}/not-a-task");
    h.create(&path).unwrap();
    let line = format!("cgroup {path} was made under containerd's /{ns}");
    wait_for("the log line", 30, || {
        daemon.log_text().contains(&line).then_some(())
    });
    let series = format!("recorder_unrecognised_cgroups_total{{parent=\"/{ns}\"}} 1");
    let metrics = wait_for("the counter", 30, || {
        let body = ureq::get(&format!("http://{addr}/metrics"))
            .call()
            .ok()?
            .body_mut()
            .read_to_string()
            .ok()?;
        body.contains(&series).then_some(body)
    });
    assert_eq!(
        metrics
            .matches("recorder_unrecognised_cgroups_total{")
            .count(),
        1
    );
    // Dropped, not recorded (other containers on the host may be); one
    // line only.
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&daemon.ctl_ok(&["list", "--output", "json"])).unwrap();
    assert!(
        !list.iter().any(|r| r["cgroup"] == path.as_str()),
        "{list:?}"
    );
    assert_eq!(daemon.log_text().matches(&line).count(), 1);
    h.remove(&path, Duration::from_secs(1)).unwrap();
}

/// An image name (containerd's: its image store's tag, which whoever
/// imports an image chooses) whose escaped label is longer than a file
/// name may be: the image profile gets a shortened, unique file name
/// instead of failing (issue 31, item 4).
#[test]
fn a_too_long_image_label_gets_a_short_unique_file_name() {
    require_root();
    busybox_rootfs();
    let dir = scratch("containerd-long-label");
    let _dockerd = Dockerd::start(&dir);
    let ns = namespace("long");
    let image = import(&ns);
    let daemon = Daemon::start(&dir, true);
    // 100 colons: each is escaped to `%3A`; the label adds `@<digest>`.
    let long = format!("robust/long{}x", ":".repeat(100));
    run_ok(&mut ctr(&ns, &["image", "tag", &image, &long]));
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(&[&long, "longlabel", "sh", "-c", WORKLOAD]);
    assert!(ran_to(&mut ctr(&ns, &args), "DONE"));
    let row = wait_for("the image row", 60, || {
        let out = daemon.ctl_ok(&["images", "--output", "json"]);
        let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        rows.into_iter().find(|r| r["image"] == long.as_str())
    });
    let label = row["label"].as_str().unwrap().to_owned();
    assert!(label.starts_with(&format!("{long}@")), "{row}");
    // The file the daemon wrote (without the shortening: none, the write
    // failed with ENAMETOOLONG).
    let images = daemon.profiles.join("images");
    let name = wait_for("the image file", 30, || {
        fs::read_dir(&images).ok()?.find_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            name.starts_with("robust+long%3A").then_some(name)
        })
    });
    assert!(name.len() < 255 && name.contains('~'), "{name}");
    assert_eq!(name, recorder::images::file_name(&label));
    assert_recorded(&wait_for_file(&images.join(&name)));
    assert_eq!(row["runs"], 1, "{row}");
    assert_eq!(daemon.status()["pending_image_writes"], 0);
}
