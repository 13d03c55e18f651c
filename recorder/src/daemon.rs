//! recorderd: the tasks and the data flow.
//!
//! * the kernel task owns the loaded eBPF object ([`Kernel`]) and its ring
//!   buffer; everything else sends it [`KernelCmd`]s;
//! * the manager task owns the recordings: it serves control requests,
//!   reacts to cgroup events, finds removed cgroups, and writes profiles;
//! * the control server accepts connections and passes authenticated
//!   requests to the manager;
//! * a ticker and the signal handlers feed the manager too.

use std::{
    collections::BTreeMap,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use recorder_common::{CgroupEvent, EVENT_MKDIR, EVENT_RMDIR, PHASE_WORKLOAD, SyscallSet};
use serde::{Deserialize, Serialize};
use tokio::{
    io::unix::AsyncFd,
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
};

use crate::{
    cgroup::{CgroupError, Hierarchy},
    config::Config,
    container::{self, ContainerError, ContainerRef, Runtime},
    control::{self, ErrorKind, RecordingInfo, Refusal, Reply, Request, StatusInfo, Target},
    ebpf::{Kernel, KernelError, KernelInfo, LoadOptions},
    metrics::Counters,
    names,
    profile::{self, Profile, Recorded},
};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    System(#[from] crate::system::SystemError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error("cannot set up {path}")]
    Setup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("socket group '{0}' does not exist")]
    NoGroup(String),
    #[error("the kernel task stopped")]
    KernelGone,
}

fn setup_err(path: &Path) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |source| DaemonError::Setup {
        path: path.to_owned(),
        source,
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// ---------------------------------------------------------------- kernel task

/// Requests to the kernel task.
pub enum KernelCmd {
    /// Records cgroups `ids` as part of recording `owner`.
    Insert {
        ids: Vec<u64>,
        owner: u64,
        phase: u32,
        reply: oneshot::Sender<Result<(), KernelError>>,
    },
    /// The sets of every cgroup of recording `owner`.
    Collect {
        owner: u64,
        reply: oneshot::Sender<Vec<SyscallSet>>,
    },
    /// Forgets recording `owner` (all its cgroups).
    Remove { owner: u64 },
    /// Every recorded cgroup: id and set.
    Entries {
        reply: oneshot::Sender<Vec<(u64, SyscallSet)>>,
    },
    /// The leaf name the kernel saved for an enrolled cgroup.
    Leaf {
        id: u64,
        reply: oneshot::Sender<Option<String>>,
    },
    /// Map and attach state.
    Info { reply: oneshot::Sender<KernelInfo> },
    /// New auto-mode patterns (empty: auto mode off).
    Patterns {
        patterns: Vec<recorder_common::LeafPattern>,
        record_all: bool,
    },
    /// The kernel's run statistics of the loaded programs (metrics).
    ProgramStats {
        reply: oneshot::Sender<Vec<crate::ebpf::ProgramStats>>,
    },
}

struct KernelTask {
    kernel: Kernel,
    record_all: bool,
    detach_when_idle: bool,
}

impl KernelTask {
    /// Attaches the recorder when something is (or may be) recorded, and
    /// detaches it otherwise, so an idle host pays nothing.
    fn settle(&mut self) {
        let busy = self.record_all || !self.kernel.is_empty() || !self.detach_when_idle;
        let result = if busy {
            self.kernel.attach()
        } else {
            self.kernel.detach()
        };
        if let Err(e) = result {
            log::error!("{e}");
        }
    }

    fn handle(&mut self, cmd: KernelCmd) {
        // Commands come at least once per tick (the manager's reconcile).
        self.kernel.sweep();
        match cmd {
            KernelCmd::Insert {
                ids,
                owner,
                phase,
                reply,
            } => {
                let mut result = Ok(());
                for id in ids {
                    if let Err(e) = self.kernel.insert(id, owner, phase) {
                        result = Err(e);
                        break;
                    }
                }
                self.settle();
                let _ = reply.send(result);
            }
            KernelCmd::Collect { owner, reply } => {
                let sets = self
                    .kernel
                    .owned_by(owner)
                    .into_iter()
                    .map(|(_, s)| s)
                    .collect();
                let _ = reply.send(sets);
            }
            KernelCmd::Remove { owner } => {
                self.kernel.remove_owner(owner);
                self.settle();
            }
            KernelCmd::Entries { reply } => {
                let _ = reply.send(self.kernel.entries());
            }
            KernelCmd::Leaf { id, reply } => {
                let _ = reply.send(self.kernel.leaf(id));
            }
            KernelCmd::Info { reply } => {
                let _ = reply.send(self.kernel.info());
            }
            KernelCmd::Patterns {
                patterns,
                record_all,
            } => {
                if let Err(e) = self.kernel.set_leaf_patterns(&patterns) {
                    log::error!("{e}");
                }
                self.record_all = record_all;
                self.settle();
            }
            KernelCmd::ProgramStats { reply } => {
                let _ = reply.send(self.kernel.program_stats());
            }
        }
    }

    async fn run(
        mut self,
        mut cmds: mpsc::Receiver<KernelCmd>,
        events: mpsc::Sender<CgroupEvent>,
    ) -> Result<(), DaemonError> {
        let ring = self.kernel.take_events()?;
        // SAFETY: the ring buffer owns its map fd, which stays open and
        // unchanged for as long as the AsyncFd owns the ring buffer.
        let mut ring = unsafe { AsyncFd::register(ring) }.map_err(|e| DaemonError::Setup {
            path: PathBuf::from("EVENTS ring buffer"),
            source: std::io::Error::other(e.to_string()),
        })?;
        loop {
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => return Ok(()),
                },
                guard = ring.readable_mut() => {
                    let Ok(mut guard) = guard else { continue };
                    let ring = guard.get_inner_mut();
                    let mut batch = Vec::new();
                    while let Some(item) = ring.next() {
                        if item.len() >= std::mem::size_of::<CgroupEvent>() {
                            // SAFETY: the kernel wrote a CgroupEvent here; read unaligned.
                            let ev = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<CgroupEvent>()) };
                            batch.push(ev);
                        }
                    }
                    guard.clear_ready();
                    for ev in batch {
                        let _ = events.send(ev).await;
                    }
                }
            }
        }
    }
}

