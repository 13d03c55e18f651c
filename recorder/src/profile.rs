//! The seccomp profile model (docker/moby JSON format, which podman, CRI-O and
//! containerd also read), built from recorded syscall sets and written
//! atomically.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::{self, Write as _},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::syscalls::Abi;

/// Errors of reading and writing profiles.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read profile {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("malformed profile {path}: line {line}, column {column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("cannot write profile {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("refusing to write profile to {path}: {reason}")]
    UnsafePath { path: PathBuf, reason: &'static str },
}

/// The action of a rule or the default action.
pub const ACT_ALLOW: &str = "SCMP_ACT_ALLOW";
pub const ACT_ERRNO: &str = "SCMP_ACT_ERRNO";

/// A seccomp profile in the docker/moby JSON format. Unknown fields are
/// kept, so that a profile read and written again loses nothing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arch_map: Vec<ArchMap>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_metadata: Option<String>,
    #[serde(default)]
    pub syscalls: Vec<SyscallRule>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// An `archMap` entry: an architecture and its sub-architectures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default)]
    pub sub_architectures: Vec<String>,
}

/// One rule: the names it covers, its action and its conditions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyscallRule {
    #[serde(default)]
    pub names: Vec<String>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<ArgRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Filter::is_empty")]
    pub includes: Filter,
    #[serde(default, skip_serializing_if = "Filter::is_empty")]
    pub excludes: Filter,
}

/// A condition on one syscall argument.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArgRule {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

/// `includes` / `excludes` of a rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arches: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.arches.is_empty() && self.caps.is_empty() && self.min_kernel.is_none()
    }
}

/// What was recorded, by ABI: the input of [`Profile::from_recorded`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// Syscall names by ABI.
    pub syscalls: BTreeMap<Abi, BTreeSet<String>>,
}

impl Recorded {
    /// The number of distinct syscalls, over all ABIs.
    pub fn len(&self) -> usize {
        self.syscalls.values().map(BTreeSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds names for `abi`.
    pub fn add<'a>(&mut self, abi: Abi, names: impl IntoIterator<Item = &'a str>) {
        let set = self.syscalls.entry(abi).or_default();
        set.extend(names.into_iter().map(str::to_owned));
    }

    /// The native ABI's names, sorted.
    pub fn native(&self) -> impl Iterator<Item = &str> {
        self.syscalls
            .get(&Abi::native())
            .into_iter()
            .flatten()
            .map(String::as_str)
    }
}

impl Recorded {
    /// Names what the kernel recorded in `set`. The runtime-init bitmap is
    /// included only when the runtime's seccomp filter load was never seen
    /// (so nothing is dropped for recordings that have no such marker).
    /// Returns the numbers that have no name, per ABI, beside.
    pub fn from_set(set: &recorder_common::SyscallSet) -> (Self, Vec<(Abi, u32)>) {
        let mut rec = Self::default();
        let mut unknown = Vec::new();
        let mut native = set.native;
        if set.flags & recorder_common::FLAG_MARKER_SEEN == 0 {
            for (w, i) in native.iter_mut().zip(set.init.iter()) {
                *w |= i;
            }
        }
        let x32 = if cfg!(target_arch = "x86_64") {
            Some((Abi::X32, &set.x32))
        } else {
            None
        };
        for (abi, bitmap) in [(Abi::native(), &native), (Abi::compat(), &set.compat)]
            .into_iter()
            .chain(x32)
        {
            let (named, missing) = crate::syscalls::names(abi, bitmap);
            if !named.is_empty() {
                rec.add(abi, named);
            }
            unknown.extend(missing.into_iter().map(|nr| (abi, nr)));
        }
        (rec, unknown)
    }

    /// Adds everything in `other`.
    pub fn extend(&mut self, other: &Self) {
        for (abi, names) in &other.syscalls {
            self.syscalls
                .entry(*abi)
                .or_default()
                .extend(names.iter().cloned());
        }
    }
}

impl Profile {
    /// The least-privilege profile for what was recorded: everything not
    /// recorded fails with EPERM; one ALLOW rule with the native ABI's sorted
    /// names, and one per other ABI limited to that ABI.
    pub fn from_recorded(recorded: &Recorded) -> Self {
        let mut syscalls = Vec::new();
        for (abi, names) in &recorded.syscalls {
            if names.is_empty() {
                continue;
            }
            let mut rule = SyscallRule {
                names: names.iter().cloned().collect(),
                action: ACT_ALLOW.to_owned(),
                ..SyscallRule::default()
            };
            if *abi != Abi::native() {
                rule.includes.arches = vec![abi.scmp_arch().to_owned()];
                rule.comment = Some(format!("recorded from {abi} processes"));
            }
            syscalls.push(rule);
        }
        if syscalls.is_empty() {
            syscalls.push(SyscallRule {
                names: Vec::new(),
                action: ACT_ALLOW.to_owned(),
                ..SyscallRule::default()
            });
        }
        Self {
            default_action: ACT_ERRNO.to_owned(),
            default_errno_ret: Some(1),
            architectures: Abi::host_arches()
                .iter()
                .map(|a| a.scmp_arch().to_owned())
                .collect(),
            syscalls,
            ..Self::default()
        }
    }

