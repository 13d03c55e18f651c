//! The manager's decisions, tested without root: a fake kernel task answers
//! the manager's commands from an in-memory map, and a temporary directory
//! stands in for the cgroup2 hierarchy (a cgroup's id is its directory's
//! inode number, as on cgroupfs).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use recorder_common::{CgroupEvent, EVENT_MKDIR, EVENT_RMDIR, SyscallSet};
use tokio::sync::mpsc;

use super::{
    kernel_task::{KernelCmd, KernelHandle, KernelSnapshot},
    manager::Manager,
    outcome::{ManagerError, Outcome},
    server, state,
};
use crate::{
    cgroup::{Hierarchy, Layout},
    config::Config,
    control::{ErrorKind, Request, Target},
    ebpf::{KernelError, KernelInfo},
    metrics::{Counters, SharedSnapshot},
    profile::Profile,
    syscalls::Abi,
};

/// What the fake kernel holds; tests read and change it between requests.
#[derive(Default)]
struct FakeKernel {
    sets: BTreeMap<u64, SyscallSet>,
    leaves: BTreeMap<u64, String>,
    capacity: usize,
    patterns_set: usize,
}

impl FakeKernel {
    /// Records syscall `name` (native ABI) in cgroup `id`.
    fn call(&mut self, id: u64, name: &str) {
        let nr = Abi::native().number(name).expect("known syscall");
        let set = self.sets.get_mut(&id).expect("recorded cgroup");
        set.native[nr as usize / 64] |= 1 << (nr % 64);
    }

    /// Enrols cgroup `id` as the kernel does in auto mode.
    fn enrol(&mut self, id: u64, owner: u64, leaf: &str) {
        self.sets.insert(id, SyscallSet::new(owner, 0));
        self.leaves.insert(id, leaf.to_owned());
    }

    fn handle(&mut self, cmd: KernelCmd) {
        match cmd {
            KernelCmd::Insert {
                ids,
                owner,
                phase,
                reply,
            } => {
                let mut result = Ok(());
                for id in ids {
                    if self.sets.len() >= self.capacity && !self.sets.contains_key(&id) {
                        result = Err(KernelError::MapFull {
                            capacity: self.capacity as u32,
                        });
                        break;
                    }
                    self.sets
                        .entry(id)
                        .or_insert_with(|| SyscallSet::new(owner, phase));
                }
                _ = reply.send(result);
            }
            KernelCmd::Remove { owner, reply } => {
                self.sets
                    .retain(|id, s| !crate::ebpf::belongs_to(*id, s, owner));
                _ = reply.send(());
            }
            KernelCmd::Entries { reply } => {
                _ = reply.send(self.entries());
            }
            KernelCmd::Leaf { id, reply } => {
                _ = reply.send(self.leaves.get(&id).cloned());
            }
            KernelCmd::Info { reply } => {
                _ = reply.send(self.info());
            }
            KernelCmd::Snapshot { reply } => {
                _ = reply.send(KernelSnapshot {
                    entries: self.entries(),
                    info: self.info(),
                    programs: Vec::new(),
                });
            }
            KernelCmd::Patterns {
                patterns, reply, ..
            } => {
                self.patterns_set = patterns.len();
                _ = reply.send(Ok(()));
            }
        }
    }

    fn entries(&self) -> Vec<(u64, SyscallSet)> {
        self.sets.iter().map(|(id, s)| (*id, *s)).collect()
    }

    fn info(&self) -> KernelInfo {
        KernelInfo {
            entries: self.sets.len(),
            capacity: self.capacity as u32,
            attached: !self.sets.is_empty(),
            ..KernelInfo::default()
        }
    }
}

/// A manager on a temporary "cgroup2" tree, its dirs, and the fake kernel.
struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    config: Config,
    kernel: Arc<Mutex<FakeKernel>>,
    handle: KernelHandle,
    counters: Arc<Counters>,
}

impl Setup {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().to_path_buf();
        std::fs::create_dir_all(root.join("cg")).expect("cgroup root");
        let config = Config {
            profiles_dir: root.join("profiles"),
            state_dir: root.join("state"),
            ..Config::default()
        };
        std::fs::create_dir_all(&config.profiles_dir).expect("profiles dir");
        std::fs::create_dir_all(&config.state_dir).expect("state dir");
        let kernel = Arc::new(Mutex::new(FakeKernel {
            capacity: 16,
            ..FakeKernel::default()
        }));
        let (tx, mut rx) = mpsc::channel::<KernelCmd>(16);
        let fake = kernel.clone();
        tokio::spawn(async move {
            while let Some(cmd) = rx.recv().await {
                fake.lock().expect("fake kernel").handle(cmd);
            }
        });
        Self {
            _tmp: tmp,
            root,
            config,
            kernel,
            handle: KernelHandle::new(tx),
            counters: Arc::new(Counters::default()),
        }
    }

    fn hierarchy(&self) -> Hierarchy {
        Hierarchy {
            mount: self.root.join("cg"),
            layout: Layout::Unified,
        }
    }

    fn manager(&self) -> Manager {
        Manager::new(
            self.config.clone(),
            self.hierarchy(),
            self.handle.clone(),
            self.counters.clone(),
            SharedSnapshot::default(),
        )
    }

    /// Makes cgroup `rel` ("/a/b") and returns its id.
    fn mkdir(&self, rel: &str) -> u64 {
        let h = self.hierarchy();
        h.create(rel).expect("mkdir");
        h.id(rel).expect("id")
    }

    fn fake(&self) -> std::sync::MutexGuard<'_, FakeKernel> {
        self.kernel.lock().expect("fake kernel")
    }
}

fn allowed(path: &Path) -> Vec<String> {
    let p = Profile::read(path).expect("profile");
    p.allowed_names(Abi::native())
        .into_iter()
        .map(str::to_owned)
        .collect()
}

fn cgroup(path: &str) -> Target {
    Target::Cgroup(path.to_owned())
}

const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

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
        key: format!("cgroup-{gone}"),
        container: None,
        name: Some("web".to_owned()),
        image: None,
        pod: None,
        image_id: None,
        cgroup: "/gone".to_owned(),
        started: 1,
        auto: false,
        base: None,
        output: None,
        finishing: false,
        write_error: None,
        policy: crate::profile::Policy::Unconfined,
        chosen_profile: None,
        drift: Default::default(),
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
    assert_eq!(r.key, HEX);
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
        m.recordings()[&root].container.as_ref().map(|c| c.runtime),
        Some(crate::container::Runtime::Docker)
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
    tx.send(super::manager::ManagerMsg::Reload(Box::new(config)))
        .await
        .expect("send");
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    tx.send(super::manager::ManagerMsg::Shutdown {
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
    let before = super::manager::now_secs();
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
    assert!(at >= before && at <= super::manager::now_secs(), "{at}");

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
            key: id.clone(),
            container: Some(crate::container::ContainerRef {
                id,
                runtime: crate::container::Runtime::Docker,
                pod_uid: None,
                namespace: None,
            }),
            name: Some(format!("c{i}")),
            image: Some("test/img".to_owned()),
            image_id: Some("sha256:beef".to_owned()),
            pod: None,
            cgroup: format!("/gone-{i}"),
            started: 1,
            auto: true,
            base: None,
            output: None,
            finishing: false,
            write_error: None,
            policy: crate::profile::Policy::Unconfined,
            chosen_profile: chosen,
            drift: Default::default(),
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
    let kept: Vec<&str> = index.iter().map(|e| &e.key[..1]).collect();
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

#[path = "tests_images.rs"]
mod images;