/// A handle for talking to the kernel task.
#[derive(Clone)]
pub struct KernelHandle(mpsc::Sender<KernelCmd>);

impl KernelHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> KernelCmd,
    ) -> Result<T, DaemonError> {
        let (tx, rx) = oneshot::channel();
        self.0
            .send(make(tx))
            .await
            .map_err(|_| DaemonError::KernelGone)?;
        rx.await.map_err(|_| DaemonError::KernelGone)
    }

    pub async fn insert(
        &self,
        ids: Vec<u64>,
        owner: u64,
        phase: u32,
    ) -> Result<Result<(), KernelError>, DaemonError> {
        self.ask(|reply| KernelCmd::Insert {
            ids,
            owner,
            phase,
            reply,
        })
        .await
    }

    pub async fn collect(&self, owner: u64) -> Result<Vec<SyscallSet>, DaemonError> {
        self.ask(|reply| KernelCmd::Collect { owner, reply }).await
    }

    pub async fn remove(&self, owner: u64) -> Result<(), DaemonError> {
        self.0
            .send(KernelCmd::Remove { owner })
            .await
            .map_err(|_| DaemonError::KernelGone)
    }

    pub async fn entries(&self) -> Result<Vec<(u64, SyscallSet)>, DaemonError> {
        self.ask(|reply| KernelCmd::Entries { reply }).await
    }

    pub async fn leaf(&self, id: u64) -> Result<Option<String>, DaemonError> {
        self.ask(|reply| KernelCmd::Leaf { id, reply }).await
    }

    pub async fn info(&self) -> Result<KernelInfo, DaemonError> {
        self.ask(|reply| KernelCmd::Info { reply }).await
    }

    pub async fn program_stats(&self) -> Result<Vec<crate::ebpf::ProgramStats>, DaemonError> {
        self.ask(|reply| KernelCmd::ProgramStats { reply }).await
    }
}

// ---------------------------------------------------------------- manager

/// One recording: a container (or cgroup) and the cgroups that belong to it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recording {
    /// The cgroup id of its root cgroup (the kernel sets' `owner`).
    pub owner: u64,
    /// Container id, or `cgroup-<owner>`.
    pub key: String,
    pub container: Option<ContainerRef>,
    pub name: Option<String>,
    /// The image, where the runtime's metadata tells it (at start).
    #[serde(default)]
    pub image: Option<String>,
    pub cgroup: String,
    pub started: u64,
    pub auto: bool,
    pub base: Option<Profile>,
    /// Where to write the profile instead of `<profiles-dir>/<key>.json`.
    pub output: Option<PathBuf>,
    /// `stop` was asked, or the cgroup is gone: the profile is due.
    #[serde(default)]
    pub finishing: bool,
    /// Why the last write failed (kept and retried).
    #[serde(default)]
    pub write_error: Option<String>,
}

impl Recording {
    fn runtime(&self) -> Runtime {
        self.container.as_ref().map_or(Runtime::None, |c| c.runtime)
    }
}

/// The daemon's persistent state (under `state_dir`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    recordings: Vec<Recording>,
}

/// Messages to the manager.
pub enum ManagerMsg {
    Request(Box<Request>, oneshot::Sender<Reply>),
    Event(CgroupEvent),
    Tick,
    Reload(Box<Config>),
    Shutdown(oneshot::Sender<()>),
}

struct Manager {
    config: Config,
    hierarchy: Hierarchy,
    kernel: KernelHandle,
    recordings: BTreeMap<u64, Recording>,
    started: Instant,
    counters: Arc<Counters>,
    last_error: Option<String>,
    reported_enrol_failures: u64,
    metrics: crate::metrics::SharedSnapshot,
}

fn error(kind: ErrorKind, message: impl Into<String>) -> Reply {
    Reply::Error {
        kind,
        message: message.into(),
    }
}

impl Manager {
    fn state_path(&self) -> PathBuf {
        self.config.state_dir.join("recordings.json")
    }

