//! Image profiles: every recorded container of an image adds its profile
//! (as written, with its recording-time policy's answers) to the image's
//! merged profile. This module holds the rows kept in the profile index
//! (`index.rs`), the key of an image, the `ready` rule, and the file name
//! of `<profiles-dir>/images/<image>.json`. The daemon's side is
//! `daemon/images.rs`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{
    config::ImagesConfig,
    profile::{ACT_ALLOW, Profile},
};

/// The directory under the profiles dir that holds the image profiles.
pub const DIR: &str = "images";

/// What an image row is keyed by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyedBy {
    /// The image id the runtime told: every reference of it feeds one row.
    Id,
    /// The normalised reference (no id known).
    #[default]
    Reference,
    /// The container's name (no image known, e.g. a containerd task
    /// without one).
    Name,
    /// The root filesystem's path (no image known: podman or runc
    /// `--rootfs`), so that runs under different names share a row.
    Rootfs,
}

/// How listings show an image row: its image, or for a row without an
/// image `(name) NAME` or `(rootfs) PATH`. [`find`] takes it back.
pub fn shown(keyed_by: KeyedBy, image: &str) -> String {
    match keyed_by {
        KeyedBy::Name => format!("{NAME_MARK}{image}"),
        KeyedBy::Rootfs => format!("{ROOTFS_MARK}{image}"),
        KeyedBy::Id | KeyedBy::Reference => image.to_owned(),
    }
}

const NAME_MARK: &str = "(name) ";
const ROOTFS_MARK: &str = "(rootfs) ";

/// The image profile a container feeds (see [`key`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageKey {
    pub key: String,
    pub keyed_by: KeyedBy,
    /// The container's image reference, normalised, when it has one.
    pub reference: Option<String>,
}

/// An image reference as docker resolves it: without `docker.io/` (or
/// `index.docker.io/`) and `library/`, with `:latest` when it has neither
/// tag nor digest.
pub fn normalise(reference: &str) -> String {
    let r = reference.trim();
    let r = ["docker.io/", "index.docker.io/"]
        .iter()
        .find_map(|p| r.strip_prefix(p))
        .unwrap_or(r);
    let r = r.strip_prefix("library/").unwrap_or(r);
    let last = r.rsplit('/').next().unwrap_or(r);
    if r.contains('@') || last.contains(':') {
        r.to_owned()
    } else {
        format!("{r}:latest")
    }
}

/// The hex of an id, without `sha256:`.
fn hex(id: &str) -> &str {
    id.strip_prefix("sha256:").unwrap_or(id)
}

/// An id's first 12 hex digits, as `docker images` shows it.
pub fn short_id(id: &str) -> String {
    hex(id).chars().take(12).collect()
}

/// Whether `spec` is `id` or a prefix of it (at least 4 hex digits, with
/// or without `sha256:`, either case).
pub fn is_id_prefix(spec: &str, id: &str) -> bool {
    let spec = hex(spec).to_ascii_lowercase();
    spec.len() >= 4
        && spec.chars().all(|c| c.is_ascii_hexdigit())
        && hex(id).to_ascii_lowercase().starts_with(&spec)
}

/// What an image is known by: its id where the runtime tells it, so that
/// every reference of it (and running it by id) feeds one row; else its
/// normalised reference; a container without an image goes by `name`: its
/// root filesystem's path where the caller knows it (an absolute path,
/// [`KeyedBy::Rootfs`]), else its name.
/// An "image" that is a prefix of the id (`docker run dd66f5…`) is not a
/// reference.
pub fn key(image: Option<&str>, image_id: Option<&str>, name: Option<&str>) -> Option<ImageKey> {
    let id = image_id.filter(|i| !i.is_empty());
    let reference = image
        .filter(|i| !i.is_empty() && !id.is_some_and(|id| is_id_prefix(i, id)))
        .map(normalise);
    let (key, keyed_by) = match (id, &reference, name) {
        (Some(id), _, _) => (id.to_owned(), KeyedBy::Id),
        (None, Some(r), _) => (r.clone(), KeyedBy::Reference),
        // A rootfs path, where the caller knows one, else a name.
        (None, None, Some(n)) if n.starts_with('/') => (n.to_owned(), KeyedBy::Rootfs),
        (None, None, Some(n)) => (n.to_owned(), KeyedBy::Name),
        (None, None, None) => return None,
    };
    Some(ImageKey {
        key,
        keyed_by,
        reference,
    })
}

/// The file name (without `.json`) of an image's profile: the container
/// key's escaping, which maps distinct labels to distinct names and never
/// yields `/`, `..` or a leading dot.
pub fn file_stem(label: &str) -> String {
    crate::container::file_stem(label)
}

/// An image row's label (file name, metrics): `<first reference>@<short
/// id>` (or the short id) for an id, else the key.
fn label_of(k: &ImageKey) -> String {
    match (k.keyed_by, &k.reference) {
        (KeyedBy::Id, Some(r)) => format!("{r}@{}", short_id(&k.key)),
        (KeyedBy::Id, None) => short_id(&k.key),
        _ => k.key.clone(),
    }
}

/// An image's bookkeeping, kept in the index (one row per image key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRow {
    /// The image id, reference or container name (see [`key`]).
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
    /// The merge of every run's profile.
    pub profile: Profile,
}

