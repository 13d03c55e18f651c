//! Writing profiles: failed writes retried and reported, partial profiles.

use super::*;

#[tokio::test]
async fn a_failed_write_keeps_the_recording_and_the_next_tick_retries_it() {
    let s = Setup::new();
    let app = s.mkdir("/app");
    // A regular file where the output's directory should be: ENOTDIR.
    let blocker = s.root.join("out");
    std::fs::write(&blocker, "").expect("blocker");
    let output = blocker.join("app.json");
    let mut m = s.manager();
    m.handle(Request::Start {
        target: cgroup("/app"),
        base: None,
        output: Some(output.clone()),
        prestart: None,
    })
    .await
    .expect("start");
    s.fake().call(app, "mkdir");

    let stop = m
        .handle(Request::Stop {
            target: cgroup("/app"),
            base: None,
        })
        .await;
    let Err(e @ ManagerError::Write { .. }) = stop else {
        panic!("expected a write error, got {stop:?}");
    };
    assert_eq!(server::kind(&e), ErrorKind::Internal);
    let Outcome::Status(status) = m.handle(Request::Status).await.expect("status") else {
        panic!("not a status");
    };
    assert_eq!(status.pending_writes, 1);
    assert!(status.last_error.is_some_and(|e| e.contains("retrying")));
    assert!(s.fake().sets.contains_key(&app), "the set stays in the map");
    // Saved, so a restart would retry too.
    assert!(state::load(&s.config.state_dir)[0].write_error.is_some());

    std::fs::remove_file(&blocker).expect("unblock");
    std::fs::create_dir(&blocker).expect("dir");
    m.tick().await;
    assert_eq!(allowed(&output), ["mkdir"]);
    assert!(m.recordings().is_empty());
    assert!(s.fake().sets.is_empty());
}

#[tokio::test]
async fn a_failing_write_counts_once_has_a_time_and_clears_on_success() {
    let s = Setup::new();
    s.mkdir("/app");
    let blocker = s.root.join("out");
    std::fs::write(&blocker, "").expect("blocker");
    let mut m = s.manager();
    m.handle(Request::Start {
        target: cgroup("/app"),
        base: None,
        output: Some(blocker.join("app.json")),
        prestart: None,
    })
    .await
    .expect("start");
    let before = crate::timefmt::now_secs();
    let stop = m
        .handle(Request::Stop {
            target: cgroup("/app"),
            base: None,
        })
        .await;
    assert!(matches!(stop, Err(ManagerError::Write { .. })), "{stop:?}");
    // Four retries of the same failing write: one failure counted.
    for _ in 0..4 {
        m.tick().await;
    }
    let written = |c: &Counters| c.write_errors.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(written(&s.counters), 1);
    let Outcome::Status(status) = m.handle(Request::Status).await.expect("status") else {
        panic!("not a status");
    };
    assert_eq!(status.pending_writes, 1);
    assert!(status.last_error.is_some());
    let at = status.last_error_at.expect("a time");
    assert!(at >= before && at <= crate::timefmt::now_secs(), "{at}");

    std::fs::remove_file(&blocker).expect("unblock");
    std::fs::create_dir(&blocker).expect("dir");
    m.tick().await;
    let Outcome::Status(status) = m.handle(Request::Status).await.expect("status") else {
        panic!("not a status");
    };
    assert_eq!(status.pending_writes, 0);
    assert_eq!(status.last_error, None, "cleared once the write succeeded");
    assert_eq!(status.last_error_at, None);
    assert_eq!(written(&s.counters), 1);
}

#[tokio::test]
async fn the_full_profile_replaces_a_stale_partial_one() {
    let s = Setup::new();
    let app = s.mkdir("/app");
    let mut m = s.manager();
    m.handle(Request::Start {
        target: cgroup("/app"),
        base: None,
        output: None,
        prestart: None,
    })
    .await
    .expect("start");
    // What a shutdown left beside the profile to come.
    let partial = s
        .config
        .profiles_dir
        .join(format!("cgroup-{app}.partial.json"));
    std::fs::write(&partial, "{}").expect("partial");
    let Outcome::Stopped { path, .. } = m
        .handle(Request::Stop {
            target: cgroup("/app"),
            base: None,
        })
        .await
        .expect("stop")
    else {
        panic!("not stopped");
    };
    assert!(path.exists());
    assert!(!partial.exists(), "the stale partial profile stayed");
}
