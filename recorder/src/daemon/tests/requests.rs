//! Requests refused or failing: targets, a full map, a dead kernel task;
//! and a reload.

use super::*;

#[tokio::test]
async fn targets_are_refused_with_the_right_kind() {
    let s = Setup::new();
    let mut m = s.manager();
    for leaf in [
        format!("libpod-abc1{}", &HEX[4..]),
        format!("libpod-abc2{}", &HEX[4..]),
    ] {
        s.mkdir(&format!("/machine.slice/{leaf}"));
        m.handle(Request::Start {
            target: cgroup(&format!("/machine.slice/{leaf}")),
            base: None,
            output: None,
            prestart: None,
        })
        .await
        .expect("start");
    }
    let stop = |spec: &str| Request::Stop {
        target: Target::Container(spec.to_owned()),
        base: None,
    };
    let kind_of = |r: Result<Outcome, ManagerError>| server::kind(&r.expect_err("refused"));
    assert_eq!(kind_of(m.handle(stop("abc")).await), ErrorKind::Ambiguous);
    assert_eq!(
        kind_of(m.handle(stop("fff")).await),
        ErrorKind::NotRecording
    );
    let again = m
        .handle(Request::Start {
            target: cgroup(&format!("/machine.slice/libpod-abc1{}", &HEX[4..])),
            base: None,
            output: None,
            prestart: None,
        })
        .await;
    let again = again.expect_err("refused");
    assert_eq!(server::kind(&again), ErrorKind::AlreadyRecording);
    // The time as `list` shows it, not epoch seconds.
    let since = crate::timefmt::format_time(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    );
    let text = again.to_string();
    assert!(
        text.contains(&format!("(since {}", &since[..11])) && text.ends_with("Z)"),
        "{text}"
    );
    let missing = m
        .handle(Request::Start {
            target: cgroup("/nowhere"),
            base: None,
            output: None,
            prestart: None,
        })
        .await;
    assert_eq!(kind_of(missing), ErrorKind::NotFound);
    let relative = m
        .handle(Request::Start {
            target: cgroup("/machine.slice"),
            base: None,
            output: Some(PathBuf::from("rel/p.json")),
            prestart: None,
        })
        .await;
    assert_eq!(kind_of(relative), ErrorKind::BadRequest);
    // A unique prefix finds the recording.
    assert!(m.handle(stop("abc2")).await.is_ok());
}

#[tokio::test]
async fn a_full_map_is_refused_as_map_full_and_counted() {
    let s = Setup::new();
    s.fake().capacity = 1;
    s.mkdir("/a");
    s.mkdir("/b");
    let mut m = s.manager();
    let start = |p: &str| Request::Start {
        target: cgroup(p),
        base: None,
        output: None,
        prestart: None,
    };
    m.handle(start("/a")).await.expect("first fits");
    let full = m.handle(start("/b")).await.expect_err("map full");
    assert_eq!(server::kind(&full), ErrorKind::MapFull);
    assert!(
        full.to_string()
            .contains("the recording map is full (1 cgroups)"),
        "{full}"
    );
    assert_eq!(
        s.counters
            .map_full_refusals
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(m.recordings().len(), 1);
}

#[tokio::test]
async fn a_dead_kernel_task_is_an_error_not_zeros() {
    let s = Setup::new();
    let (tx, rx) = mpsc::channel(1);
    drop(rx);
    let mut m = Manager::new(
        s.config.clone(),
        s.hierarchy(),
        KernelHandle::new(tx),
        s.counters.clone(),
        SharedSnapshot::default(),
    );
    for req in [Request::Status, Request::List] {
        let e = m.handle(req).await.expect_err("kernel gone");
        assert_eq!(server::kind(&e), ErrorKind::Internal);
        assert!(e.to_string().contains("kernel task stopped"), "{e}");
    }
}

#[tokio::test]
async fn reload_gives_the_kernel_the_new_patterns() {
    let s = Setup::new();
    let (tx, rx) = mpsc::channel(4);
    let m = s.manager();
    let run = tokio::spawn(m.run(rx));
    let config = Config {
        record_all: true,
        ..s.config.clone()
    };
    tx.send(crate::daemon::manager::ManagerMsg::Reload(Box::new(config)))
        .await
        .expect("send");
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    tx.send(crate::daemon::manager::ManagerMsg::Shutdown {
        release: false,
        done: done_tx,
    })
    .await
    .expect("send");
    done_rx.await.expect("shut down");
    run.await.expect("manager");
    assert_eq!(
        s.fake().patterns_set,
        Config::default().auto_patterns.len(),
        "auto mode on: every default pattern"
    );
}
