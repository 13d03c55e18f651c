//! Image profiles: runs counted and merged, retention, and image rows across
//! an upgrade (a row keyed by id takes over the rows an older recorderd kept
//! of the same image, `reference@id`).

use std::sync::atomic::Ordering;

use redb::TableDefinition;

use super::*;
use crate::{images, index::Index};

/// The table an older recorderd kept its image rows in: key → JSON.
const IMAGES: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("images");

#[tokio::test]
async fn a_row_keyed_by_id_takes_over_the_older_rows_of_its_image() {
    let s = Setup::new();
    // What an older recorderd left: a row keyed `test/img@sha256:beef`,
    // without label or references, and its file.
    let old_file = s
        .config
        .profiles_dir
        .join("images/test+img%40sha256%3Abeef.json");
    {
        let index = Index::open(&s.config.state_dir).expect("index");
        let mut old = images::ImageRow::new(&images::key(Some("test/img"), None, None).unwrap(), 7);
        old.add_run(None, &Profile::default(), 7);
        old.runs = 3;
        (old.key, old.image) = ("test/img@sha256:beef".into(), "test/img".into());
        (old.id, old.label) = (Some("sha256:beef".into()), String::new());
        let tx = index.database().begin_write().expect("tx");
        tx.open_table(IMAGES)
            .expect("table")
            .insert(
                old.key.as_str(),
                serde_json::to_vec(&old).unwrap().as_slice(),
            )
            .expect("insert");
        tx.commit().expect("commit");
        std::fs::create_dir_all(old_file.parent().unwrap()).unwrap();
        std::fs::write(&old_file, "{}").unwrap();
    }
    gone_runs_of_one_image(&s, &[&["mkdir"], &["chmod"]], false);
    let mut m = s.manager();
    m.resume().await;
    let Outcome::Images(rows) = m.handle(Request::Images).await.expect("images") else {
        panic!("not images");
    };
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(
        (r.key.as_str(), r.runs, r.first_seen),
        ("sha256:beef", 5, 7)
    );
    assert_eq!(r.references, ["test/img:latest"]);
    assert!(!old_file.exists(), "the older row's file stays");
    let new_file = s
        .config
        .profiles_dir
        .join("images")
        .join(format!("{}.json", images::file_stem(&r.label)));
    assert!(new_file.exists(), "{}", new_file.display());
}

/// Saves recordings of containers of image `test/img` whose cgroups are
/// gone, one per workload; the last one under a chosen profile when
/// `chosen_last`. A manager that resumes writes their profiles.
fn gone_runs_of_one_image(s: &Setup, workloads: &[&[&str]], chosen_last: bool) {
    let mut saved = Vec::new();
    for (i, calls) in workloads.iter().enumerate() {
        let owner = 1000 + i as u64;
        s.fake().enrol(owner, owner, "gone");
        for c in *calls {
            s.fake().call(owner, c);
        }
        let chosen =
            (chosen_last && i + 1 == workloads.len()).then(|| crate::policy::ChosenProfile {
                path: None,
                digest: "sha256:00".to_owned(),
                default_action: "SCMP_ACT_ERRNO".to_owned(),
                chosen_by: crate::policy::ChosenBy::Docker,
            });
        let id = format!("{i}{}", &HEX[1..]);
        saved.push(state::Recording {
            owner,
            container: crate::container::Container {
                name: Some(format!("c{i}")),
                image: Some("test/img".to_owned()),
                image_id: Some("sha256:beef".to_owned()),
                ..crate::container::ContainerRef {
                    id,
                    runtime: crate::container::Runtime::Docker,
                    ..Default::default()
                }
                .into()
            },
            cgroup: format!("/gone-{i}"),
            started: 1,
            auto: true,
            base: None,
            base_blocks: false,
            output: None,
            finishing: false,
            write_error: None,
            policy: crate::profile::Policy::Unconfined,
            chosen_profile: chosen,
            drift: Default::default(),
            denied: Vec::new(),
        });
    }
    state::save(&s.config.state_dir, saved);
}

/// Containers of one image whose cgroups went while no daemon ran: the
/// restarted manager writes their profiles and merges them into the image
/// profile, counting runs, when the union last grew, and the runs since.
#[tokio::test]
async fn image_profiles_count_runs_and_runs_since_the_last_new_syscall() {
    let s = Setup::new();
    // The last one runs under a chosen profile: left out of the image.
    let workloads: [&[&str]; 5] = [
        &["mkdir"],
        &["chmod"],
        &["symlink"],
        &["symlink"],
        &["ptrace"],
    ];
    gone_runs_of_one_image(&s, &workloads, true);
    let mut m = s.manager();
    m.resume().await;
    assert!(m.recordings().is_empty(), "all five written");
    let Outcome::Images(images) = m.handle(Request::Images).await.expect("images") else {
        panic!("not images");
    };
    assert_eq!(images.len(), 1, "{images:?}");
    let i = &images[0];
    assert_eq!(
        (i.image.as_str(), i.key.as_str()),
        ("test/img:latest", "sha256:beef")
    );
    assert_eq!(i.runs, 4);
    assert_eq!(i.runs_since_last_new, 1);
    assert!(i.last_new >= i.first_seen && !i.ready);
    let Outcome::ImageProfile { profile, .. } = m
        .handle(Request::ImageProfile {
            image: "test/img".to_owned(),
            base: None,
        })
        .await
        .expect("image profile")
    else {
        panic!("not a profile");
    };
    let names = profile.allowed_names(Abi::native());
    for n in ["mkdir", "chmod", "symlink"] {
        assert!(names.contains(n), "{n} missing: {names:?}");
    }
    assert!(
        !names.contains("ptrace"),
        "a chosen-profile run fed the image"
    );
    let file = s
        .config
        .profiles_dir
        .join("images/test+img%3Alatest%40beef.json");
    assert_eq!(allowed(&file), allowed_of(&profile));
    let unknown = m
        .handle(Request::ImageProfile {
            image: "nope".to_owned(),
            base: None,
        })
        .await;
    assert_eq!(
        server::kind(&unknown.expect_err("unknown")),
        ErrorKind::NotFound
    );
}

