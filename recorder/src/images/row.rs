//! An image's row: the merged profile of every run that fed it, the
//! references seen, its label, runs and the times the `ready` rule needs;
//! what `recorderctl images` shows of it ([`ImageInfo`]); [`find`] for
//! `profile --image`. Stored as its JSON in the index (`store.rs`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{
    ImagesConfig, ImagesError,
    keys::{ImageKey, KeyedBy, file_name, is_id_prefix, label_of, normalise, short_id, unmark},
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
    /// Containers recorded into it.
    pub runs: u64,
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
                (None, None) => k.key.clone(),
            },
            id,
            keyed_by: k.keyed_by,
            references: Vec::new(),
            label: label_of(k),
            runs: 0,
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

    /// Adds one run's profile, of a container started as `reference`;
    /// returns whether the union grew (the first run always does).
    pub fn add_run(&mut self, reference: Option<&str>, run: &Profile, now: u64) -> bool {
        if let Some(r) = reference {
            self.references.retain(|x| x != r);
            self.references.push(r.to_owned());
            self.image = r.to_owned();
        }
        let names_before = allowed_names(&self.profile);
        // A recovered row's profile counts as what it had before.
        let grew = if self.runs == 0 && self.profile == Profile::default() {
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
            let runs = self.runs;
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

    /// The `ready` rule: at least `ready_min_runs` runs, and no new
    /// syscall in the last `ready_quiet_runs` runs nor for
    /// `ready_quiet_secs` seconds.
    pub fn ready(&self, rule: &ImagesConfig, now: u64) -> bool {
        self.runs >= rule.ready_min_runs
            && self.runs_since_last_new >= rule.ready_quiet_runs
            && now.saturating_sub(self.last_new) >= rule.ready_quiet_secs
    }

    /// What the ready rule still waits for (empty: ready).
    pub fn not_ready(&self, rule: &ImagesConfig, now: u64) -> Vec<String> {
        let mut why = Vec::new();
        if self.runs < rule.ready_min_runs {
            why.push(format!("{}/{} runs", self.runs, rule.ready_min_runs));
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

/// The row `spec` names: its key, else a reference it was run as
/// (normalised) or its label, else an id prefix (with or without
/// `sha256:`). Several rows (a tag moved to a new id) are ambiguous.
pub fn find<'a>(rows: &'a [ImageRow], spec: &str) -> Result<&'a ImageRow, ImagesError> {
    // As a listing shows it (`(name) web`): the key.
    let spec = unmark(spec);
    if let Some(r) = rows.iter().find(|r| r.key == spec) {
        return Ok(r);
    }
    let reference = normalise(spec);
    let by_ref: Vec<&ImageRow> = rows
        .iter()
        .filter(|r| r.references.contains(&reference) || r.image == spec || r.label() == spec)
        .collect();
    let found = if by_ref.is_empty() {
        rows.iter()
            .filter(|r| r.id.as_deref().is_some_and(|id| is_id_prefix(spec, id)))
            .collect()
    } else {
        by_ref
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
        assert_eq!(row(None, None, Some("pweb")).label(), "pweb");
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
        assert_eq!(find(&rows, "web").unwrap().key, "web");
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
