//! The manager's drift bookkeeping: for each recording under a chosen
//! profile (`Recording::chosen_profile`), what it called outside that
//! profile and when each name was first seen, updated from every tick's
//! snapshot (no read of its own), kept in the state and, when the
//! recording ends, in its profile index entry; and the answers to `drift`.

use std::collections::{BTreeMap, VecDeque};

use recorder_common::SyscallSet;

use super::{
    kernel_task::sets_of,
    outcome::{ManagerError, Outcome},
    state::{self, Recording},
};
use crate::{
    container::Container,
    control::DriftReport,
    ebpf::DenialCount,
    index::{self, Denial, IndexError},
    metrics::ContainerSeries,
    policy::{ChosenProfile, denies},
    profile::{
        Policy, Profile, Recorded,
        drift::{self, Outside},
    },
};

/// What `drift` says of an enforcing profile.
pub const ENFORCING_NOTE: &str = "an enforcing profile denies what it does not allow: those syscalls never run, so they are listed under denied (counted while recorderd watched), not under outside";

/// The recordings to watch for denials: those under a chosen profile that
/// denies something.
pub fn denial_watch(recordings: &BTreeMap<u64, Recording>) -> Vec<u64> {
    recordings
        .values()
        .filter(|r| watched_for_denials(r))
        .map(|r| r.owner)
        .collect()
}

fn watched_for_denials(r: &Recording) -> bool {
    matches!((&r.chosen_profile, &r.policy), (Some(_), Policy::Filter(p)) if denies(p))
}

/// Takes the kernel's denial counts (cumulative) into the recordings
/// watched for them; a name first counted now is first seen at `now`.
pub fn update_denials(recordings: &mut BTreeMap<u64, Recording>, counts: &[DenialCount], now: u64) {
    for c in counts {
        let Some(r) = recordings.get_mut(&c.owner) else {
            continue;
        };
        let name = c.name.clone().unwrap_or_else(|| "unknown".to_owned());
        match r
            .denied
            .iter_mut()
            .find(|d| d.name == name && d.abi == c.abi && d.killed == c.killed)
        {
            Some(d) => d.count = d.count.max(c.count),
            None => {
                log::info!(
                    "{}: its profile {} {name} ({})",
                    r.key(),
                    if c.killed {
                        "killed a task at"
                    } else {
                        "denied"
                    },
                    c.abi.scmp_arch()
                );
                r.denied.push(Denial {
                    name,
                    abi: c.abi,
                    count: c.count,
                    first_seen: now,
                    killed: c.killed,
                });
                r.denied.sort();
            }
        }
    }
}

/// How many syscalls `r`'s profile denied and tasks it killed; `None`
/// when it is not watched for denials.
pub fn denied_count(r: &Recording) -> Option<u64> {
    watched_for_denials(r).then(|| r.denied.iter().map(|d| d.count).sum())
}

/// Notes in `r` the syscalls of `sets` outside its chosen profile, first
/// seen at `now`; returns how many were new (0 when it is not watched).
pub fn observe(r: &mut Recording, sets: &[SyscallSet], now: u64) -> usize {
    let (Some(_), Policy::Filter(filter)) = (&r.chosen_profile, &r.policy) else {
        return 0;
    };
    let (recorded, _) = Recorded::from_sets(sets);
    let outside = drift::outside(filter, &recorded);
    drift::note(&mut r.drift, outside, now)
}

/// [`observe`] for every recording, from one snapshot's `entries`.
/// Returns whether anything new was seen (the state is then saved).
pub fn update(
    recordings: &mut BTreeMap<u64, Recording>,
    entries: &[(u64, SyscallSet)],
    now: u64,
) -> bool {
    let mut new = 0;
    for r in recordings
        .values_mut()
        .filter(|r| r.chosen_profile.is_some())
    {
        let sets = sets_of(entries, r.owner);
        let n = observe(r, &sets, now);
        if n > 0 {
            log::info!("{}: {n} new syscall(s) outside its profile", r.key());
        }
        new += n;
    }
    new > 0
}

