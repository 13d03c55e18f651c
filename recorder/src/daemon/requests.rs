//! The manager's control requests: `Manager::handle` and what only it
//! uses (finding a recording, start, stop, profile, status). A second
//! `impl Manager` block; the loop, adoption, reconcile and writing stay in
//! `manager.rs`.

use std::{path::PathBuf, sync::atomic::Ordering};

use recorder_common::{PHASE_RUNTIME_INIT, PHASE_WORKLOAD};

use super::{
    DaemonError, drift,
    kernel_task::sets_of,
    lookup,
    manager::{Manager, assemble, count},
    outcome::{ManagerError, Outcome},
    state::{self, Recording},
};
use crate::{
    container::ContainerRef,
    control::{self, Prestart, Request, StatusInfo, Target},
    ebpf::KernelError,
    index::IndexError,
    profile::{self, Profile},
    timefmt::now_secs,
};

impl Manager {
    /// Serves one control request.
    pub async fn handle(&mut self, req: Request) -> Result<Outcome, ManagerError> {
        match req {
            Request::Start {
                target,
                base,
                output,
                prestart,
            } => self.start(target, base, output, prestart).await,
            Request::Stop { target, base } => self.stop(&target, base).await,
            Request::Profile { target, base } => self.profile(&target, base).await,
            Request::Profiles => Ok(Outcome::Profiles(self.images.entries(&self.config).await?)),
            Request::Images => self.images.list(&self.config).await,
            Request::ImageProfile { image, base } => {
                self.images.profile(&self.config, image, base).await
            }
            Request::List => {
                let entries = self.kernel.entries().await?;
                Ok(Outcome::List(
                    self.recordings
                        .values()
                        .map(|r| r.info(count(&sets_of(&entries, r.owner))))
                        .collect(),
                ))
            }
            Request::Status => Ok(Outcome::Status(self.status().await?)),
            Request::Drift { container, widen } => {
                // Awaited only when no running recording answers.
                let entries = self.images.entries(&self.config);
                drift::answer(&self.recordings, container, widen, entries).await
            }
        }
    }

    async fn status(&self) -> Result<StatusInfo, ManagerError> {
        let k = self.kernel.info().await?;
        Ok(StatusInfo {
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
            profiles_written: self.counters.profiles_written.load(Ordering::Relaxed),
            pending_writes: self.pending_writes(),
            pending_image_writes: self.images.pending(),
            unhealthy: self.images.broken.clone(),
            last_error: self.last_error().map(|e| e.message.clone()),
            last_error_at: self.last_error().map(|e| e.at),
            socket: self.config.socket.clone(),
            profiles_dir: self.config.profiles_dir.clone(),
            state_dir: self.config.state_dir.clone(),
            pin_dir: self.config.pin_dir.clone(),
            metrics_addr: self.config.metrics_addr.clone(),
            scope: self.config.scope.summary(),
            ready_rule: Some(crate::images::ReadyRule {
                min_runs: self.config.images.ready_min_runs,
                quiet_runs: self.config.images.ready_quiet_runs,
                quiet_secs: self.config.images.ready_quiet_secs,
            }),
            registry: self.config.registry.repository.clone(),
        })
    }

    /// Finds the recording a target names (a container: [`state::find`]).
    fn find(&self, target: &Target) -> Result<&Recording, ManagerError> {
        let found = match target {
            Target::Container(spec) => state::find(self.recordings.values(), spec, |_| true)?,
            Target::Pid(pid) => {
                let cg = self.hierarchy.cgroup_of_pid(*pid).ok();
                self.recordings.values().find(|r| {
                    cg.as_deref()
                        .is_some_and(|c| c == r.cgroup || c.starts_with(&format!("{}/", r.cgroup)))
                })
            }
            Target::Cgroup(path) => self.recordings.values().find(|r| &r.cgroup == path),
        };
        found.ok_or_else(|| ManagerError::NotRecording(lookup::describe(target)))
    }