    /// Parses a profile, reporting the line and column of an error.
    pub fn from_json(path: &Path, text: &str) -> Result<Self, ProfileError> {
        serde_json::from_str(text).map_err(|e| ProfileError::Parse {
            path: path.to_owned(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })
    }

    /// Reads a profile file.
    pub fn read(path: &Path) -> Result<Self, ProfileError> {
        let text = fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(path, &text)
    }

    /// The profile as pretty-printed JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        // Serialising a tree of strings, numbers and maps cannot fail.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// All names allowed unconditionally by some rule, for `abi` (rules
    /// without `includes.arches` apply to every ABI).
    pub fn allowed_names(&self, abi: Abi) -> BTreeSet<&str> {
        self.syscalls
            .iter()
            .filter(|r| r.action == ACT_ALLOW)
            .filter(|r| {
                r.includes.arches.is_empty()
                    || r.includes.arches.iter().any(|a| a == abi.scmp_arch())
            })
            .flat_map(|r| r.names.iter().map(String::as_str))
            .collect()
    }

    /// Merges `other` into `self`: every rule of `other` whose names are not
    /// already allowed in the same way is added.
    pub fn merge(&mut self, other: &Self) {
        for rule in &other.syscalls {
            if let Some(existing) = self.syscalls.iter_mut().find(|r| {
                r.action == rule.action
                    && r.args == rule.args
                    && r.includes == rule.includes
                    && r.excludes == rule.excludes
                    && r.errno_ret == rule.errno_ret
            }) {
                for name in &rule.names {
                    if !existing.names.contains(name) {
                        existing.names.push(name.clone());
                    }
                }
                existing.names.sort();
            } else {
                self.syscalls.push(rule.clone());
            }
        }
        for arch in &other.architectures {
            if !self.architectures.contains(arch) {
                self.architectures.push(arch.clone());
            }
        }
    }
}

/// Writes `contents` to `path` atomically: a temporary file is created
/// exclusively (O_EXCL, O_NOFOLLOW) in the same directory, synced, and renamed
/// over `path`. A reader sees the old file or the new one, never a part; a
/// symlink planted at `path` is replaced, not followed.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), ProfileError> {
    let err = |source| ProfileError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path.file_name().ok_or(ProfileError::UnsafePath {
        path: path.to_owned(),
        reason: "it has no file name",
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(err)?;
    let result = file
        .write_all(contents)
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(err(e));
    }
    // Make the rename durable too.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_profile_shape() {
        let mut rec = Recorded::default();
        rec.add(Abi::native(), ["write", "read", "exit_group"]);
        let p = Profile::from_recorded(&rec);
        assert_eq!(p.default_action, "SCMP_ACT_ERRNO");
        assert_eq!(p.syscalls.len(), 1);
        assert_eq!(p.syscalls[0].names, vec!["exit_group", "read", "write"]);
        assert_eq!(p.syscalls[0].action, "SCMP_ACT_ALLOW");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            p.architectures,
            vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        );
        let json: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(json["syscalls"][0]["names"][1], "read");
        assert!(json.get("archMap").is_none());
    }

    #[test]
    fn compat_rule_is_limited_to_its_arch() {
        let mut rec = Recorded::default();
        rec.add(Abi::native(), ["read"]);
        rec.add(Abi::compat(), ["socketcall"]);
        let p = Profile::from_recorded(&rec);
        assert_eq!(p.syscalls.len(), 2);
        assert_eq!(
            p.syscalls[1].includes.arches,
            vec![Abi::compat().scmp_arch()]
        );
        assert!(p.allowed_names(Abi::compat()).contains("socketcall"));
        assert!(!p.allowed_names(Abi::native()).contains("socketcall"));
    }

    #[test]
    fn parse_error_has_location() {
        let err =
            Profile::from_json(Path::new("x.json"), "{\n  \"defaultAction\": 3\n}").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("x.json: line 2"), "{msg}");
    }

    #[test]
    fn merge_unions_names() {
        let mut a = Recorded::default();
        a.add(Abi::native(), ["read"]);
        let mut b = Recorded::default();
        b.add(Abi::native(), ["write", "read"]);
        let mut p = Profile::from_recorded(&a);
        p.merge(&Profile::from_recorded(&b));
        assert_eq!(p.syscalls[0].names, vec!["read", "write"]);
    }

    #[test]
    fn atomic_write_replaces_symlink_without_following() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        fs::write(&target, "keep").unwrap();
        let link = dir.path().join("p.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "keep");
        assert_eq!(fs::read_to_string(&link).unwrap(), "new");
        assert!(
            !fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