/// How many distinct syscalls `r` made outside its chosen profile; `None`
/// when it is not watched.
pub fn outside_count(r: &Recording) -> Option<usize> {
    r.chosen_profile.as_ref().map(|_| drift::count(&r.drift))
}

/// At most this many drift series of ended recordings stay on /metrics
/// (the oldest go first).
pub const MAX_ENDED_SERIES: usize = 256;

/// The `recorder_container_syscalls_outside_profile` series of ended
/// watched recordings, kept for `drift_series_secs` (and at most
/// [`MAX_ENDED_SERIES`]), so that an alert with a `for:` time fires for
/// canaries and batch jobs that ran shorter. Not kept across restarts.
#[derive(Debug, Default)]
pub struct EndedSeries(VecDeque<(u64, ContainerSeries)>);

impl EndedSeries {
    /// Keeps the series of `r`, ended at `now` (if it is watched).
    pub fn push(&mut self, r: &Recording, now: u64) {
        let Some(outside) = outside_count(r) else {
            return;
        };
        let series = ContainerSeries {
            owner: r.owner,
            container: r.container.clone(),
            syscalls: 0,
            outside: Some(outside),
            denied: denied_count(r),
            ended: true,
        };
        self.0.push_back((now, series));
        while self.0.len() > MAX_ENDED_SERIES {
            self.0.pop_front();
        }
    }

    /// The series that ended less than `keep` seconds before `now`; drops
    /// the older ones.
    pub fn current(&mut self, now: u64, keep: u64) -> Vec<ContainerSeries> {
        self.0.retain(|(at, _)| now.saturating_sub(*at) < keep);
        self.0.iter().map(|(_, s)| s.clone()).collect()
    }
}

/// Why `r` is not watched.
fn not_watched(r: &Recording) -> ManagerError {
    let why = match &r.policy {
        Policy::Unconfined => "runs unconfined (no seccomp profile)",
        Policy::Unknown => "runs under a seccomp policy recorderd could not read",
        Policy::Filter(_) => "runs under the runtime's default profile",
    };
    ManagerError::NotWatched {
        key: r.key(),
        why: why.to_owned(),
    }
}

struct Source<'a> {
    container: &'a Container,
    chosen: &'a ChosenProfile,
    outside: &'a Outside,
    policy: &'a Profile,
    denied: &'a [Denial],
    running: bool,
}

fn report(s: &Source<'_>, widen: bool) -> DriftReport {
    let since = drift::names(s.outside);
    let enforcing = s.chosen.enforcing();
    DriftReport {
        id: s.container.key(),
        name: s.container.name.clone(),
        image: s.container.image.clone(),
        profile: s.chosen.name().to_owned(),
        default_action: s.chosen.default_action.clone(),
        outside: since.keys().cloned().collect(),
        outside_since: since,
        outside_by_abi: s
            .outside
            .iter()
            .filter(|(_, n)| !n.is_empty())
            .map(|(abi, n)| (*abi, n.keys().cloned().collect()))
            .collect(),
        running: s.running,
        enforcing,
        note: enforcing.then(|| ENFORCING_NOTE.to_owned()),
        denied: s.denied.to_vec(),
        widened: widen.then(|| drift::widen(s.policy, &with_denied(s.outside, s.denied))),
    }
}

/// `outside` and the syscalls denied (not the kills of an unknown
/// syscall), for `--widen`.
fn with_denied(outside: &Outside, denied: &[Denial]) -> Outside {
    let mut all = outside.clone();
    for d in denied.iter().filter(|d| !(d.killed && d.name == "unknown")) {
        all.entry(d.abi)
            .or_default()
            .entry(d.name.clone())
            .or_insert(d.first_seen);
    }
    all
}

/// The report of a running recording, or why there is none.
fn of_recording(r: &Recording, widen: bool) -> Result<DriftReport, ManagerError> {
    let (Some(chosen), Policy::Filter(filter)) = (&r.chosen_profile, &r.policy) else {
        return Err(not_watched(r));
    };
    Ok(report(
        &Source {
            container: &r.container,
            chosen,
            outside: &r.drift,
            policy: filter,
            denied: &r.denied,
            running: true,
        },
        widen,
    ))
}

