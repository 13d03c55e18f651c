//! Recordings' lifecycle: stop, resume after a restart, auto-mode adoption.

use super::*;

#[tokio::test]
async fn stop_writes_the_union_of_the_kernel_sets_and_forgets_the_recording() {
    let s = Setup::new();
    let app = s.mkdir("/app");
    let sub = s.mkdir("/app/sub");
    let mut m = s.manager();
    let started = m
        .handle(Request::Start {
            target: cgroup("/app"),
            base: None,
            output: None,
            prestart: None,
        })
        .await
        .expect("start");
    assert!(matches!(started, Outcome::Started(ref i) if i.cgroup_id == app));
    // The existing sub-cgroup is recorded as part of the container.
    assert_eq!(s.fake().sets.get(&sub).map(|x| x.owner), Some(app));
    s.fake().call(app, "mkdir");
    s.fake().call(sub, "chmod");
    let Outcome::List(list) = m.handle(Request::List).await.expect("list") else {
        panic!("not a list");
    };
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].syscalls, 2);

    let Outcome::Stopped { path, recording } = m
        .handle(Request::Stop {
            target: cgroup("/app"),
            base: None,
        })
        .await
        .expect("stop")
    else {
        panic!("not stopped");
    };
    assert_eq!(
        path,
        s.config.profiles_dir.join(format!("cgroup-{app}.json"))
    );
    assert_eq!(recording.syscalls, 2);
    assert_eq!(allowed(&path), ["chmod", "mkdir"]);
    assert!(s.fake().sets.is_empty(), "both cgroups left the map");
    assert!(m.recordings().is_empty());
    let Outcome::Profiles(index) = m.handle(Request::Profiles).await.expect("index") else {
        panic!("not the index");
    };
    assert_eq!(index.len(), 1);
    assert_eq!(index[0].path, path);
    let again = m
        .handle(Request::Stop {
            target: cgroup("/app"),
            base: None,
        })
        .await;
    assert!(
        matches!(again, Err(ManagerError::NotRecording(_))),
        "{again:?}"
    );
}

#[tokio::test]
async fn resume_adopts_enrolled_containers_finishes_gone_ones_and_drops_strays() {
    let s = Setup::new();
    // A recording saved by the last run whose cgroup went away meanwhile;
    // the kernel kept its set.
    // Every directory is made before /gone is removed: a cgroup id is an
    // inode number, and a freed one may be handed out again at once.
    let gone = s.mkdir("/gone");
    let leaf = format!("libpod-{HEX}.scope");
    let pod = s.mkdir(&format!("/machine.slice/{leaf}"));
    let stray = s.mkdir("/stray");
    std::fs::remove_dir(s.root.join("cg/gone")).expect("rmdir");
    s.fake().enrol(gone, gone, "gone");
    s.fake().call(gone, "mkdir");
    let saved = state::Recording {
        owner: gone,
        container: crate::container::Container {
            name: Some("web".to_owned()),
            ..crate::container::ContainerRef::cgroup(gone).into()
        },
        cgroup: "/gone".to_owned(),
        started: 1,
        auto: false,
        base: None,
        base_blocks: false,
        output: None,
        finishing: false,
        write_error: None,
        policy: crate::profile::Policy::Unconfined,
        chosen_profile: None,
        drift: Default::default(),
        denied: Vec::new(),
    };
    state::save(&s.config.state_dir, vec![saved]);
    // A podman container the kernel enrolled while no daemon ran.
    s.fake().enrol(pod, pod, &leaf);
    // A set nobody can own: not a container, not saved.
    s.fake().enrol(stray, stray, "stray");

    let mut m = s.manager();
    m.resume().await;

    assert_eq!(
        allowed(&s.config.profiles_dir.join(format!("cgroup-{gone}.json"))),
        ["mkdir"]
    );
    let r = m.recordings().get(&pod).expect("adopted");
    assert!(r.auto);
    assert_eq!(r.key(), HEX);
    assert_eq!(r.cgroup, format!("/machine.slice/{leaf}"));
    assert_eq!(m.recordings().len(), 1);
    let left: Vec<u64> = s.fake().sets.keys().copied().collect();
    assert_eq!(left, [pod], "the gone recording and the stray are removed");
}

#[tokio::test]
async fn auto_mode_adopts_enrolled_roots_not_their_sub_cgroups_and_finishes_on_rmdir() {
    let s = Setup::new();
    let leaf = format!("docker-{HEX}.scope");
    let rel = format!("/system.slice/{leaf}");
    let root = s.mkdir(&rel);
    let sub = s.mkdir(&format!("{rel}/init"));
    s.fake().enrol(root, root, &leaf);
    s.fake().enrol(sub, root, "init");
    let mut m = s.manager();
    let mkdir = |id| CgroupEvent {
        kind: EVENT_MKDIR,
        enrolled: 1,
        id,
    };
    m.on_event(mkdir(root)).await;
    m.on_event(mkdir(sub)).await;
    // Not enrolled by the kernel: not ours.
    m.on_event(CgroupEvent {
        kind: EVENT_MKDIR,
        enrolled: 0,
        id: 4242,
    })
    .await;
    assert_eq!(m.recordings().keys().copied().collect::<Vec<_>>(), [root]);
    assert_eq!(
        m.recordings()[&root].runtime(),
        crate::container::Runtime::Docker
    );

    s.fake().call(sub, "chmod");
    std::fs::remove_dir(s.root.join(format!("cg{rel}/init"))).expect("rmdir");
    std::fs::remove_dir(s.root.join(format!("cg{rel}"))).expect("rmdir");
    m.on_event(CgroupEvent {
        kind: EVENT_RMDIR,
        enrolled: 1,
        id: root,
    })
    .await;
    assert_eq!(
        allowed(&s.config.profiles_dir.join(format!("{HEX}.json"))),
        ["chmod"]
    );
    assert!(m.recordings().is_empty());
}

/// A container whose cgroup is gone before the manager takes its mkdir
/// event keeps what was captured when the cgroup was made (here its
/// cgroup path; for a real container also its name, image and policy).
#[tokio::test]
async fn a_capture_made_at_mkdir_outlives_the_cgroup() {
    let s = Setup::new();
    let leaf = format!("docker-{HEX}.scope");
    let rel = format!("/system.slice/{leaf}");
    let root = s.mkdir(&rel);
    s.fake().enrol(root, root, &leaf);
    let mut m = s.manager();
    let captures = m.captures();
    captures.capture(&s.handle, &s.hierarchy(), root).await;
    assert!(!captures.pending(root));
    // A sub-cgroup, or a cgroup the kernel did not make a root: nothing.
    captures.capture(&s.handle, &s.hierarchy(), 4242).await;
    assert!(captures.take(4242).is_none());
    std::fs::remove_dir(s.root.join(format!("cg{rel}"))).expect("rmdir");
    m.on_event(CgroupEvent {
        kind: EVENT_MKDIR,
        enrolled: 1,
        id: root,
    })
    .await;
    let r = &m.recordings()[&root];
    assert_eq!(r.cgroup, rel, "the path captured, not (removed)/…");
    assert_eq!(r.runtime(), crate::container::Runtime::Docker);
    assert!(captures.take(root).is_none(), "taken by the adoption");
    // The next tick finishes it: its cgroup is gone.
    m.tick().await;
    assert!(m.recordings().is_empty());
    assert!(s.config.profiles_dir.join(format!("{HEX}.json")).exists());
}
