//! An image's row: the merged profile of every run that fed it, the
//! references seen, its label, runs and the times the `ready` rule needs;
//! what `recorderctl images` shows of it ([`ImageInfo`]); [`find`] for
//! `profile --image`; whether a run counts ([`Start`]). Stored as its JSON
//! in the index (`store.rs`).

use std::collections::BTreeSet;

use recorder_common::{
    FLAG_MARKER_SEEN, FLAG_WORKLOAD_STARTED, PHASE_RUNTIME_INIT, SyscallSet, Workload,
};
use serde::{Deserialize, Serialize};

use super::{
    ImagesConfig, ImagesError,
    keys::{
        ImageKey, KeyedBy, file_name, is_id_prefix, label_of, normalise, short_id, unmark, unmarked,
    },
};
use crate::profile::{ACT_ALLOW, Profile};

/// An image's bookkeeping, kept in the index (one row per image key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRow {
    /// The image id, reference or container name (see [`super::key`]).
    pub key: String,
    /// What is shown: the most recent reference, else the container name,
    /// else the short id.
    pub image: String,
    /// The image id or digest, where the runtime told it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Rows of older versions were keyed by `reference@id`: `reference`.
    #[serde(default)]
    pub keyed_by: KeyedBy,
    /// The references seen (normalised), the most recent last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    /// Its name in `images/<file>.json` and the metrics, fixed when the
    /// row is made; empty in older rows (the key).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// Containers recorded into it, failed runs included.
    pub runs: u64,
    /// Of `runs`, those that failed ([`Start::failure`]): they add nothing
    /// to the profile and do not count toward `ready`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_runs: u64,
    /// Why the last failed run failed (`exit 3 within 10 s`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_failure: String,
    /// Seconds since the epoch.
    pub first_seen: u64,
    pub last_seen: u64,
    /// When the union last grew.
    pub last_new: u64,
    pub runs_since_last_new: u64,
    /// The syscalls that were new when the union last grew (empty in
    /// older rows).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_new_syscalls: Vec<String>,
    /// What the enforcing profiles of its watched runs denied them, in all
    /// (`None`: no run was watched for denials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied_while_recorded: Option<u64>,
    /// The merge of every run's profile.
    pub profile: Profile,
    /// Its file does not hold `profile` yet (a write failed): retried.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub file_pending: bool,
}

pub use recorder_api::image::ImageInfo;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How a recorded run's workload started and ended, from the kernel's
/// sets and `WORKLOADS` entry (recorder-ebpf's `exec.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Start {
    /// Its start was not watched (a recording of a running container, or
    /// one a recorder without the exec hook began): counted as before.
    #[default]
    Unknown,
    /// Watched from the runtime's start, and no exec of its own came: the
    /// runtime failed, or the exec did (e.g. a command that does not exist).
    NotStarted,
    /// Its exec was seen; `exit` is its wait status and how long it ran,
    /// in nanoseconds, when the kernel saw it exit.
    Started { exit: Option<(u32, u64)> },
}

impl Start {
    /// What the sets of a recording and the workload of its cgroup tell.
    pub fn of(sets: &[SyscallSet], workload: Option<&Workload>) -> Self {
        if sets.iter().any(|s| s.flags & FLAG_WORKLOAD_STARTED != 0) {
            let exit = workload
                .filter(|w| w.exited_ns != 0)
                .map(|w| (w.exit_code, w.exited_ns.saturating_sub(w.started_ns)));
            Self::Started { exit }
        } else if sets
            .iter()
            .any(|s| s.phase == PHASE_RUNTIME_INIT || s.flags & FLAG_MARKER_SEEN != 0)
        {
            Self::NotStarted
        } else {
            Self::Unknown
        }
    }

