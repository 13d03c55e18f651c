//! Every name a listing shows is taken back by the commands that take
//! one; a name that is not recorded gets a hint; podman `--rootfs` runs
//! under different names share one image row, keyed by the rootfs path.

use serde_json::Value;
use support::{Daemon, Dockerd, IMAGE, docker, stdout_of, wait_for};

use super::*;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The rows of `images -o json` once `done` holds for them.
fn images_when(d: &Daemon, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    wait_for(what, 60, || {
        let rows = json(&d.ctl_ok(&["images", "-o", "json"]));
        let rows = rows.as_array().cloned().unwrap_or_default();
        done(&rows).then_some(rows)
    })
}

/// `recorderctl ARGS` fails with stderr that has `says`.
fn refused(d: &Daemon, args: &[&str], says: &str) {
    let out = run(&mut d.ctl(args));
    assert!(!out.status.success(), "{args:?}: {}", stdout(&out));
    assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
}

#[test]
fn every_name_a_listing_shows_is_taken_back() {
    require_root();
    common::busybox_rootfs();
    let dir = scratch("second-hour-names");
    let _dockerd = Dockerd::start(&dir);
    let pid = std::process::id();
    let tag = "recorder-test/second-hour-names:1";
    run_ok(&mut docker(&["tag", IMAGE, tag]));
    // Only this test's containers: the daemon records every new one.
    let glob = format!("second-hour-names-{pid}-*");
    let d = Daemon(common::daemon::Daemon::start(
        "second-hour-names",
        &["--all", "--include-name", &glob],
    ));

    // A docker container that runs: list shows its name and image.
    let name = format!("second-hour-names-{pid}-web");
    let script = "ls / >/dev/null; i=0; while [ ! -e /tmp/end ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done";
    let id = stdout_of(&mut docker(&[
        "run", "-d", "--name", &name, tag, "sh", "-c", script,
    ]));
    struct Rm(String);
    impl Drop for Rm {
        fn drop(&mut self) {
            _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
        }
    }
    let _rm = Rm(name.clone());
    let listed = wait_for("the container in list", 30, || {
        let list = json(&d.ctl_ok(&["list", "-o", "json"]));
        list.as_array()
            .and_then(|l| l.iter().find(|r| r["key"] == id.as_str()).cloned())
    });
    assert_eq!(listed["name"], name.as_str(), "{listed}");
    let text = d.ctl_ok(&["list"]);
    let row = text.lines().find(|l| l.starts_with(&id[..12])).unwrap();
    assert!(row.contains(&name), "{text}");
    // The image as images will show it: normalised.
    assert!(row.contains(tag), "{text}");
    // Each name list shows is taken by profile (and drift, which knows
    // it: it runs under docker's default profile).
    for spec in [name.as_str(), &id[..12], id.as_str()] {
        let p = d.ctl_ok(&["profile", spec]);
        assert!(common::allowed_names(&p).contains("getdents64"), "{spec}");
        refused(&d, &["drift", spec], "nothing to compare");
    }
    // Forgetting --image: a hint, once the image has a row.
    run_ok(&mut docker(&["exec", &name, "touch", "/tmp/end"]));
    wait_for_ended(&d, &id);
    refused(
        &d,
        &["profile", tag],
        "is an image: recorderctl profile --image",
    );
    // stop of a container that ended says so, and where its profile is.
    refused(
        &d,
        &["stop", &name],
        "it ended and its profile was written to",
    );
    let p = d.ctl_ok(&["profile", &name]);
    assert!(common::allowed_names(&p).contains("getdents64"));

    // Two podman --rootfs runs under different names: one row, keyed by
    // the rootfs path.
    for run_name in ["a", "b"] {
        let n = format!("second-hour-names-{pid}-rootfs-{run_name}");
        run_ok(&mut common::podman_run(
            &["--name", &n],
            &["sh", "-c", "ls /"],
        ));
    }
    let rootfs = common::busybox_rootfs().to_str().unwrap().to_owned();
    // Its key is marked as a rootfs path's (issue 31): no image's key.
    let key = format!("rootfs={rootfs}");
    let rows = images_when(&d, "the rootfs row with both runs", |rows| {
        rows.iter()
            .any(|r| r["key"] == key.as_str() && r["runs"].as_u64() >= Some(2))
    });
    let row = rows.iter().find(|r| r["key"] == key.as_str()).unwrap();
    assert_eq!(row["keyed_by"], "rootfs", "{row}");
    assert_eq!(row["runs"], 2, "{row}");
    // Every image images shows, as JSON and as text, is taken back.
    let text = d.ctl_ok(&["images", "--wide"]);
    assert!(text.contains(&format!("(rootfs) {rootfs} ")), "{text}");
    for r in &rows {
        let image = r["image"].as_str().unwrap();
        let shown = match r["keyed_by"].as_str() {
            Some("rootfs") => format!("(rootfs) {image}"),
            Some("name") => format!("(name) {image}"),
            _ => image.to_owned(),
        };
        // A name row only as shown: a bare name is no image's (issue 31).
        let bare = (r["keyed_by"] != "name").then_some(image);
        for spec in bare.into_iter().chain([shown.as_str()]) {
            let p = d.ctl_ok(&["profile", "--image", spec]);
            assert!(!common::allowed_names(&p).is_empty(), "{spec}");
        }
        assert!(text.contains(&shown), "{shown}: {text}");
    }
    assert!(rows.iter().any(|r| r["image"] == tag), "{rows:?}");
}

/// Waits until recorderd wrote the profile of container `id`.
fn wait_for_ended(d: &Daemon, id: &str) {
    support::wait_for_file(&d.profile_path(id));
}
