//! Image profiles, for real (issue 19): recorderd in auto mode records
//! docker containers of one imported image with different workloads;
//! `recorderctl images` counts them, `recorderctl profile --image` prints
//! the merged profile, which enforces all the workloads at once and
//! survives a restart and a kill -9. A container of an excluded image is
//! not recorded, and one under a chosen profile stays out of the image
//! profile. Every name of one image (and its id) feeds one row.

mod common;
mod support;

use std::fs;

use common::*;
use support::*;

const MKDIR: &str = "mkdir /tmp/d && echo DONE";
const CHMOD: &str = "touch /tmp/f && chmod 600 /tmp/f && echo DONE";
const SYMLINK: &str = "ln -s /tmp/x /tmp/l && echo DONE";
const ALL: &str =
    "mkdir /tmp/d && touch /tmp/f && chmod 600 /tmp/f && ln -s /tmp/x /tmp/l && echo DONE";

/// A scrape of recorderd's /metrics.
fn scrape(addr: &str) -> String {
    let mut resp = ureq::get(&format!("http://{addr}/metrics"))
        .call()
        .expect("/metrics answers");
    resp.body_mut().read_to_string().unwrap()
}

fn images(daemon: &Daemon) -> Vec<serde_json::Value> {
    serde_json::from_str(&daemon.ctl_ok(&["images", "--output", "json"])).unwrap()
}

/// The id `image` has now.
fn image_id(image: &str) -> String {
    stdout_of(&mut docker(&["image", "inspect", "-f", "{{.Id}}", image]))
}

/// The one row of image `id`, once it has at least `runs` runs. (Other
/// tests sharing the dockerd import `IMAGE` again: a new id.)
fn row(daemon: &Daemon, id: &str, runs: u64) -> serde_json::Value {
    wait_for("the image row", 30, || {
        let rows = images(daemon);
        let mine: Vec<_> = rows.iter().filter(|r| r["id"] == id).collect();
        assert!(mine.len() <= 1, "one row per image: {rows:?}");
        mine.first()
            .filter(|r| r["runs"].as_u64() >= Some(runs))
            .map(|r| (*r).clone())
    })
}

#[test]
fn image_profile_merges_runs_enforces_them_and_survives_restarts() {
    require_root();
    busybox_rootfs();
    let dir = scratch("images-merge");
    let _dockerd = Dockerd::start(&dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{port}");
    let mut daemon = Daemon(daemon::Daemon::start(
        "images-merge",
        &[
            "--all",
            "--skip-chosen-profile",
            "true",
            "--metrics-addr",
            &metrics,
        ],
    ));

    let id = image_id(IMAGE);
    for script in [MKDIR, CHMOD, SYMLINK, SYMLINK] {
        run_container(&daemon, &dir, &[], IMAGE, script);
    }
    let r = row(&daemon, &id, 4);
    assert_eq!(r["runs"], 4, "{r}");
    assert_eq!(r["image"], format!("{IMAGE}:latest"), "{r}");
    assert!(r["runs_since_last_new"].as_u64() >= Some(1), "{r}");
    assert!(
        r["id"].as_str().is_some_and(|id| id.starts_with("sha256:")),
        "{r}"
    );
    for key in ["syscalls", "first_seen", "last_seen", "last_new", "ready"] {
        assert!(!r[key].is_null(), "{key} missing: {r}");
    }
    assert_eq!(r["ready"], false, "4 runs are fewer than the default 5");
    assert_eq!(r["key"], r["id"], "{r}");
    let key = r["label"].as_str().unwrap();
    let wants = [
        format!("recorder_image_runs{{image=\"{key}\"}} 4"),
        format!("recorder_image_ready{{image=\"{key}\"}} 0"),
        format!(
            "recorder_image_syscalls{{image=\"{key}\"}} {}",
            r["syscalls"]
        ),
    ];
    // The snapshot scrapes read is refreshed every tick.
    wait_for("the image series in /metrics", 10, || {
        let scrape = scrape(&metrics);
        wants.iter().all(|w| scrape.contains(w)).then_some(())
    });
    let text = daemon.ctl_ok(&["images"]);
    assert!(text.starts_with("IMAGE") && text.contains(IMAGE), "{text}");
    assert!(text.contains("no: 4/5 runs"), "{text}");

    let profile = daemon.ctl_ok(&["profile", "--image", IMAGE]);
    let names = allowed_names(&profile);
    for n in ["mkdir", "symlink"] {
        assert!(names.contains(n), "{n} missing from {names:?}");
    }
    assert!(
        ["chmod", "fchmodat", "fchmodat2"]
            .iter()
            .any(|n| names.contains(*n)),
        "no chmod in {names:?}"
    );
    // The file beside the per-container ones is the same profile.
    let file = daemon.profiles.join("images").join(format!(
        "{}.json",
        key.replace('/', "+")
            .replace(':', "%3A")
            .replace('@', "%40")
    ));
    assert_eq!(allowed_names(&fs::read_to_string(&file).unwrap()), names);
    let unknown = run(&mut daemon.ctl(&["profile", "--image", "no/such-image"]));
    assert_eq!(unknown.status.code(), Some(1));
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");

    // All three workloads in one container, under the image profile: they
    // run; and that run, under a chosen profile, stays out of the image.
    let enforced = dir.join("image-profile.json");
    fs::write(&enforced, &profile).unwrap();
    let seccomp = format!("seccomp={}", enforced.display());
    run_container(&daemon, &dir, &["--security-opt", &seccomp], IMAGE, ALL);
    // Its index entry follows its file; the image row would have too.
    wait_for("the enforced run's index entry", 30, || {
        let out = daemon.ctl_ok(&["profiles", "--output", "json"]);
        let entries: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        (entries.len() == 5).then_some(())
    });
    assert_eq!(
        row(&daemon, &id, 4)["runs"],
        4,
        "a chosen-profile run fed the image"
    );

    // Restart, then kill -9: the row and the profile stay.
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        daemon.0.signal(signal);
        daemon.0.spawn();
        let again = row(&daemon, &id, 4);
        assert_eq!(again["runs"], 4, "after signal {signal}: {again}");
        assert_eq!(again["last_new"], r["last_new"]);
        let after = daemon.ctl_ok(&["profile", "--image", IMAGE]);
        assert_eq!(allowed_names(&after), names, "after signal {signal}");
    }
}