/// What `recorderctl images` shows of an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub image: String,
    pub key: String,
    #[serde(default)]
    pub keyed_by: KeyedBy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The references seen, the most recent last.
    #[serde(default)]
    pub references: Vec<String>,
    /// Its label in the metrics and `images/<file>.json`.
    #[serde(default)]
    pub label: String,
    pub runs: u64,
    /// The size of the union (distinct allowed names, over every ABI).
    pub syscalls: usize,
    pub first_seen: u64,
    pub last_seen: u64,
    pub last_new: u64,
    pub runs_since_last_new: u64,
    /// The syscalls that were new when the union last grew.
    #[serde(default)]
    pub last_new_syscalls: Vec<String>,
    /// Syscalls the recording-time policy denied while recorded; not
    /// known yet (the kernel side does not count them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied_while_recorded: Option<u64>,
    pub ready: bool,
    /// What the ready rule still waits for, each as what there is and
    /// what it needs (`2/5 runs`, `1/3 runs quiet`, `3h/1d quiet`), and
    /// what was new (`new: mkdir, symlink`); empty when ready.
    #[serde(default)]
    pub not_ready: Vec<String>,
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
            profile: Profile::default(),
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
                log::debug!("image {}: {note}", self.key);
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

    /// `<label>.json`, escaped, in `<profiles-dir>/images/`.
    pub fn file_name(&self) -> String {
        format!("{}.json", file_stem(self.label()))
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
        let grew = if self.runs == 0 {
            self.profile = run.clone();
            true
        } else {
            let before = allowed(&self.profile);
            for note in self.profile.merge(run) {
                log::debug!("image {}: {note}", self.key);
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
            denied_while_recorded: None,
            ready: self.ready(rule, now),
            not_ready: self.not_ready(rule, now),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("no image profile for '{0}' (see recorderctl images)")]
    NotFound(String),
    #[error("'{spec}' is ambiguous; image profiles: {}", .keys.join(", "))]
    Ambiguous { spec: String, keys: Vec<String> },
}

/// The row `spec` names: its key, else a reference it was run as
/// (normalised) or its label, else an id prefix (with or without
/// `sha256:`). Several rows (a tag moved to a new id) are ambiguous.
pub fn find<'a>(rows: &'a [ImageRow], spec: &str) -> Result<&'a ImageRow, ImageError> {
    // As a listing shows it (`(name) web`): the key.
    let spec = [NAME_MARK, ROOTFS_MARK]
        .iter()
        .find_map(|m| spec.strip_prefix(m))
        .unwrap_or(spec);
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
        [] => Err(ImageError::NotFound(spec.to_owned())),
        [one] => Ok(one),
        many => Err(ImageError::Ambiguous {
            spec: spec.to_owned(),
            keys: many.iter().map(|r| r.label().to_owned()).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn references_are_normalised() {
        for (given, want) in [
            ("busybox", "busybox:latest"),
            ("docker.io/library/busybox", "busybox:latest"),
            ("library/busybox:1", "busybox:1"),
            ("index.docker.io/review/busy:1", "review/busy:1"),
            ("docker.io/review/busy", "review/busy:latest"),
            ("quay.io/library/x", "quay.io/library/x:latest"),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            ("localhost:5000/app:2", "localhost:5000/app:2"),
            ("b@sha256:cd", "b@sha256:cd"),
        ] {
            assert_eq!(normalise(given), want, "{given}");
        }
    }

    #[test]
    fn keys() {
        let k = key(Some("docker.io/busybox"), Some("sha256:abcd12"), None).unwrap();
        assert_eq!(
            (k.key.as_str(), k.keyed_by, k.reference.as_deref()),
            ("sha256:abcd12", KeyedBy::Id, Some("busybox:latest"))
        );
        // Run by id: no reference, the same key.
        for by_id in ["abcd", "ABCD12", "sha256:abcd12"] {
            let k = key(Some(by_id), Some("sha256:abcd12"), None).unwrap();
            assert_eq!((k.key.as_str(), k.reference), ("sha256:abcd12", None));
        }
        let k = key(Some("busybox"), None, Some("x")).unwrap();
        assert_eq!(
            (k.key.as_str(), k.keyed_by),
            ("busybox:latest", KeyedBy::Reference)
        );
        let k = key(None, None, Some("web")).unwrap();
        assert_eq!((k.key.as_str(), k.keyed_by), ("web", KeyedBy::Name));
        let k = key(None, None, Some("/srv/rootfs")).unwrap();
        assert_eq!(
            (k.key.as_str(), k.keyed_by),
            ("/srv/rootfs", KeyedBy::Rootfs)
        );
        assert_eq!(key(None, None, None), None);
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
    fn file_stems_do_not_collide_or_escape() {
        let keys = [
            "quay.io/a/b:1@sha256:ff",
            "quay.io+a+b:1@sha256:ff",
            "quay.io/a/b%3A1@sha256:ff",
            "..",
            "../x",
            "a:b",
            "a@b",
            "a/b",
            "a+b",
        ];
        let stems: BTreeSet<String> = keys.iter().map(|k| file_stem(k)).collect();
        assert_eq!(stems.len(), keys.len(), "{stems:?}");
        for s in &stems {
            assert!(
                !s.contains('/') && !s.starts_with('.') && !s.contains(':'),
                "{s}"
            );
            assert!(!s.contains('@'), "{s}");
        }
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
            Err(ImageError::Ambiguous { keys, .. }) => {
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
        assert!(matches!(find(&rows, "zz"), Err(ImageError::NotFound(_))));
        assert!(matches!(find(&rows, "11"), Err(ImageError::NotFound(_))));
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