    async fn start(
        &mut self,
        target: Target,
        base: Option<Profile>,
        output: Option<PathBuf>,
        prestart: Option<Prestart>,
    ) -> Result<Outcome, ManagerError> {
        if let Some(out) = &output
            && (!out.is_absolute()
                || out
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir)))
        {
            return Err(ManagerError::BadOutput(out.clone()));
        }
        let (cgroup, container) = lookup::resolve(&self.hierarchy, &target).await?;
        let owner = self.hierarchy.id(&cgroup)?;
        // Auto mode enrolled the container at mkdir; an OCI hook that asks
        // for it afterwards only says where the profile goes.
        if let Some(r) = self.recordings.get_mut(&owner)
            && r.auto
            && r.output.is_none()
            && output.is_some()
        {
            r.output = output;
            r.base_blocks = base.is_some();
            r.base = base;
            if let Some(p) = prestart.filter(|_| r.policy == profile::Policy::Unknown) {
                r.policy = p.policy;
            }
            let r = r.clone();
            log::info!("recording {}: profile to go to {:?}", r.key(), r.output);
            self.save().await;
            let entries = self.kernel.entries().await?;
            return Ok(Outcome::Started(r.info(count(&sets_of(&entries, owner)))));
        }
        if let Some(r) = self.recordings.get(&owner) {
            return Err(ManagerError::AlreadyRecording {
                key: r.key(),
                since: r.started,
            });
        }
        // The container's existing sub-cgroups; future ones are enrolled by
        // the kernel because they are made from inside.
        let mut ids = vec![owner];
        for sub in self.hierarchy.descendants(&cgroup).unwrap_or_default() {
            if let Ok(id) = self.hierarchy.id(&sub) {
                ids.push(id);
            }
        }
        // At prestart the runtime's init is still setting up: its syscalls
        // until it loads the filter are left out, as in auto mode.
        let phase = prestart
            .as_ref()
            .map_or(PHASE_WORKLOAD, |_| PHASE_RUNTIME_INIT);
        match self.kernel.insert(ids, owner, phase).await {
            Ok(()) => {}
            Err(DaemonError::Kernel(KernelError::MapFull { capacity })) => {
                self.counters
                    .map_full_refusals
                    .fetch_add(1, Ordering::Relaxed);
                return Err(ManagerError::MapFull {
                    target: lookup::describe(&target),
                    capacity,
                });
            }
            Err(e) => return Err(e.into()),
        }
        let found = container.unwrap_or_else(|| ContainerRef::cgroup(owner));
        let prestart_base = prestart.is_some() && base.is_some();
        let given = prestart
            .map(|p| p.policy)
            .filter(|p| *p != profile::Policy::Unknown);
        let seen = lookup::seen(found, given).await;
        let rec = Recording {
            owner,
            container: seen.container,
            cgroup,
            started: now_secs(),
            auto: false,
            // Only the OCI hook sends a prestart: its if: profile's blocks.
            base_blocks: prestart_base,
            base,
            output,
            finishing: false,
            write_error: None,
            policy: seen.policy,
            chosen_profile: seen.chosen,
            drift: Default::default(),
            denied: Vec::new(),
        };
        log::info!("recording {} ({})", rec.key(), rec.cgroup);
        // Just inserted: nothing recorded yet worth a map read.
        let info = rec.info(0);
        self.recordings.insert(owner, rec);
        self.save().await;
        Ok(Outcome::Started(info))
    }

    async fn stop(
        &mut self,
        target: &Target,
        base: Option<Profile>,
    ) -> Result<Outcome, ManagerError> {
        let owner = match self.find(target) {
            Ok(r) => r.owner,
            Err(refusal) => return Err(self.why_not_recorded(target, refusal).await),
        };
        if let (Some(base), Some(r)) = (base, self.recordings.get_mut(&owner)) {
            match &mut r.base {
                Some(b) => {
                    b.merge(&base);
                }
                None => r.base = Some(base),
            }
        }
        let entries = self.kernel.entries().await?;
        let sets = sets_of(&entries, owner);
        let recording = self
            .recordings
            .get(&owner)
            .map(|r| r.info(count(&sets)))
            .ok_or_else(|| ManagerError::NotRecording(lookup::describe(target)))?;
        let path = self.finish(owner, &sets).await?;
        Ok(Outcome::Stopped { recording, path })
    }

    /// `refusal` of a container that is not recorded, with what its name
    /// means instead where recorderd knows: a container that ended (its
    /// profile is written), or an image (`profile --image`).
    async fn why_not_recorded(&mut self, target: &Target, refusal: ManagerError) -> ManagerError {
        let Target::Container(spec) = target else {
            return refusal;
        };
        let hint = |hint: String| ManagerError::NotRecordingHint {
            what: lookup::describe(target),
            hint,
        };
        let stored = self.images.stored(&self.config, spec.clone(), None).await;
        if let Ok(Outcome::Stored { entry, .. }) = stored {
            return hint(format!(
                "it ended and its profile was written to {} (recorderctl profile {spec})",
                entry.path.display()
            ));
        }
        match self.images.profile(&self.config, spec.clone(), None).await {
            Ok(_) => hint(format!(
                "'{spec}' is an image: recorderctl profile --image '{spec}'"
            )),
            Err(_) => refusal,
        }
    }

    async fn profile(
        &mut self,
        target: &Target,
        base: Option<Profile>,
    ) -> Result<Outcome, ManagerError> {
        let r = match self.find(target) {
            Ok(r) => r.clone(),
            Err(refusal) => {
                return match target {
                    Target::Container(spec) => {
                        let spec = spec.clone();
                        match self.images.stored(&self.config, spec, base).await {
                            Err(ManagerError::Index(IndexError::NotFound(_))) => {
                                Err(self.why_not_recorded(target, refusal).await)
                            }
                            other => other,
                        }
                    }
                    _ => Err(refusal),
                };
            }
        };
        let entries = self.kernel.entries().await?;
        let sets = sets_of(&entries, r.owner);
        Ok(Outcome::Profile {
            recording: r.info(count(&sets)),
            profile: assemble(&r, &sets, base.as_ref()),
        })
    }
}