#[test]
fn excluded_images_are_not_recorded() {
    require_root();
    busybox_rootfs();
    let dir = scratch("images-exclude");
    let _dockerd = Dockerd::start(&dir);
    let excluded = "recorder-test/excluded";
    run_ok(&mut docker(&["tag", IMAGE, excluded]));
    let daemon = Daemon(daemon::Daemon::start(
        "images-exclude",
        &["--all", "--exclude-image", "recorder-test/excl*"],
    ));
    let cidfile = dir.join("cid-excluded");
    assert!(ran_to(
        &mut docker(&[
            "run",
            "--rm",
            "--cidfile",
            cidfile.to_str().unwrap(),
            excluded,
            "sh",
            "-c",
            MKDIR,
        ]),
        "DONE"
    ));
    let id = fs::read_to_string(&cidfile).unwrap().trim().to_owned();
    // A container of the same image under its other name is recorded; by
    // then the excluded one would have been written.
    run_container(&daemon, &dir, &[], IMAGE, MKDIR);
    wait_for("the scope's refusal in the log", 30, || {
        daemon
            .log_text()
            .lines()
            .any(|l| l.contains(&id) && l.contains("out of scope"))
            .then_some(())
    });
    assert!(!daemon.profiles.join(format!("{id}.json")).exists());
    let rows = images(&daemon);
    let excluded = format!("{excluded}:latest");
    assert!(rows.iter().all(|r| r["image"] != excluded), "{rows:?}");
    let image = format!("{IMAGE}:latest");
    assert!(rows.iter().any(|r| r["image"] == image), "{rows:?}");
}

/// One image, one profile: runs as `NAME:1`, `docker.io/NAME:1`, `NAME`
/// (its `latest` tag) and by short id feed one row, keyed by the id, which
/// `profile --image` finds by any of them.
#[test]
fn every_name_of_an_image_feeds_one_row() {
    require_root();
    busybox_rootfs();
    let dir = scratch("images-one-row");
    let _dockerd = Dockerd::start(&dir);
    let name = "recorder-test/one-image";
    let tagged = format!("{name}:1");
    run_ok(&mut docker(&["tag", IMAGE, &tagged]));
    run_ok(&mut docker(&["tag", &tagged, name]));
    let id = image_id(&tagged);
    let short = id["sha256:".len()..][..12].to_owned();
    let daemon = Daemon(daemon::Daemon::start("images-one-row", &["--all"]));
    let spellings = [
        tagged.clone(),
        format!("docker.io/{tagged}"),
        name.to_owned(),
        short.clone(),
    ];
    for image in &spellings {
        run_container(&daemon, &dir, &[], image, MKDIR);
    }
    // Containers of other tests (a shared dockerd) have other ids.
    let mine = wait_for("the runs in the image rows", 30, || {
        let rows: Vec<_> = images(&daemon)
            .into_iter()
            .filter(|r| r["id"] == id.as_str())
            .collect();
        let runs: u64 = rows.iter().filter_map(|r| r["runs"].as_u64()).sum();
        (runs >= 4).then_some(rows)
    });
    assert_eq!(mine.len(), 1, "one row per image: {mine:?}");
    let r = &mine[0];
    assert_eq!(r["runs"], 4, "{r}");
    assert_eq!(
        (&r["key"], &r["keyed_by"]),
        (&id.as_str().into(), &"id".into())
    );
    let latest = format!("{name}:latest");
    assert_eq!(r["references"], serde_json::json!([tagged, latest]), "{r}");
    assert_eq!(r["image"], latest.as_str(), "the most recent reference");
    let label = format!("{tagged}@{short}");
    assert_eq!(r["label"], label.as_str(), "{r}");
    let file = daemon.profiles.join("images").join(format!(
        "{}.json",
        label
            .replace('/', "+")
            .replace(':', "%3A")
            .replace('@', "%40")
    ));
    let names = allowed_names(&fs::read_to_string(&file).unwrap());
    for spec in [
        &tagged,
        &format!("docker.io/{tagged}"),
        &latest,
        name,
        &short[..6],
        &id,
        &label,
    ] {
        let profile = daemon.ctl_ok(&["profile", "--image", spec]);
        assert_eq!(allowed_names(&profile), names, "profile --image {spec}");
    }
    let spo = daemon.ctl_ok(&["profile", "--image", name, "--format", "spo"]);
    assert!(
        spo.contains("  name: recorder-test-one-image-latest\n"),
        "{spo}"
    );
}