    /// Why the run does not count toward `ready` (and adds nothing to the
    /// image profile): it never started, or it exited non-zero or died of
    /// a signal within `min_run_secs` of its exec. `None`: it counts. The
    /// signals a container is stopped with (`docker stop`, `kill`: TERM,
    /// INT, HUP, KILL) are not failures.
    pub fn failure(&self, min_run_secs: u64) -> Option<String> {
        match *self {
            Self::Unknown | Self::Started { exit: None } => None,
            Self::NotStarted => Some("never started".to_owned()),
            Self::Started {
                exit: Some((status, ran_ns)),
            } => {
                if ran_ns >= min_run_secs.saturating_mul(1_000_000_000) {
                    return None;
                }
                let (code, signal) = ((status >> 8) & 0xff, status & 0x7f);
                let how = match (signal, code) {
                    (0, 0) => return None,
                    (1 | 2 | 9 | 15, _) => return None,
                    (0, code) => format!("exit {code}"),
                    (signal, _) => format!("signal {signal}"),
                };
                Some(format!("{how} within {min_run_secs} s"))
            }
        }
    }
}

/// A duration as `95s`, `12m`, `24h` or `3d` (a unit is used from twice
/// its size on, so that rounding down stays within half).
fn ago(secs: u64) -> String {
    match secs {
        ..120 => format!("{secs}s"),
        120..7200 => format!("{}m", secs / 60),
        7200..172_800 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// What a profile allows, by name and the ABIs and conditions of the rule,
/// to tell whether a merge made the union grow.
fn allowed(p: &Profile) -> BTreeSet<String> {
    p.syscalls
        .iter()
        .filter(|r| r.action == ACT_ALLOW)
        .flat_map(|r| {
            let scope =
                serde_json::to_string(&(&r.args, &r.includes, &r.excludes)).unwrap_or_default();
            r.all_names()
                .map(move |n| format!("{n} {scope}"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The names some ALLOW rule allows.
fn allowed_names(p: &Profile) -> BTreeSet<String> {
    p.syscalls
        .iter()
        .filter(|r| r.action == ACT_ALLOW)
        .flat_map(|r| r.all_names().map(str::to_owned))
        .collect()
}

/// Distinct names some ALLOW rule allows.
pub fn syscalls(p: &Profile) -> usize {
    p.syscalls
        .iter()
        .filter(|r| r.action == ACT_ALLOW)
        .flat_map(|r| r.all_names())
        .collect::<BTreeSet<_>>()
        .len()
}

impl ImageRow {
    /// A row with no run yet.
    pub fn new(k: &ImageKey, now: u64) -> Self {
        let id = (k.keyed_by == KeyedBy::Id).then(|| k.key.clone());
        Self {
            key: k.key.clone(),
            image: match (&k.reference, &id) {
                (Some(r), _) => r.clone(),
                (None, Some(id)) => short_id(id),
                // A name or rootfs path, shown without its key's mark.
                (None, None) => unmarked(&k.key).to_owned(),
            },
            id,
            keyed_by: k.keyed_by,
            references: Vec::new(),
            label: label_of(k),
            runs: 0,
            failed_runs: 0,
            last_failure: String::new(),
            first_seen: now,
            last_seen: now,
            last_new: now,
            runs_since_last_new: 0,
            last_new_syscalls: Vec::new(),
            denied_while_recorded: None,
            profile: Profile::default(),
            file_pending: false,
        }
    }

    /// Takes in the profile its file holds, for a row the index did not
    /// know (a lost or damaged index): the file never shrinks. Its runs
    /// are not known; they count again from here.
    pub fn recover(&mut self, file: &Profile) {
        for note in self.profile.merge(file) {
            log::debug!("image {}: {note}", self.key.escape_debug());
        }
    }

    /// Whether this is a row of an older recorderd (keyed `reference@id`)
    /// of image `id`, which a row keyed by `id` takes over.
    pub fn is_older_row_of(&self, id: &str) -> bool {
        self.label.is_empty() && self.key != id && self.id.as_deref() == Some(id)
    }

    /// Takes over an older row of the same image (see `is_older_row_of`):
    /// its runs, profile and reference. Cautious about `ready`: the newer
    /// `last_new`, the fewer runs since.
    pub fn adopt(&mut self, old: ImageRow) {
        if self.runs == 0 {
            self.profile = old.profile;
            self.runs_since_last_new = old.runs_since_last_new;
            (self.first_seen, self.last_seen) = (old.first_seen, old.last_seen);
            self.last_new = old.last_new;
        } else {
            for note in self.profile.merge(&old.profile) {
                log::debug!("image {}: {note}", self.key.escape_debug());
            }
            self.runs_since_last_new = self.runs_since_last_new.min(old.runs_since_last_new);
        }
        self.runs += old.runs;
        self.failed_runs += old.failed_runs;
        if self.last_failure.is_empty() {
            self.last_failure = old.last_failure;
        }
        self.first_seen = self.first_seen.min(old.first_seen);
        self.last_seen = self.last_seen.max(old.last_seen);
        self.last_new = self.last_new.max(old.last_new);
        // Its image, unless it ran by id.
        let reference = normalise(&old.image);
        let by_id = is_id_prefix(&old.image, &self.key);
        if !by_id && !self.references.contains(&reference) {
            self.references.insert(0, reference);
        }
    }

    /// Its label in the metrics and file name.
    pub fn label(&self) -> &str {
        if self.label.is_empty() {
            &self.key
        } else {
            &self.label
        }
    }

    /// `<label>.json`, escaped (and shortened when too long), in
    /// `<profiles-dir>/images/`.
    pub fn file_name(&self) -> String {
        file_name(self.label())
    }

    /// Runs that count toward `ready`: those that did not fail.
    pub fn good_runs(&self) -> u64 {
        self.runs.saturating_sub(self.failed_runs)
    }

    fn seen_as(&mut self, reference: Option<&str>) {
        if let Some(r) = reference {
            self.references.retain(|x| x != r);
            self.references.push(r.to_owned());
            self.image = r.to_owned();
        }
    }

    /// Counts a failed run (`why`: [`Start::failure`]) of a container
    /// started as `reference`: its profile is left out.
    pub fn add_failed(&mut self, reference: Option<&str>, why: &str, now: u64) {
        self.seen_as(reference);
        self.runs += 1;
        self.failed_runs += 1;
        self.last_failure = why.to_owned();
        self.last_seen = now;
    }

    /// Adds one run's profile, of a container started as `reference`;
    /// returns whether the union grew (the first run always does).
    pub fn add_run(&mut self, reference: Option<&str>, run: &Profile, now: u64) -> bool {
        self.seen_as(reference);
        let names_before = allowed_names(&self.profile);
        // A recovered row's profile counts as what it had before.
        let grew = if self.good_runs() == 0 && self.profile == Profile::default() {
            self.profile = run.clone();
            true
        } else {
            let before = allowed(&self.profile);
            for note in self.profile.merge(run) {
                log::debug!("image {}: {note}", self.key.escape_debug());
            }
            allowed(&self.profile) != before
        };
        if grew {
            let runs = self.good_runs();
            let after = allowed_names(&self.profile);
            self.last_new_syscalls = after
                .difference(&names_before)
                .filter(|_| runs > 0)
                .cloned()
                .collect();
        }
        self.runs += 1;
        self.last_seen = now;
        if grew {
            self.last_new = now;
            self.runs_since_last_new = 0;
        } else {
            self.runs_since_last_new += 1;
        }
        grew
    }

    /// The `ready` rule: at least `ready_min_runs` runs that did not fail
    /// ([`Start::failure`]), and no new syscall in the last
    /// `ready_quiet_runs` of them nor for `ready_quiet_secs` seconds.
    pub fn ready(&self, rule: &ImagesConfig, now: u64) -> bool {
        self.good_runs() >= rule.ready_min_runs
            && self.runs_since_last_new >= rule.ready_quiet_runs
            && now.saturating_sub(self.last_new) >= rule.ready_quiet_secs
    }

    /// What the ready rule still waits for (empty: ready).
    pub fn not_ready(&self, rule: &ImagesConfig, now: u64) -> Vec<String> {
        let mut why = Vec::new();
        if self.failed_runs > 0 && !self.ready(rule, now) {
            why.push(format!(
                "{} of {} runs failed ({})",
                self.failed_runs, self.runs, self.last_failure
            ));
        }
        if self.good_runs() < rule.ready_min_runs {
            why.push(format!("{}/{} runs", self.good_runs(), rule.ready_min_runs));
        }
        let noisy = self.runs_since_last_new < rule.ready_quiet_runs;
        if noisy {
            why.push(format!(
                "{}/{} runs quiet",
                self.runs_since_last_new, rule.ready_quiet_runs
            ));
        }
        let quiet = now.saturating_sub(self.last_new);
        let recent = quiet < rule.ready_quiet_secs;
        if recent {
            why.push(format!(
                "{}/{} quiet",
                ago(quiet),
                ago(rule.ready_quiet_secs)
            ));
        }
        // What was new, when that is what it waits for (not known for
        // the first run, where everything is, nor in older rows).
        if (noisy || recent) && !self.last_new_syscalls.is_empty() {
            const SHOWN: usize = 3;
            let names = &self.last_new_syscalls;
            let mut new = names[..names.len().min(SHOWN)].join(", ");
            if names.len() > SHOWN {
                new.push_str(&format!(" +{} more", names.len() - SHOWN));
            }
            why.push(format!("new: {new}"));
        }
        why
    }

    pub fn info(&self, rule: &ImagesConfig, now: u64) -> ImageInfo {
        ImageInfo {
            image: self.image.clone(),
            key: self.key.clone(),
            keyed_by: self.keyed_by,
            id: self.id.clone(),
            references: self.references.clone(),
            label: self.label().to_owned(),
            runs: self.runs,
            failed_runs: self.failed_runs,
            syscalls: syscalls(&self.profile),
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            last_new: self.last_new,
            runs_since_last_new: self.runs_since_last_new,
            last_new_syscalls: self.last_new_syscalls.clone(),
            denied_while_recorded: self.denied_while_recorded,
            ready: self.ready(rule, now),
            not_ready: self.not_ready(rule, now),
        }
    }
}

/// The rows `spec` names: its key or label, a reference it was run as
/// (normalised), or else an id prefix (with or without `sha256:`). A row
/// keyed by a container's name or rootfs path is named only as `images`
/// shows it (`(name) web`) or by its marked key or label (`name=web`),
/// never by a bare word, so that a container named after an image (its
/// short id, its reference) cannot answer for it. Several rows (a tag
/// moved to a new id, one reference in two runtimes' image stores) are
/// ambiguous: refused, with the candidates.
pub fn find<'a>(rows: &'a [ImageRow], spec: &str) -> Result<&'a ImageRow, ImagesError> {
    let found: Vec<&ImageRow> = match unmark(spec) {
        // As a listing shows it (`(name) web`).
        (Some(kind), shown) => rows
            .iter()
            .filter(|r| r.keyed_by == kind && r.image == shown)
            .collect(),
        (None, spec) => {
            let reference = normalise(spec);
            // Rows of older versions kept unmarked names: only their
            // marked form names them.
            // A bare path names a rootfs row (no image's spec starts with
            // `/`); a bare word never names a name row.
            let named = |r: &ImageRow| {
                let image = matches!(r.keyed_by, KeyedBy::Id | KeyedBy::Reference);
                let exact = r.key == spec || r.label() == spec;
                (exact && (image || r.label().contains('=')))
                    || (image && (r.references.contains(&reference) || r.image == spec))
                    || (r.keyed_by == KeyedBy::Rootfs && spec.starts_with('/') && r.image == spec)
            };
            let by_name: Vec<&ImageRow> = rows.iter().filter(|r| named(r)).collect();
            if by_name.is_empty() {
                rows.iter()
                    .filter(|r| r.keyed_by == KeyedBy::Id)
                    .filter(|r| r.id.as_deref().is_some_and(|id| is_id_prefix(spec, id)))
                    .collect()
            } else {
                by_name
            }
        }
    };
    match found.as_slice() {
        [] => Err(ImagesError::NotFound(spec.to_owned())),
        [one] => Ok(one),
        many => Err(ImagesError::Ambiguous {
            spec: spec.to_owned(),
            keys: many.iter().map(|r| r.label().to_owned()).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::{key, shown};

    fn profile(names: &[&str]) -> Profile {
        let mut p = Profile::default();
        p.syscalls.push(crate::profile::SyscallRule::allow(
            names.iter().map(|s| (*s).to_owned()),
        ));
        p
    }

    fn row(image: Option<&str>, id: Option<&str>, name: Option<&str>) -> ImageRow {
        ImageRow::new(&key(image, id, name).unwrap(), 0)
    }

    #[test]
    fn labels_and_files_are_fixed_when_the_row_is_made() {
        let id = "sha256:dd66f5ba5776aaaa";
        let mut r = row(Some("review/busy:1"), Some(id), None);
        assert_eq!(r.label(), "review/busy:1@dd66f5ba5776");
        assert_eq!(r.file_name(), "review+busy%3A1%40dd66f5ba5776.json");
        r.add_run(Some("other:2"), &profile(&["read"]), 1);
        r.add_run(Some("review/busy:1"), &profile(&["read"]), 2);
        assert_eq!(r.references, ["other:2", "review/busy:1"]);
        assert_eq!(
            (r.image.as_str(), r.label()),
            ("review/busy:1", "review/busy:1@dd66f5ba5776")
        );
        assert_eq!(row(Some("dd66f5"), Some(id), None).label(), "dd66f5ba5776");
        assert_eq!(row(None, None, Some("pweb")).label(), "name=pweb");
        assert_eq!(
            row(None, None, Some("pweb")).file_name(),
            "name%3Dpweb.json"
        );
        // An older row (no label) keeps its file and series.
        let old: ImageRow = serde_json::from_str(
            r#"{"key":"a@sha256:1","image":"a","id":"sha256:1","runs":1,"first_seen":0,
            "last_seen":0,"last_new":0,"runs_since_last_new":0,"profile":{"defaultAction":"SCMP_ACT_ERRNO"}}"#,
        )
        .unwrap();
        assert_eq!(
            (old.label(), old.keyed_by),
            ("a@sha256:1", KeyedBy::Reference)
        );
        assert_eq!(old.file_name(), "a%40sha256%3A1.json");
    }

    #[test]
    fn runs_last_new_and_runs_since_last_new() {
        let mut row = row(Some("i"), None, None);
        assert!(row.add_run(None, &profile(&["read", "mkdir"]), 10));
        assert!(row.add_run(None, &profile(&["read", "chmod"]), 20));
        assert!(!row.add_run(None, &profile(&["read"]), 30));
        assert!(!row.add_run(None, &profile(&["chmod"]), 40));
        assert_eq!(row.runs, 4);
        assert_eq!(row.last_new, 20);
        assert_eq!(row.runs_since_last_new, 2);
        assert_eq!(row.last_seen, 40);
        assert_eq!(syscalls(&row.profile), 3);
        assert!(row.add_run(None, &profile(&["symlink"]), 50));
        assert_eq!((row.runs_since_last_new, row.last_new), (0, 50));
    }

    #[test]
    fn the_ready_rule() {
        let rule = ImagesConfig {
            ready_min_runs: 3,
            ready_quiet_runs: 2,
            ready_quiet_secs: 100,
            ..ImagesConfig::default()
        };
        let mut row = row(Some("i"), None, None);
        row.add_run(None, &profile(&["read"]), 0);
        row.add_run(None, &profile(&["read"]), 10);
        assert!(!row.ready(&rule, 1000), "two runs are too few");
        assert_eq!(row.not_ready(&rule, 1000), ["2/3 runs", "1/2 runs quiet"]);
        row.add_run(None, &profile(&["read"]), 20);
        assert!(row.ready(&rule, 100) && row.not_ready(&rule, 100).is_empty());
        assert!(!row.ready(&rule, 99), "too recent a new syscall");
        // Both thresholds shown: what there is, what it needs.
        assert_eq!(row.not_ready(&rule, 99), ["99s/100s quiet"]);
        row.add_run(None, &profile(&["write", "mkdir", "chmod", "link"]), 200);
        assert!(!row.ready(&rule, 10_000), "a new syscall in the last runs");
        assert_eq!(
            row.not_ready(&rule, 201),
            [
                "0/2 runs quiet",
                "1s/100s quiet",
                "new: chmod, link, mkdir +1 more"
            ]
        );
        row.add_run(None, &profile(&["read"]), 210);
        assert_eq!(
            row.not_ready(&rule, 210 + 7200),
            ["1/2 runs quiet", "new: chmod, link, mkdir +1 more"]
        );
        row.add_run(None, &profile(&["read"]), 220);
        assert!(row.ready(&rule, 300));
    }

    #[test]
    fn what_the_kernel_tells_of_a_start() {
        use recorder_common::{FLAG_INIT_ENDED_BY_EXEC, PHASE_WORKLOAD};
        let set = |phase, flags| {
            let mut s = SyscallSet::new(1, phase);
            s.flags = flags;
            s
        };
        let exited = |status, secs: u64| Workload {
            tgid: 7,
            exit_code: status,
            started_ns: 1_000,
            exited_ns: 1_000 + secs * 1_000_000_000,
        };
        // A recording begun in the workload phase saw no start.
        assert_eq!(Start::of(&[set(PHASE_WORKLOAD, 0)], None), Start::Unknown);
        assert_eq!(Start::of(&[], None), Start::Unknown);
        // Still in the runtime's init, or its filter loaded and no exec.
        assert_eq!(
            Start::of(&[set(PHASE_RUNTIME_INIT, 0)], None),
            Start::NotStarted
        );
        assert_eq!(
            Start::of(&[set(PHASE_WORKLOAD, FLAG_MARKER_SEEN)], None),
            Start::NotStarted
        );
        let started = set(
            PHASE_WORKLOAD,
            FLAG_MARKER_SEEN | FLAG_INIT_ENDED_BY_EXEC | FLAG_WORKLOAD_STARTED,
        );
        assert_eq!(
            Start::of(&[started], Some(&Workload::default())),
            Start::Started { exit: None }
        );
        let start = |status, secs| Start::of(&[started], Some(&exited(status, secs)));
        assert_eq!(start(3 << 8, 0).failure(10).unwrap(), "exit 3 within 10 s");
        assert_eq!(start(11, 2).failure(10).unwrap(), "signal 11 within 10 s");
        assert_eq!(start(15, 2).failure(10), None, "stopped, not failed");
        assert_eq!(start(0, 0).failure(10), None, "exit 0 is no failure");
        assert_eq!(start(3 << 8, 10).failure(10), None, "ran long enough");
        assert_eq!(start(3 << 8, 0).failure(0), None, "0 counts every run");
        assert_eq!(Start::NotStarted.failure(10).unwrap(), "never started");
        assert_eq!(Start::Unknown.failure(10), None);
    }

    #[test]
    fn failed_runs_add_nothing_and_do_not_count_toward_ready() {
        let rule = ImagesConfig {
            ready_min_runs: 2,
            ready_quiet_runs: 1,
            ready_quiet_secs: 0,
            ..ImagesConfig::default()
        };
        let mut row = row(Some("i"), None, None);
        for t in 0..7 {
            row.add_failed(Some("i:1"), "exit 3 within 10 s", t);
        }
        assert_eq!((row.runs, row.failed_runs, row.good_runs()), (7, 7, 0));
        assert_eq!(row.profile, Profile::default());
        assert_eq!(row.references, ["i:1"]);
        assert!(!row.ready(&rule, 100));
        assert_eq!(
            row.not_ready(&rule, 100),
            [
                "7 of 7 runs failed (exit 3 within 10 s)",
                "0/2 runs",
                "0/1 runs quiet"
            ]
        );
        // The first good run is the first run of the union.
        assert!(row.add_run(None, &profile(&["read"]), 10));
        assert!(row.last_new_syscalls.is_empty(), "{row:?}");
        assert!(!row.add_run(None, &profile(&["read"]), 11));
        assert!(row.ready(&rule, 100), "{:?}", row.not_ready(&rule, 100));
        assert!(row.not_ready(&rule, 100).is_empty());
        assert_eq!(row.info(&rule, 100).failed_runs, 7);
    }

    #[test]
    fn finds_rows() {
        let mut a1 = row(Some("a"), Some("sha256:1111aa"), None);
        a1.add_run(Some("a:latest"), &Profile::default(), 1);
        a1.add_run(Some("docker.io/x/a:2"), &Profile::default(), 2);
        let mut a2 = row(Some("a"), Some("sha256:2222bb"), None);
        a2.add_run(Some("a:latest"), &Profile::default(), 1);
        let mut b = row(Some("b"), Some("sha256:3333cc"), None);
        b.add_run(Some("b:latest"), &Profile::default(), 1);
        let rows = vec![
            a1,
            a2,
            b,
            row(None, None, Some("web")),
            row(None, None, Some("/srv/root")),
        ];
        assert_eq!(find(&rows, "b").unwrap().key, "sha256:3333cc");
        assert_eq!(
            find(&rows, "docker.io/library/b:latest").unwrap().key,
            "sha256:3333cc"
        );
        assert_eq!(find(&rows, "sha256:2222bb").unwrap().key, "sha256:2222bb");
        assert_eq!(find(&rows, "docker.io/x/a:2").unwrap().key, "sha256:1111aa");
        assert_eq!(find(&rows, "a:latest@2222bb").unwrap().key, "sha256:2222bb");
        match find(&rows, "a") {
            Err(ImagesError::Ambiguous { keys, .. }) => {
                assert_eq!(keys, ["a:latest@1111aa", "a:latest@2222bb"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(find(&rows, "1111").unwrap().key, "sha256:1111aa");
        // A name row only by its marked forms.
        assert!(matches!(find(&rows, "web"), Err(ImagesError::NotFound(_))));
        assert_eq!(find(&rows, "name=web").unwrap().key, "name=web");
        assert_eq!(find(&rows, "(name) web").unwrap().key, "name=web");
        assert_eq!(find(&rows, "/srv/root").unwrap().key, "rootfs=/srv/root");
        // As `images` shows rows without an image.
        for r in &rows[3..] {
            let shown = shown(r.keyed_by, &r.image);
            assert_eq!(find(&rows, &shown).unwrap().key, r.key, "{shown}");
        }
        assert_eq!(
            shown(rows[4].keyed_by, &rows[4].image),
            "(rootfs) /srv/root"
        );
        assert!(matches!(find(&rows, "zz"), Err(ImagesError::NotFound(_))));
        assert!(matches!(find(&rows, "11"), Err(ImagesError::NotFound(_))));
    }

    #[test]
    fn a_row_keyed_by_id_takes_over_older_rows() {
        let id = "sha256:dd66f5ba5776aaaa";
        let old = |image: &str, runs, first_seen, last_new| {
            let mut r = ImageRow::new(&key(Some(image), None, None).unwrap(), first_seen);
            (r.key, r.image, r.id, r.label) = (
                format!("{image}@{id}"),
                image.into(),
                Some(id.into()),
                String::new(),
            );
            for t in 0..runs {
                r.add_run(None, &profile(&[image]), first_seen + t);
            }
            r.last_new = last_new;
            r
        };
        let (a, b) = (old("a", 3, 10, 12), old("docker.io/b", 2, 5, 30));
        let by_id = old("dd66f5ba", 1, 20, 20);
        let mut row = ImageRow::new(&key(Some("c:1"), Some(id), None).unwrap(), 50);
        assert!(a.is_older_row_of(id) && !row.is_older_row_of(id));
        assert!(!a.is_older_row_of("sha256:ee"));
        row.adopt(a);
        row.adopt(by_id);
        row.adopt(b);
        row.add_run(Some("c:1"), &profile(&["a"]), 40);
        assert_eq!(row.references, ["b:latest", "a:latest", "c:1"]);
        assert_eq!((row.runs, row.first_seen, row.last_new), (7, 5, 30));
        assert_eq!(row.runs_since_last_new, 1, "by_id's 0, then a quiet run");
        assert_eq!(syscalls(&row.profile), 3);
    }
}