fn allowed_of(p: &Profile) -> Vec<String> {
    p.allowed_names(Abi::native())
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// Retention: at most `keep_per_image` per-container files of an image;
/// the removed files leave the index too.
#[tokio::test]
async fn retention_keeps_the_newest_files_of_an_image() {
    let mut s = Setup::new();
    s.config.images.keep_per_image = 2;
    let workloads: [&[&str]; 4] = [&["mkdir"], &["chmod"], &["symlink"], &["read"]];
    gone_runs_of_one_image(&s, &workloads, false);
    let mut m = s.manager();
    m.resume().await;
    let Outcome::Profiles(index) = m.handle(Request::Profiles).await.expect("index") else {
        panic!("not the index");
    };
    let kept: Vec<String> = index.iter().map(|e| e.key()[..1].to_owned()).collect();
    assert_eq!(kept, ["2", "3"], "the two newest");
    for (i, _) in workloads.iter().enumerate() {
        let file = s.config.profiles_dir.join(format!("{i}{}.json", &HEX[1..]));
        assert_eq!(file.exists(), i >= 2, "{}", file.display());
    }
    let Outcome::Images(images) = m.handle(Request::Images).await.expect("images") else {
        panic!("not images");
    };
    assert_eq!(images[0].runs, 4, "the image profile keeps every run");
}

fn status_of(outcome: Result<Outcome, ManagerError>) -> crate::control::StatusInfo {
    match outcome {
        Ok(Outcome::Status(s)) => s,
        other => panic!("not a status: {other:?}"),
    }
}

/// An image file that cannot be written (a file where `images/` goes):
/// counted once, shown in `status`, retried on the tick until written.
#[tokio::test]
async fn an_image_file_that_cannot_be_written_is_counted_shown_and_retried() {
    let s = Setup::new();
    let blocker = s.config.profiles_dir.join("images");
    std::fs::write(&blocker, "").expect("blocker");
    gone_runs_of_one_image(&s, &[&["mkdir"]], false);
    let mut m = s.manager();
    m.resume().await;
    m.tick().await;
    let status = status_of(m.handle(Request::Status).await);
    assert_eq!(status.pending_image_writes, 1, "{status:?}");
    let error = status.last_error.expect("shown");
    assert!(error.contains("image profile of test/img"), "{error}");
    let counted = |s: &Setup| s.counters.write_errors.load(Ordering::Relaxed);
    assert_eq!(counted(&s), 1, "counted once, whatever the retries");
    std::fs::remove_file(&blocker).expect("unblock");
    m.tick().await;
    let status = status_of(m.handle(Request::Status).await);
    assert_eq!((status.pending_image_writes, status.last_error), (0, None));
    let files: Vec<_> = std::fs::read_dir(&blocker).expect("images/").collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(counted(&s), 1);
}

/// redb panicking is caught: the daemon says it is unhealthy, in `status`
/// and on /healthz's snapshot, and leaves the index alone.
#[tokio::test]
async fn a_panic_in_the_index_leaves_the_daemon_unhealthy() {
    let s = Setup::new();
    let snapshot = SharedSnapshot::default();
    let mut m = Manager::new(
        s.config.clone(),
        s.hierarchy(),
        s.handle.clone(),
        s.counters.clone(),
        snapshot.clone(),
    );
    m.resume().await;
    let config = s.config.clone();
    let r = m
        .images
        .call(&config, |_| -> Result<(), images::ImagesError> {
            panic!("entered unreachable code")
        })
        .await;
    assert!(matches!(r, Err(ManagerError::Images(_))), "{r:?}");
    let status = status_of(m.handle(Request::Status).await);
    let why = status.unhealthy.expect("unhealthy");
    assert!(why.contains("entered unreachable code"), "{why}");
    assert!(
        m.handle(Request::Images).await.is_err(),
        "the index is left alone"
    );
    assert_eq!(s.counters.index_failures.load(Ordering::Relaxed), 1);
    // What /healthz reads: its 503 and the reason.
    m.tick().await;
    let seen = snapshot.read().expect("snapshot").unhealthy.clone();
    assert!(seen.is_some_and(|w| w.contains("redb panicked")));
}