/// The report kept in an index entry, if it has one.
fn of_entry(e: &index::Entry, widen: bool) -> Option<DriftReport> {
    let d = e.drift.as_ref()?;
    Some(report(
        &Source {
            container: &e.container,
            chosen: &d.profile,
            outside: &d.outside,
            policy: &d.policy,
            denied: &d.denied,
            running: false,
        },
        widen,
    ))
}

/// Answers `drift` for the container `spec` names, running or not (a
/// name: the watched container of that name that runs, else the last one
/// that ran; [`state::find`], [`index::find_among`]); with no `spec`,
/// every watched container with drift, running ones first. `entries`, the
/// index's, is awaited only when the running recordings do not answer.
pub async fn answer(
    recordings: &BTreeMap<u64, Recording>,
    spec: Option<String>,
    widen: bool,
    entries: impl Future<Output = Result<Vec<index::Entry>, ManagerError>>,
) -> Result<Outcome, ManagerError> {
    let watched = |r: &Recording| r.chosen_profile.is_some();
    if let Some(spec) = &spec
        && let Some(r) = state::find(recordings.values(), spec, watched)?
    {
        return Ok(Outcome::Drift(vec![of_recording(r, widen)?]));
    }
    let entries = entries.await?;
    let Some(spec) = spec else {
        let mut reports: Vec<DriftReport> = recordings
            .values()
            .filter_map(|r| of_recording(r, widen).ok())
            .filter(|d| !d.outside.is_empty() || !d.denied.is_empty())
            .collect();
        // The newest entry of each container that is not running any more.
        let mut newest: BTreeMap<String, &index::Entry> = BTreeMap::new();
        for e in &entries {
            let key = e.key();
            if newest.get(&key).is_none_or(|n| n.written <= e.written) {
                newest.insert(key, e);
            }
        }
        let running: Vec<String> = recordings.values().map(Recording::key).collect();
        reports.extend(
            newest
                .iter()
                .filter(|(key, _)| !running.contains(key))
                .map(|(_, e)| e)
                .filter_map(|e| of_entry(e, widen))
                .filter(|d| !d.outside.is_empty() || !d.denied.is_empty()),
        );
        return Ok(Outcome::Drift(reports));
    };
    let entry = match index::find_among(&entries, &spec, |e| e.drift.is_some()) {
        Err(IndexError::NotFound(_)) => {
            // Nothing watched by that name: say why of what it names.
            if let Some(r) = state::find(recordings.values(), &spec, |_| true)? {
                return Err(not_watched(r));
            }
            index::find(&entries, &spec)
        }
        found => found,
    }
    .map_err(|e| match e {
        IndexError::NotFound(_) => ManagerError::UnknownContainer(spec.clone()),
        e => e.into(),
    })?;
    match of_entry(&entry, widen) {
        Some(d) => Ok(Outcome::Drift(vec![d])),
        None => Err(ManagerError::NotWatched {
            key: entry.key(),
            why: "ran under no chosen profile (the runtime's default, or none)".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        container::{ContainerRef, Runtime},
        index::Index,
        policy::ChosenBy,
        profile::{ACT_ERRNO, ACT_LOG, SyscallRule},
        syscalls::Abi,
    };

    fn filter(default: &str) -> Profile {
        Profile {
            default_action: default.into(),
            syscalls: vec![SyscallRule::allow(
                ["read", "mkdir", "execve"].map(str::to_owned),
            )],
            ..Profile::default()
        }
    }

    fn recording(owner: u64, default: Option<&str>) -> Recording {
        let policy = default.map_or(Policy::Unconfined, |d| Policy::Filter(Box::new(filter(d))));
        let chosen_profile = default.map(|d| ChosenProfile {
            path: Some("/etc/p/web.json".into()),
            digest: "sha256:00".into(),
            default_action: d.into(),
            chosen_by: ChosenBy::Podman,
        });
        let found = ContainerRef {
            id: format!("{owner:064x}"),
            runtime: Runtime::Podman,
            ..ContainerRef::default()
        };
        Recording {
            owner,
            container: Container {
                name: Some(format!("web{owner}")),
                image: Some("shop/web:2".into()),
                ..found.into()
            },
            cgroup: format!("/libpod_parent/libpod-{owner:064x}"),
            started: 1,
            auto: true,
            base: None,
            base_blocks: false,
            output: None,
            finishing: false,
            write_error: None,
            policy,
            chosen_profile,
            drift: Outside::default(),
            denied: Vec::new(),
        }
    }

    /// A set of `owner` with `names` of the native ABI.
    fn set(owner: u64, names: &[&str]) -> SyscallSet {
        let mut s = SyscallSet::new(owner, recorder_common::PHASE_WORKLOAD);
        for n in names {
            let nr = Abi::native().number(n).unwrap() as usize;
            s.native[nr / 64] |= 1 << (nr % 64);
        }
        s
    }

    #[test]
    fn ticks_keep_the_first_seen_time() {
        let mut recs: BTreeMap<u64, Recording> =
            [(1, recording(1, Some(ACT_LOG))), (2, recording(2, None))].into();
        let entries = [(1, set(1, &["read", "chmod"])), (2, set(2, &["chmod"]))];
        assert!(update(&mut recs, &entries, 10));
        assert!(!update(&mut recs, &entries, 20), "nothing new");
        assert_eq!(drift::names(&recs[&1].drift)["chmod"], 10);
        assert_eq!(outside_count(&recs[&1]), Some(1));
        // Not watched: no count, no drift kept.
        assert_eq!(outside_count(&recs[&2]), None);
        assert!(recs[&2].drift.is_empty());
        let e = recs[&1].index_drift().unwrap();
        assert_eq!(drift::count(&e.outside), 1);
        assert!(recs[&2].index_drift().is_none());
    }

    /// `recordings` by owner.
    fn map(recordings: &[&Recording]) -> BTreeMap<u64, Recording> {
        recordings.iter().map(|r| (r.owner, (*r).clone())).collect()
    }

    /// The index entry of `r`, written at `written`.
    fn entry(r: &Recording, written: u64) -> index::Entry {
        index::Entry {
            image_key: None,
            ..r.entry(format!("/p/{}.json", r.key()).into(), written)
        }
    }

    /// The entries of `idx`, when awaited.
    fn entries(idx: &Arc<Index>) -> impl Future<Output = Result<Vec<index::Entry>, ManagerError>> {
        let idx = idx.clone();
        async move { Ok(idx.load()?) }
    }

    /// `drift SPEC` (with `widen`) of `recs`, one report.
    async fn ask(
        recs: &BTreeMap<u64, Recording>,
        spec: &str,
        widen: bool,
        idx: &Arc<Index>,
    ) -> Result<DriftReport, ManagerError> {
        match answer(recs, Some(spec.to_owned()), widen, entries(idx)).await? {
            Outcome::Drift(mut d) if d.len() == 1 => Ok(d.remove(0)),
            _ => panic!("not one report"),
        }
    }

    #[tokio::test]
    async fn answers_running_exited_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let idx = Arc::new(Index::open(dir.path()).unwrap());
        let mut watched = recording(1, Some(ACT_LOG));
        observe(&mut watched, &[set(1, &["read", "fchmodat"])], 5);
        let d = ask(&map(&[&watched]), &watched.key(), false, &idx)
            .await
            .unwrap();
        assert_eq!(d.outside, ["fchmodat"]);
        assert_eq!(d.profile, "/etc/p/web.json");
        assert!(d.running && !d.enforcing && d.note.is_none());
        // Enforcing: watched for denials; the kernel's counts are its
        // denials, and --widen adds them.
        let mut enforced = recording(3, Some(ACT_ERRNO));
        observe(&mut enforced, &[set(3, &["read"])], 5);
        let mut recs = map(&[&enforced]);
        assert_eq!(denial_watch(&recs), [3]);
        let d = ask(&recs, "web3", true, &idx).await.unwrap();
        assert!(d.enforcing && d.denied.is_empty());
        assert!(d.note.as_deref().unwrap().contains("denied"));
        assert_eq!(d.widened.as_ref().unwrap(), &filter(ACT_ERRNO));
        let count = |name: &str, n| DenialCount {
            owner: 3,
            name: Some(name.to_owned()),
            abi: Abi::native(),
            killed: false,
            count: n,
        };
        update_denials(&mut recs, &[count("chmod", 2)], 6);
        update_denials(&mut recs, &[count("chmod", 5), count("rmdir", 1)], 7);
        let d = ask(&recs, "web3", true, &idx).await.unwrap();
        let seen: Vec<(&str, u64, u64)> = d
            .denied
            .iter()
            .map(|x| (x.name.as_str(), x.count, x.first_seen))
            .collect();
        assert_eq!(seen, [("chmod", 5, 6), ("rmdir", 1, 7)]);
        assert_eq!(denied_count(&recs[&3]), Some(6));
        let wide = d.widened.as_ref().unwrap().to_json();
        assert!(
            wide.contains("\"chmod\"") && wide.contains("\"rmdir\""),
            "{wide}"
        );
        // Not enforcing, or not chosen: not watched for denials.
        assert!(
            denial_watch(&map(&[&recording(6, Some(ACT_LOG)), &recording(7, None)])).is_empty()
        );
        // Under the runtime's default, or unconfined: one line, no report.
        let mut default = recording(4, None);
        default.policy = Policy::Filter(Box::new(filter(ACT_ERRNO)));
        let e = ask(&map(&[&default]), "web4", false, &idx)
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .ends_with("runs under the runtime's default profile: nothing to compare"),
            "{e}"
        );
        let e = ask(&map(&[&recording(5, None)]), "web5", false, &idx)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("unconfined"), "{e}");
        // Exited: from the index; unknown: one line.
        idx.add(entry(&watched, 7)).unwrap();
        idx.add(entry(&default, 8)).unwrap();
        let none = BTreeMap::new();
        let d = ask(&none, "web1", false, &idx).await.unwrap();
        assert!(!d.running);
        assert_eq!(d.outside, ["fchmodat"]);
        let e = ask(&none, "web4", false, &idx).await.unwrap_err();
        assert!(matches!(e, ManagerError::NotWatched { .. }), "{e}");
        let e = ask(&none, "nope", false, &idx).await.unwrap_err();
        assert!(e.to_string().starts_with("unknown container 'nope'"), "{e}");
        // --all: the exited one with drift, not the others.
        let Ok(Outcome::Drift(d)) = answer(&none, None, false, entries(&idx)).await else {
            panic!("no list")
        };
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].id, watched.key());
    }

    /// `r` renamed `name`, started at `started`.
    fn named(mut r: Recording, name: &str, started: u64) -> Recording {
        r.container.name = Some(name.to_owned());
        r.started = started;
        r
    }

    #[tokio::test]
    async fn a_name_means_the_watched_one_that_runs_else_the_last_one() {
        let dir = tempfile::tempdir().unwrap();
        let idx = Arc::new(Index::open(dir.path()).unwrap());
        let mut ran = named(recording(1, Some(ACT_LOG)), "web", 1);
        observe(&mut ran, &[set(1, &["fchmodat"])], 5);
        let mut ran_again = named(recording(2, Some(ACT_LOG)), "web", 2);
        observe(&mut ran_again, &[set(2, &["chmod"])], 6);
        // A run under the runtime's default, the newest of all: ignored.
        let mut default = named(recording(3, None), "web", 3);
        default.policy = Policy::Filter(Box::new(filter(ACT_ERRNO)));
        for (r, written) in [(&ran, 7), (&ran_again, 8), (&default, 9)] {
            idx.add(entry(r, written)).unwrap();
        }
        let none = BTreeMap::new();
        let d = ask(&none, "web", false, &idx).await.unwrap();
        assert_eq!(
            (d.id.as_str(), d.running),
            (ran_again.key().as_str(), false)
        );
        // Running under the default profile: still the last watched run.
        let d = ask(&map(&[&default]), "web", false, &idx).await.unwrap();
        assert_eq!(d.id, ran_again.key());
        // A watched one that runs wins over those that ran, and a finishing
        // one (its cgroup gone) over none; the newest among equals.
        let runs = named(recording(4, Some(ACT_LOG)), "web", 4);
        let mut finishing = named(recording(5, Some(ACT_LOG)), "web", 5);
        finishing.finishing = true;
        let recs = map(&[&default, &runs, &finishing]);
        let d = ask(&recs, "web", false, &idx).await.unwrap();
        assert_eq!((d.id.as_str(), d.running), (runs.key().as_str(), true));
        let d = ask(&map(&[&finishing]), "web", false, &idx).await.unwrap();
        assert_eq!(d.id, finishing.key());
        // Ids and prefixes stay exact: the default run by its id is not
        // watched, and a prefix of several keys is ambiguous.
        let e = ask(&none, &default.key(), false, &idx).await.unwrap_err();
        assert!(matches!(e, ManagerError::NotWatched { .. }), "{e}");
        let e = ask(&recs, "0000", false, &idx).await.unwrap_err();
        assert!(matches!(e, ManagerError::Ambiguous { .. }), "{e}");
        let e = ask(&none, "0000", false, &idx).await.unwrap_err();
        assert!(e.to_string().contains("ambiguous"), "{e}");
        // Only runs under the default: not watched, of the newest.
        let idx2 = Arc::new(Index::open(&dir.path().join("2")).unwrap());
        let e = ask(&map(&[&default]), "web", false, &idx2)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("runtime's default"), "{e}");
    }

    #[test]
    fn ended_series_stay_for_a_while() {
        let mut watched = recording(1, Some(ACT_LOG));
        observe(&mut watched, &[set(1, &["chmod"])], 5);
        let mut ended = EndedSeries::default();
        ended.push(&watched, 100);
        ended.push(&recording(2, None), 100);
        let kept = ended.current(699, 600);
        assert_eq!(kept.len(), 1, "only the watched one");
        assert_eq!((kept[0].outside, kept[0].ended), (Some(1), true));
        assert!(ended.current(700, 600).is_empty());
        for i in 0..=MAX_ENDED_SERIES as u64 {
            ended.push(&recording(i + 10, Some(ACT_LOG)), 800);
        }
        let kept = ended.current(800, 600);
        assert_eq!(kept.len(), MAX_ENDED_SERIES);
        assert_eq!(kept[0].owner, 11, "the oldest went");
        assert!(ended.current(800, 0).is_empty(), "0: not kept");
        // The snapshot keeps the drift row of a finished recording until
        // the next refresh, and drops the others.
        let snap: crate::metrics::SharedSnapshot = Arc::default();
        let row = |owner, outside| ContainerSeries {
            owner,
            outside,
            ..ContainerSeries::default()
        };
        let containers = vec![row(1, Some(2)), row(2, None)];
        let snapshot = crate::metrics::Snapshot {
            containers,
            ..Default::default()
        };
        crate::metrics::store(&snap, snapshot);
        crate::metrics::forget(&snap, 1);
        crate::metrics::forget(&snap, 2);
        let left = snap.read().unwrap().containers.clone();
        assert_eq!(
            left,
            [ContainerSeries {
                ended: true,
                ..row(1, Some(2))
            }]
        );
    }

    #[test]
    fn drift_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = recording(1, Some(ACT_LOG));
        observe(&mut r, &[set(1, &["chmod"])], 42);
        state::save(dir.path(), vec![r.clone()]);
        let back = state::load(dir.path());
        assert_eq!(back[0].chosen_profile, r.chosen_profile);
        assert_eq!(back[0].drift, r.drift);
        assert_eq!(drift::names(&back[0].drift)["chmod"], 42);
    }
}