    fn save(&self) {
        let state = State {
            recordings: self.recordings.values().cloned().collect(),
        };
        let text = serde_json::to_vec_pretty(&state).unwrap_or_default();
        if let Err(e) = crate::atomic_file::write(&self.state_path(), &text) {
            log::error!("saving state: {e}");
        }
    }

    fn load_state(&mut self) {
        let path = self.state_path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            return;
        };
        match serde_json::from_str::<State>(&text) {
            Ok(state) => {
                for r in state.recordings {
                    self.recordings.insert(r.owner, r);
                }
            }
            Err(e) => log::error!("ignoring malformed state {}: {e}", path.display()),
        }
    }

    async fn info(&self, r: &Recording) -> RecordingInfo {
        let syscalls = match self.kernel.collect(r.owner).await {
            Ok(sets) => Recorded::from_sets(&sets).0.len(),
            Err(_) => 0,
        };
        RecordingInfo {
            key: r.key.clone(),
            runtime: r.runtime(),
            name: r.name.clone(),
            image: r.image.clone(),
            pod_uid: r.container.as_ref().and_then(|c| c.pod_uid.clone()),
            cgroup: r.cgroup.clone(),
            cgroup_id: r.owner,
            syscalls,
            started: r.started,
            auto: r.auto,
        }
    }

    /// Finds the recording a target names.
    fn find(&self, target: &Target) -> Result<&Recording, Refusal> {
        let found = match target {
            Target::Container(spec) => {
                let id = spec.to_ascii_lowercase();
                let m: Vec<&Recording> = self
                    .recordings
                    .values()
                    .filter(|r| r.key.starts_with(&id) || r.name.as_deref() == Some(spec.as_str()))
                    .collect();
                if m.len() > 1 {
                    return Err(Refusal::new(
                        ErrorKind::Ambiguous,
                        format!(
                            "'{spec}' is ambiguous; it matches: {}",
                            m.iter()
                                .map(|r| r.key.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                m.first().copied()
            }
            Target::Pid(pid) => {
                let cg = self.hierarchy.cgroup_of_pid(*pid).ok();
                self.recordings.values().find(|r| {
                    cg.as_deref()
                        .is_some_and(|c| c == r.cgroup || c.starts_with(&format!("{}/", r.cgroup)))
                })
            }
            Target::Cgroup(path) => self.recordings.values().find(|r| &r.cgroup == path),
        };
        found.ok_or_else(|| {
            Refusal::new(
                ErrorKind::NotRecording,
                format!("{} is not being recorded", describe(target)),
            )
        })
    }

    /// Resolves a target to a cgroup to record.
    fn resolve(&self, target: &Target) -> Result<(String, Option<ContainerRef>), Refusal> {
        match target {
            Target::Container(spec) => {
                let found = names::resolve(&self.hierarchy, spec).map_err(|e| {
                    let kind = match &e {
                        ContainerError::NoMatch(_) => ErrorKind::NotFound,
                        ContainerError::Ambiguous { .. } => ErrorKind::Ambiguous,
                        ContainerError::BadId(_) => ErrorKind::BadRequest,
                        _ => ErrorKind::Internal,
                    };
                    Refusal::new(kind, e.to_string())
                })?;
                Ok((found.cgroup, Some(found.container)))
            }
            Target::Pid(pid) => {
                let cg = self
                    .hierarchy
                    .cgroup_of_pid(*pid)
                    .map_err(|e| Refusal::new(ErrorKind::NotFound, e.to_string()))?;
                let c = container::parse_cgroup_path(&cg);
                Ok((cg, c))
            }
            Target::Cgroup(path) => {
                crate::cgroup::validate_rel(path)
                    .map_err(|e| Refusal::new(ErrorKind::BadRequest, e.to_string()))?;
                if !self.hierarchy.exists(path) {
                    return Err(Refusal::new(
                        ErrorKind::NotFound,
                        format!("cgroup {path} does not exist"),
                    ));
                }
                Ok((path.clone(), container::parse_cgroup_path(path)))
            }
        }
    }

    async fn start(
        &mut self,
        target: Target,
        base: Option<Profile>,
        output: Option<PathBuf>,
    ) -> Reply {
        if let Some(out) = &output
            && (!out.is_absolute()
                || out
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir)))
        {
            return error(
                ErrorKind::BadRequest,
                format!(
                    "output {} must be an absolute path without '..'",
                    out.display()
                ),
            );
        }
        let (cgroup, container) = match self.resolve(&target) {
            Ok(v) => v,
            Err(refusal) => {
                // A docker name the engine knows (its API takes names too).
                let by_engine = match &target {
                    Target::Container(spec) if refusal.kind == ErrorKind::NotFound => {
                        crate::docker_api::inspect(spec).await
                    }
                    _ => None,
                };
                match by_engine.and_then(|c| self.resolve(&Target::Container(c.id)).ok()) {
                    Some(v) => v,
                    None => return refusal.into(),
                }
            }
        };
        let owner = match self.hierarchy.id(&cgroup) {
            Ok(id) => id,
            Err(e) => return error(ErrorKind::NotFound, e.to_string()),
        };
        // Auto mode enrolled the container at mkdir; an OCI hook that asks
        // for it afterwards only says where the profile goes.
        if let Some(r) = self.recordings.get_mut(&owner)
            && r.auto
            && r.output.is_none()
            && output.is_some()
        {
            r.output = output;
            r.base = base;
            let r = r.clone();
            log::info!("recording {}: profile to go to {:?}", r.key, r.output);
            self.save();
            return Reply::Started {
                recording: self.info(&r).await,
            };
        }
        if let Some(r) = self.recordings.get(&owner) {
            return error(
                ErrorKind::AlreadyRecording,
                format!("{} is already being recorded (since {})", r.key, r.started),
            );
        }
        // The container's existing sub-cgroups; future ones are enrolled by
        // the kernel because they are made from inside.
        let mut ids = vec![owner];
        for sub in self.hierarchy.descendants(&cgroup).unwrap_or_default() {
            if let Ok(id) = self.hierarchy.id(&sub) {
                ids.push(id);
            }
        }
        match self.kernel.insert(ids, owner, PHASE_WORKLOAD).await {
            Ok(Ok(())) => {}
            Ok(Err(KernelError::MapFull { capacity })) => {
                self.counters
                    .map_full_refusals
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return error(
                    ErrorKind::MapFull,
                    format!(
                        "cannot record {}: the recording map is full ({capacity} cgroups); stop some recordings or raise `capacity`",
                        describe(&target)
                    ),
                );
            }
            Ok(Err(e)) => return error(ErrorKind::Internal, e.to_string()),
            Err(e) => return error(ErrorKind::Internal, e.to_string()),
        }
        let key = container
            .as_ref()
            .map_or_else(|| format!("cgroup-{owner}"), |c| c.id.clone());
        let (name, image) = match &container {
            Some(c) => name_and_image(c).await,
            None => (None, None),
        };
        let rec = Recording {
            owner,
            key,
            container,
            name,
            image,
            cgroup,
            started: now_secs(),
            auto: false,
            base,
            output,
            finishing: false,
            write_error: None,
        };
        log::info!("recording {} ({})", rec.key, rec.cgroup);
        let info = self.info(&rec).await;
        self.recordings.insert(owner, rec);
        self.save();
        Reply::Started { recording: info }
    }

    fn profile_path(&self, r: &Recording) -> PathBuf {
        r.output
            .clone()
            .unwrap_or_else(|| self.config.profiles_dir.join(format!("{}.json", r.key)))
    }

    async fn build_profile(
        &self,
        r: &Recording,
        extra_base: Option<&Profile>,
    ) -> Result<Profile, DaemonError> {
        let sets = self.kernel.collect(r.owner).await?;
        let bases: Vec<&Profile> = r.base.iter().chain(extra_base).collect();
        let built = profile::build(profile::Inputs {
            sets: &sets,
            bases: &bases,
            ..profile::Inputs::default()
        });
        for (abi, nr) in built.unknown {
            log::warn!(
                "{}: syscall {nr} of {abi} has no name; not in the profile",
                r.key
            );
        }
        for note in built.notes {
            log::info!("{}: merging the base profile: {note}", r.key);
        }
        Ok(built.profile)
    }

    /// Writes the profile of recording `owner` and forgets it. On failure
    /// the recording stays (in memory and in the map) and is retried.
    async fn finish(&mut self, owner: u64) -> Result<PathBuf, String> {
        let Some(r) = self.recordings.get(&owner).cloned() else {
            return Err("not recording".to_owned());
        };
        let path = self.profile_path(&r);
        let profile = self
            .build_profile(&r, None)
            .await
            .map_err(|e| e.to_string())?;
        let text = profile.to_json();
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let write_path = path.clone();
        let result = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            profile::write(&write_path, &text).map_err(std::io::Error::other)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
        match result {
            Ok(()) => {
                log::info!("profile of {} written to {}", r.key, path.display());
                let entry = crate::index::Entry {
                    key: r.key.clone(),
                    runtime: r.runtime(),
                    name: r.name.clone(),
                    image: r.image.clone(),
                    path: path.clone(),
                    written: now_secs(),
                };
                if let Err(e) = crate::index::add(&self.config.state_dir, entry) {
                    log::error!("profile index: {e}");
                }
                self.counters
                    .profiles_written
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let _ = self.kernel.remove(owner).await;
                self.recordings.remove(&owner);
                crate::metrics::forget(&self.metrics, owner);
                self.save();
                Ok(path)
            }
            Err(e) => {
                let msg = format!(
                    "cannot write the profile of {} to {}: {e}; keeping the recording and retrying",
                    r.key,
                    path.display()
                );
                log::error!("{msg}");
                self.counters
                    .write_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.last_error = Some(msg.clone());
                if let Some(r) = self.recordings.get_mut(&owner) {
                    r.finishing = true;
                    r.write_error = Some(e);
                }
                self.save();
                Err(msg)
            }
        }
    }

    async fn handle_request(&mut self, req: Request) -> Reply {
        match req {
            Request::Start {
                target,
                base,
                output,
            } => self.start(target, base, output).await,
            Request::Stop { target, base } => {
                let owner = match self.find(&target) {
                    Ok(r) => r.owner,
                    Err(refusal) => return refusal.into(),
                };
                if let (Some(base), Some(r)) = (base, self.recordings.get_mut(&owner)) {
                    match &mut r.base {
                        Some(b) => {
                            let _ = b.merge(&base);
                        }
                        None => r.base = Some(base),
                    }
                }
                let Some(r) = self.recordings.get(&owner) else {
                    return error(ErrorKind::NotRecording, "not recording");
                };
                let info = self.info(r).await;
                match self.finish(owner).await {
                    Ok(path) => Reply::Stopped {
                        recording: info,
                        path,
                    },
                    Err(msg) => error(ErrorKind::Internal, msg),
                }
            }
            Request::Profile { target, base } => {
                let r = match self.find(&target) {
                    Ok(r) => r.clone(),
                    Err(refusal) => {
                        return match &target {
                            Target::Container(spec) => {
                                stored_profile(&self.config.state_dir, spec, base.as_ref())
                                    .unwrap_or_else(|| refusal.into())
                            }
                            _ => refusal.into(),
                        };
                    }
                };
                match self.build_profile(&r, base.as_ref()).await {
                    Ok(profile) => Reply::Profile {
                        recording: self.info(&r).await,
                        profile,
                    },
                    Err(e) => error(ErrorKind::Internal, e.to_string()),
                }
            }
            Request::Profiles => match crate::index::load(&self.config.state_dir) {
                Ok(profiles) => Reply::Profiles { profiles },
                Err(e) => error(ErrorKind::Internal, e.to_string()),
            },
            Request::List => {
                let mut recordings = Vec::new();
                for r in self.recordings.values() {
                    recordings.push(self.info(r).await);
                }
                Reply::List { recordings }
            }
            Request::Status => {
                let k = self.kernel.info().await.unwrap_or_default();
                Reply::Status {
                    status: StatusInfo {
                        version: crate::VERSION.to_owned(),
                        protocol: control::PROTOCOL_VERSION,
                        uptime_secs: self.started.elapsed().as_secs(),
                        attached: k.attached,
                        record_all: self.config.record_all,
                        recordings: self.recordings.len(),
                        map_entries: k.entries,
                        filter_count: k.filter_count,
                        cached: k.cached,
                        map_capacity: k.capacity,
                        enrol_failures: k.enrol_failed,
                        profiles_written: self
                            .counters
                            .profiles_written
                            .load(std::sync::atomic::Ordering::Relaxed),
                        pending_writes: self
                            .recordings
                            .values()
                            .filter(|r| r.write_error.is_some())
                            .count(),
                        last_error: self.last_error.clone(),
                    },
                }
            }
        }
    }

    /// Adopts a recording the kernel started by itself (auto mode), from
    /// its saved leaf name. Returns false if the cgroup is not a container.
    async fn adopt(&mut self, owner: u64) -> bool {
        let leaf = self.kernel.leaf(owner).await.ok().flatten();
        let Some((_, _)) = leaf.as_deref().and_then(container::parse_leaf) else {
            return false;
        };
        let leaf = leaf.unwrap_or_default();
        // Find the cgroup's path (it may already be gone).
        let path = container::scan(&self.hierarchy)
            .unwrap_or_default()
            .into_iter()
            .find(|f| self.hierarchy.id(&f.cgroup).ok() == Some(owner))
            .map(|f| f.cgroup);
        let container = path
            .as_deref()
            .and_then(container::parse_cgroup_path)
            .or_else(|| {
                container::parse_leaf(&leaf).map(|(rt, id)| ContainerRef {
                    id,
                    runtime: rt.unwrap_or(Runtime::Containerd),
                    pod_uid: None,
                    namespace: None,
                })
            });
        let Some(container) = container else {
            return false;
        };
        let (name, image) = name_and_image(&container).await;
        let rec = Recording {
            owner,
            key: container.id.clone(),
            name,
            image,
            cgroup: path.clone().unwrap_or_else(|| format!("(removed)/{leaf}")),
            container: Some(container),
            started: now_secs(),
            auto: true,
            base: None,
            output: None,
            finishing: path.is_none(),
            write_error: None,
        };
        log::info!(
            "recording {} ({}) from its first syscall",
            rec.key,
            rec.cgroup
        );
        self.recordings.insert(owner, rec);
        true
    }

    /// Brings the recordings in line with the kernel's map and the cgroup
    /// tree: adopts kernel-enrolled cgroups, finishes removed ones, retries
    /// failed writes. Runs at start, on every tick, and after events.
    async fn reconcile(&mut self) {
        let entries = self.kernel.entries().await.unwrap_or_default();
        let mut owners: Vec<u64> = entries.iter().map(|(_, s)| s.owner).collect();
        owners.sort_unstable();
        owners.dedup();
        let mut changed = false;
        for owner in owners {
            if !self.recordings.contains_key(&owner) {
                if self.adopt(owner).await {
                    changed = true;
                } else {
                    // Sets whose recording is gone and that are no container.
                    let _ = self.kernel.remove(owner).await;
                }
            }
        }
        let due: Vec<u64> = self
            .recordings
            .values()
            .filter(|r| r.finishing || !self.cgroup_alive(r))
            .map(|r| r.owner)
            .collect();
        for owner in due {
            let _ = self.finish(owner).await;
            changed = true;
        }
        if changed {
            self.save();
        }
        if let Ok(k) = self.kernel.info().await
            && k.enrol_failed > self.reported_enrol_failures
        {
            let msg = format!(
                "the recording map is full ({} cgroups): {} new containers could not be recorded; raise `capacity`",
                k.capacity,
                k.enrol_failed - self.reported_enrol_failures
            );
            log::error!("{msg}");
            self.last_error = Some(msg);
            self.reported_enrol_failures = k.enrol_failed;
        }
    }

    fn cgroup_alive(&self, r: &Recording) -> bool {
        self.hierarchy.id(&r.cgroup).ok() == Some(r.owner)
    }

    async fn on_event(&mut self, ev: CgroupEvent) {
        match ev.kind {
            EVENT_MKDIR if ev.enrolled != 0 && !self.recordings.contains_key(&ev.id) => {
                {
                    // Sub-cgroups carry their owner; roots are adopted.
                    let entries = self.kernel.entries().await.unwrap_or_default();
                    let is_root = entries
                        .iter()
                        .any(|(id, s)| *id == ev.id && s.owner == ev.id);
                    if is_root && self.adopt(ev.id).await {
                        self.save();
                    }
                }
            }
            EVENT_RMDIR if self.recordings.contains_key(&ev.id) => {
                if let Some(r) = self.recordings.get_mut(&ev.id) {
                    r.finishing = true;
                }
                let _ = self.finish(ev.id).await;
            }
            _ => {}
        }
    }

    /// Writes `<key>.partial.json` for every recording (at shutdown).
    async fn write_partials(&mut self) {
        let recs: Vec<Recording> = self.recordings.values().cloned().collect();
        for r in recs {
            let path = self
                .config
                .profiles_dir
                .join(format!("{}.partial.json", r.key));
            match self.build_profile(&r, None).await {
                Ok(p) => match profile::write(&path, &p.to_json()) {
                    Ok(()) => {
                        log::info!("partial profile of {} written to {}", r.key, path.display())
                    }
                    Err(e) => log::error!("{e}"),
                },
                Err(e) => log::error!("{e}"),
            }
        }
        self.save();
    }

    /// Refreshes the metrics snapshot, so that scrapes never wait for the
    /// kernel task (runs on every tick).
    async fn refresh_metrics(&self) {
        let kernel = self.kernel.info().await.unwrap_or_default();
        let entries = self.kernel.entries().await.unwrap_or_default();
        let programs = self.kernel.program_stats().await.unwrap_or_default();
        let containers = self
            .recordings
            .values()
            .map(|r| {
                let sets: Vec<SyscallSet> = entries
                    .iter()
                    .filter(|(id, s)| crate::ebpf::belongs_to(*id, s, r.owner))
                    .map(|(_, s)| *s)
                    .collect();
                crate::metrics::ContainerSeries {
                    owner: r.owner,
                    id: r.key.clone(),
                    name: r.name.clone(),
                    syscalls: Recorded::from_sets(&sets).0.len(),
                }
            })
            .collect();
        let snapshot = crate::metrics::Snapshot {
            refreshed: Some(SystemTime::now()),
            kernel,
            active: self.recordings.len(),
            pending_writes: self
                .recordings
                .values()
                .filter(|r| r.write_error.is_some())
                .count(),
            containers,
            programs,
        };
        crate::metrics::store(&self.metrics, snapshot);
    }

    async fn run(mut self, mut rx: mpsc::Receiver<ManagerMsg>) {
        self.load_state();
        self.reconcile().await;
        self.refresh_metrics().await;
        while let Some(msg) = rx.recv().await {
            match msg {
                ManagerMsg::Request(req, reply) => {
                    let r = self.handle_request(*req).await;
                    let _ = reply.send(r);
                }
                ManagerMsg::Event(ev) => self.on_event(ev).await,
                ManagerMsg::Tick => {
                    self.reconcile().await;
                    self.refresh_metrics().await;
                }
                ManagerMsg::Reload(config) => {
                    log::info!("configuration reloaded");
                    self.config = *config;
                }
                ManagerMsg::Shutdown(done) => {
                    self.write_partials().await;
                    let _ = done.send(());
                    return;
                }
            }
        }
    }
}

/// A container's name and image: for docker from the Engine API, else (or
/// when the engine does not answer) from the runtime's metadata on disk.
async fn name_and_image(c: &ContainerRef) -> (Option<String>, Option<String>) {
    if c.runtime == Runtime::Docker
        && let Some(i) = crate::docker_api::inspect(&c.id).await
    {
        return (i.name, i.image);
    }
    (
        names::lookup(c.runtime, &c.id),
        names::image(c.runtime, &c.id),
    )
}

/// The profile written for a container that is not recorded any more,
/// from the index. `None`: the index knows no such container either.
fn stored_profile(state_dir: &Path, spec: &str, base: Option<&Profile>) -> Option<Reply> {
    let entries = crate::index::load(state_dir).unwrap_or_default();
    let entry = match crate::index::find(&entries, spec) {
        Ok(e) => e,
        Err(crate::index::IndexError::NotFound(_)) => return None,
        Err(e @ crate::index::IndexError::Ambiguous { .. }) => {
            return Some(error(ErrorKind::Ambiguous, e.to_string()));
        }
        Err(e) => return Some(error(ErrorKind::Internal, e.to_string())),
    };
    Some(match Profile::read(&entry.path) {
        Ok(mut profile) => {
            if let Some(b) = base {
                profile.merge(b);
            }
            Reply::StoredProfile { entry, profile }
        }
        Err(e) => error(ErrorKind::NotFound, e.to_string()),
    })
}

fn describe(target: &Target) -> String {
    match target {
        Target::Container(c) => format!("container '{c}'"),
        Target::Pid(p) => format!("process {p}"),
        Target::Cgroup(c) => format!("cgroup {c}"),
    }
}

// ---------------------------------------------------------------- control server

async fn serve_conn(stream: UnixStream, group: u32, manager: mpsc::Sender<ManagerMsg>) {
    let cred = stream.peer_cred().ok();
    let (uid, pid) = cred.map_or((u32::MAX, None), |c| (c.uid(), c.pid()));
    let allowed = uid == 0
        || cred.is_some_and(|c| c.gid() == group)
        || pid.is_some_and(|p| control::groups_of(p).contains(&group));
    let (read, mut write) = stream.into_split();
    if !allowed {
        log::warn!(
            "refused control connection from uid {uid} (pid {pid:?}): not root and not in the socket group"
        );
        let reply = error(
            ErrorKind::PermissionDenied,
            "permission denied: recorderd serves root and members of its socket group only",
        );
        let _ = write.write_all(&control::reply_line(&reply)).await;
        return;
    }
    let mut reader = BufReader::new(read).take(control::MAX_REQUEST as u64 + 1);
    let mut line = String::new();
    let read = tokio::time::timeout(control::READ_TIMEOUT, reader.read_line(&mut line)).await;
    let reply = match read {
        Err(_) => error(
            ErrorKind::BadRequest,
            "timed out waiting for a request line",
        ),
        Ok(Err(e)) => error(ErrorKind::BadRequest, format!("unreadable request: {e}")),
        Ok(Ok(_)) if line.len() > control::MAX_REQUEST => error(
            ErrorKind::BadRequest,
            format!("request larger than {} bytes", control::MAX_REQUEST),
        ),
        Ok(Ok(_)) if !line.ends_with('\n') => {
            error(ErrorKind::BadRequest, "incomplete request line")
        }
        Ok(Ok(_)) => match control::parse_request(&line) {
            // recorderd writes as root: a socket-group member choosing the
            // path could overwrite any file on the host.
            Ok(Request::Start {
                output: Some(out), ..
            }) if uid != 0 => {
                log::warn!(
                    "refused output path {} from uid {uid} (pid {pid:?}): only root may choose where a profile is written",
                    out.display()
                );
                error(
                    ErrorKind::PermissionDenied,
                    "permission denied: only root may choose the output path of a profile",
                )
            }
            Ok(req) => {
                let (tx, rx) = oneshot::channel();
                if manager
                    .send(ManagerMsg::Request(Box::new(req), tx))
                    .await
                    .is_err()
                {
                    error(ErrorKind::Internal, "recorderd is shutting down")
                } else {
                    rx.await.unwrap_or_else(|_| {
                        error(ErrorKind::Internal, "recorderd is shutting down")
                    })
                }
            }
            Err(refusal) => refusal.into(),
        },
    };
    // A client that never reads its reply does not hold the slot forever.
    let _ = tokio::time::timeout(
        control::READ_TIMEOUT,
        write.write_all(&control::reply_line(&reply)),
    )
    .await;
}

fn bind_socket(path: &Path, group: u32) -> Result<UnixListener, DaemonError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(setup_err(dir))?;
    }
    if path.exists() {
        // A live daemon answers; a stale socket file is replaced.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(DaemonError::Setup {
                path: path.to_owned(),
                source: std::io::Error::other("another recorderd is serving this socket"),
            });
        }
        std::fs::remove_file(path).map_err(setup_err(path))?;
    }
    let listener = UnixListener::bind(path).map_err(setup_err(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(setup_err(path))?;
    std::os::unix::fs::chown(path, Some(0), Some(group)).map_err(setup_err(path))?;
    Ok(listener)
}

// ---------------------------------------------------------------- run

/// A running daemon's handles, for the binary.
pub struct Running {
    pub manager: mpsc::Sender<ManagerMsg>,
    pub kernel: KernelHandle,
    pub counters: Arc<Counters>,
    /// What the metrics endpoint serves (refreshed on every tick).
    pub metrics: crate::metrics::SharedSnapshot,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Held for the daemon's lifetime: one daemon per pin dir.
    _pin_lock: std::fs::File,
}

impl Running {
    /// Writes partial profiles and stops the tasks. Pinned maps and links
    /// stay, so recording goes on until the next start.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.manager.send(ManagerMsg::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Takes an exclusive, non-blocking flock on a directory; the lock holds as
/// long as the returned file is open.
fn lock_dir(dir: &Path) -> Result<std::fs::File, DaemonError> {
    use std::os::fd::AsRawFd as _;
    let file = std::fs::File::open(dir).map_err(setup_err(dir))?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(DaemonError::Setup {
            path: dir.to_owned(),
            source: std::io::Error::other(
                "another recorderd is using this pin dir; stop it, or give this one its own --pin-dir",
            ),
        });
    }
    Ok(file)
}

/// The kernel patterns for a config.
fn patterns(config: &Config) -> Vec<recorder_common::LeafPattern> {
    if !config.record_all {
        return Vec::new();
    }
    config
        .auto_patterns
        .iter()
        .filter_map(|p| container::compile_pattern(p).ok())
        .collect()
}

/// Loads the programs and starts every task.
pub async fn start(config: Config) -> Result<Running, DaemonError> {
    let hierarchy = Hierarchy::detect()?;
    let group = control::gid_of(&config.socket_group)
        .ok_or_else(|| DaemonError::NoGroup(config.socket_group.clone()))?;
    for dir in [&config.profiles_dir, &config.state_dir] {
        std::fs::create_dir_all(dir).map_err(setup_err(dir))?;
    }
    // One daemon per pin dir: two would share the maps and the ring buffer
    // and steal each other's recordings.
    crate::system::ensure_bpffs(&config.pin_dir)?;
    let pin_lock = lock_dir(&config.pin_dir)?;
    let mut kernel = Kernel::load(&LoadOptions {
        capacity: config.capacity,
        btf: config.btf.clone(),
        compat: config.compat,
        pin_dir: Some(config.pin_dir.clone()),
        auto_enrol: true,
        args: false,
    })?;
    if kernel.has_pinned_link() {
        log::info!(
            "found pinned state in {}: resuming",
            config.pin_dir.display()
        );
    }
    kernel.set_leaf_patterns(&patterns(&config))?;
    kernel.attach_cgroup_events()?;
    let mut task = KernelTask {
        kernel,
        record_all: config.record_all,
        detach_when_idle: config.detach_when_idle,
    };
    task.settle();
    // Loading parsed the kernel's BTF (megabytes) and the object; give the
    // freed memory back instead of keeping it in the idle daemon's RSS.
    crate::system::release_freed_memory();
    let listener = bind_socket(&config.socket, group)?;
    log::info!(
        "recorderd {} listening on {} (cgroup2 at {}, {:?} layout); record_all={}",
        crate::VERSION,
        config.socket.display(),
        hierarchy.mount.display(),
        hierarchy.layout,
        config.record_all
    );

    let (kernel_tx, kernel_rx) = mpsc::channel(64);
    let (event_tx, mut event_rx) = mpsc::channel::<CgroupEvent>(1024);
    let (manager_tx, manager_rx) = mpsc::channel(256);
    let kernel = KernelHandle(kernel_tx);
    let counters = Arc::new(Counters::default());
    let metrics = crate::metrics::SharedSnapshot::default();
    let poll = Duration::from_millis(config.poll_interval_ms.max(50));
    let manager = Manager {
        config,
        hierarchy,
        kernel: kernel.clone(),
        recordings: BTreeMap::new(),
        started: Instant::now(),
        counters: counters.clone(),
        last_error: None,
        reported_enrol_failures: 0,
        metrics: metrics.clone(),
    };

    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(async move {
        if let Err(e) = task.run(kernel_rx, event_tx).await {
            log::error!("kernel task: {e}");
        }
    }));
    tasks.push(tokio::spawn(manager.run(manager_rx)));
    let tx = manager_tx.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(ev) = event_rx.recv().await {
            if tx.send(ManagerMsg::Event(ev)).await.is_err() {
                return;
            }
        }
    }));
    let tx = manager_tx.clone();
    tasks.push(tokio::spawn(async move {
        let mut interval = tokio::time::interval(poll);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if tx.send(ManagerMsg::Tick).await.is_err() {
                return;
            }
        }
    }));
    let tx = manager_tx.clone();
    // At most this many connections are served at once; more wait in the
    // listen backlog. Each holds a task and a descriptor for up to
    // READ_TIMEOUT, so a flood of slow clients cannot exhaust either.
    let slots = Arc::new(tokio::sync::Semaphore::new(control::MAX_CONNECTIONS));
    tasks.push(tokio::spawn(async move {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            match listener.accept().await {
                Ok((stream, _)) => {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        serve_conn(stream, group, tx).await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    log::error!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }));
    Ok(Running {
        manager: manager_tx,
        kernel,
        counters,
        metrics,
        tasks,
        _pin_lock: pin_lock,
    })
}

/// Applies a reloaded config: new patterns go to the kernel, the rest to
/// the manager. The socket, pin dir and capacity need a restart.
pub async fn reload(running: &Running, config: Config) {
    let _ = running
        .kernel
        .0
        .send(KernelCmd::Patterns {
            patterns: patterns(&config),
            record_all: config.record_all,
        })
        .await;
    let _ = running
        .manager
        .send(ManagerMsg::Reload(Box::new(config)))
        .await;
}

/// Removes everything the daemon pinned (maps and links).
pub fn unpin(pin_dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(pin_dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
