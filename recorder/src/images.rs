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

/// What an image is known by: the image reference, with the image's id
/// (digest) where the runtime tells it; a container without an image goes
/// by its name.
pub fn key(image: Option<&str>, image_id: Option<&str>, name: Option<&str>) -> Option<String> {
    match (image, image_id) {
        (Some(i), _) if i.contains('@') => Some(i.to_owned()),
        (Some(i), Some(id)) => Some(format!("{i}@{id}")),
        (Some(i), None) => Some(i.to_owned()),
        (None, _) => name.map(str::to_owned),
    }
}

/// The file name (without `.json`) of an image's profile: the container
/// key's escaping, which maps distinct keys to distinct names and never
/// yields `/`, `..` or a leading dot.
pub fn file_stem(key: &str) -> String {
    crate::container::file_stem(key)
}

/// An image's bookkeeping, kept in the index (one row per image key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRow {
    /// The image reference plus id (see [`key`]).
    pub key: String,
    /// The image reference, or the container name without an image.
    pub image: String,
    /// The image id or digest, where the runtime told it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Containers recorded into it.
    pub runs: u64,
    /// Seconds since the epoch.
    pub first_seen: u64,
    pub last_seen: u64,
    /// When the union last grew.
    pub last_new: u64,
    pub runs_since_last_new: u64,
    /// The merge of every run's profile.
    pub profile: Profile,
}

/// What `recorderctl images` shows of an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub image: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub runs: u64,
    /// The size of the union (distinct allowed names, over every ABI).
    pub syscalls: usize,
    pub first_seen: u64,
    pub last_seen: u64,
    pub last_new: u64,
    pub runs_since_last_new: u64,
    /// Syscalls the recording-time policy denied while recorded; not
    /// known yet (the kernel side does not count them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied_while_recorded: Option<u64>,
    pub ready: bool,
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
    pub fn new(key: String, image: String, id: Option<String>, profile: Profile, now: u64) -> Self {
        Self {
            key,
            image,
            id,
            runs: 0,
            first_seen: now,
            last_seen: now,
            last_new: now,
            runs_since_last_new: 0,
            profile,
        }
    }

    /// Adds one run's profile; returns whether the union grew (the first
    /// run always does).
    pub fn add_run(&mut self, run: &Profile, now: u64) -> bool {
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

    pub fn info(&self, rule: &ImagesConfig, now: u64) -> ImageInfo {
        ImageInfo {
            image: self.image.clone(),
            key: self.key.clone(),
            id: self.id.clone(),
            runs: self.runs,
            syscalls: syscalls(&self.profile),
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            last_new: self.last_new,
            runs_since_last_new: self.runs_since_last_new,
            denied_while_recorded: None,
            ready: self.ready(rule, now),
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

/// The row `spec` names: its key, else its reference (one id only), else
/// an id or id prefix (with or without `sha256:`).
pub fn find<'a>(rows: &'a [ImageRow], spec: &str) -> Result<&'a ImageRow, ImageError> {
    if let Some(r) = rows.iter().find(|r| r.key == spec) {
        return Ok(r);
    }
    let by_ref: Vec<&ImageRow> = rows.iter().filter(|r| r.image == spec).collect();
    let found = if by_ref.is_empty() {
        let hex = spec.strip_prefix("sha256:").unwrap_or(spec);
        rows.iter()
            .filter(|r| {
                hex.len() >= 4
                    && r.id
                        .as_deref()
                        .is_some_and(|id| id.strip_prefix("sha256:").unwrap_or(id).starts_with(hex))
            })
            .collect()
    } else {
        by_ref
    };
    match found.as_slice() {
        [] => Err(ImageError::NotFound(spec.to_owned())),
        [one] => Ok(one),
        many => Err(ImageError::Ambiguous {
            spec: spec.to_owned(),
            keys: many.iter().map(|r| r.key.clone()).collect(),
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

    #[test]
    fn keys() {
        assert_eq!(
            key(Some("busybox"), Some("sha256:ab"), None).unwrap(),
            "busybox@sha256:ab"
        );
        assert_eq!(
            key(Some("b@sha256:cd"), Some("sha256:ab"), None).unwrap(),
            "b@sha256:cd"
        );
        assert_eq!(key(Some("busybox"), None, Some("x")).unwrap(), "busybox");
        assert_eq!(key(None, Some("sha256:ab"), Some("web")).unwrap(), "web");
        assert_eq!(key(None, None, None), None);
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
        let mut row = ImageRow::new("i".into(), "i".into(), None, Profile::default(), 10);
        assert!(row.add_run(&profile(&["read", "mkdir"]), 10));
        assert!(row.add_run(&profile(&["read", "chmod"]), 20));
        assert!(!row.add_run(&profile(&["read"]), 30));
        assert!(!row.add_run(&profile(&["chmod"]), 40));
        assert_eq!(row.runs, 4);
        assert_eq!(row.last_new, 20);
        assert_eq!(row.runs_since_last_new, 2);
        assert_eq!(row.last_seen, 40);
        assert_eq!(syscalls(&row.profile), 3);
        assert!(row.add_run(&profile(&["symlink"]), 50));
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
        let mut row = ImageRow::new("i".into(), "i".into(), None, Profile::default(), 0);
        row.add_run(&profile(&["read"]), 0);
        row.add_run(&profile(&["read"]), 10);
        assert!(!row.ready(&rule, 1000), "two runs are too few");
        row.add_run(&profile(&["read"]), 20);
        assert!(row.ready(&rule, 100));
        assert!(!row.ready(&rule, 99), "too recent a new syscall");
        row.add_run(&profile(&["write"]), 200);
        assert!(!row.ready(&rule, 10_000), "a new syscall in the last runs");
        row.add_run(&profile(&["read"]), 210);
        row.add_run(&profile(&["read"]), 220);
        assert!(row.ready(&rule, 300));
    }

    #[test]
    fn finds_rows() {
        let row = |key: &str, image: &str, id: Option<&str>| {
            ImageRow::new(
                key.into(),
                image.into(),
                id.map(Into::into),
                Profile::default(),
                0,
            )
        };
        let rows = vec![
            row("a@sha256:1111aa", "a", Some("sha256:1111aa")),
            row("a@sha256:2222bb", "a", Some("sha256:2222bb")),
            row("b@sha256:3333cc", "b", Some("sha256:3333cc")),
            row("web", "web", None),
        ];
        assert_eq!(find(&rows, "b").unwrap().key, "b@sha256:3333cc");
        assert_eq!(find(&rows, "a@sha256:2222bb").unwrap().image, "a");
        assert!(matches!(
            find(&rows, "a"),
            Err(ImageError::Ambiguous { .. })
        ));
        assert_eq!(find(&rows, "1111").unwrap().key, "a@sha256:1111aa");
        assert_eq!(find(&rows, "web").unwrap().key, "web");
        assert!(matches!(find(&rows, "zz"), Err(ImageError::NotFound(_))));
    }
}
