//! The seccomp profile model (docker/moby JSON format, which podman, CRI-O and
//! containerd also read), built from recorded syscall sets, merged, and
//! written atomically. Other formats are written by [`crate::format`].

use std::{
    collections::{BTreeMap, BTreeSet},
    fs, io,
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

impl From<crate::atomic_file::WriteError> for ProfileError {
    fn from(e: crate::atomic_file::WriteError) -> Self {
        use crate::atomic_file::WriteError;
        match e {
            WriteError::Io { path, source } => Self::Write { path, source },
            WriteError::NoFileName { path } => Self::UnsafePath {
                path,
                reason: "it has no file name",
            },
        }
    }
}

/// Writes a profile's text (in any format) to `path` atomically
/// ([`crate::atomic_file::write`]).
pub fn write(path: &Path, text: &str) -> Result<(), ProfileError> {
    Ok(crate::atomic_file::write(path, text.as_bytes())?)
}

/// The actions of a rule or the default action.
pub const ACT_ALLOW: &str = "SCMP_ACT_ALLOW";
pub const ACT_ERRNO: &str = "SCMP_ACT_ERRNO";
pub const ACT_LOG: &str = "SCMP_ACT_LOG";
pub const ACT_KILL_PROCESS: &str = "SCMP_ACT_KILL_PROCESS";
pub const ACT_KILL_THREAD: &str = "SCMP_ACT_KILL_THREAD";
pub const ACT_KILL: &str = "SCMP_ACT_KILL";
pub const ACT_TRAP: &str = "SCMP_ACT_TRAP";
pub const ACT_TRACE: &str = "SCMP_ACT_TRACE";
pub const ACT_NOTIFY: &str = "SCMP_ACT_NOTIFY";

/// Every action libseccomp (and so runc, crun, podman and docker) knows.
pub const ACTIONS: &[&str] = &[
    ACT_KILL,
    ACT_KILL_PROCESS,
    ACT_KILL_THREAD,
    ACT_TRAP,
    ACT_ERRNO,
    ACT_TRACE,
    ACT_ALLOW,
    ACT_LOG,
    ACT_NOTIFY,
];

/// Every argument comparison operator.
pub const OPS: &[&str] = &[
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

/// The architecture names of `architectures` and `archMap` (libseccomp's).
pub const SCMP_ARCHES: &[&str] = &[
    "SCMP_ARCH_NATIVE",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
];

/// The architecture names of a rule's `includes.arches` / `excludes.arches`.
///
/// Docker, podman and CRI-O compare these with the *host's* architecture as
/// libseccomp-golang names it (`amd64`, `arm64`, ...), not with
/// `SCMP_ARCH_*` names: a rule with `includes.arches: ["SCMP_ARCH_X86"]` is
/// never applied. A rule cannot be limited to one ABI of a filter; every rule
/// applies to every architecture of the filter where its names exist.
pub const FILTER_ARCHES: &[&str] = &[
    "x86",
    "amd64",
    "x32",
    "arm",
    "arm64",
    "mips",
    "mips64",
    "mips64n32",
    "mipsel",
    "mipsel64",
    "mipsel64n32",
    "ppc",
    "ppc64",
    "ppc64le",
    "s390",
    "s390x",
    "parisc",
    "parisc64",
    "riscv64",
    "loong64",
    "m68k",
    "sh",
    "sheb",
];

/// The host's architecture in the naming of [`FILTER_ARCHES`].
pub const fn host_filter_arch() -> &'static str {
    Abi::native().filter_arch()
}

/// The `--default-action` of generated profiles: what happens to a syscall
/// that was not recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DefaultAction {
    /// Fail with an errno (EPERM unless told otherwise).
    #[default]
    Errno,
    /// Allow, but log (audit mode: find what a profile misses).
    Log,
    /// Kill the whole process.
    KillProcess,
    /// Send SIGSYS.
    Trap,
}

impl DefaultAction {
    /// The libseccomp action name.
    pub const fn action(self) -> &'static str {
        match self {
            Self::Errno => ACT_ERRNO,
            Self::Log => ACT_LOG,
            Self::KillProcess => ACT_KILL_PROCESS,
            Self::Trap => ACT_TRAP,
        }
    }
}

/// EPERM, the errno of [`DefaultAction::Errno`] unless told otherwise.
pub const EPERM: u32 = 1;

/// The number of errno `name` (e.g. `EPERM`), from the syscalls crate's table.
pub fn errno_number(name: &str) -> Option<u32> {
    (1..4096)
        .find(|n| syscalls::Errno::new(*n).name() == Some(name))
        .and_then(|n| u32::try_from(n).ok())
}

/// Reads `null` as the default value: Go writes nil slices and pointers as
/// `null` (e.g. `"args": null` in containers/common's profile).
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A seccomp profile in the docker/moby JSON format. Unknown fields are
/// kept, so that a profile read and written again loses nothing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// containers/common's alternative to `defaultErrnoRet`: an errno name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub architectures: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub arch_map: Vec<ArchMap>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub flags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_metadata: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub syscalls: Vec<SyscallRule>,
    /// Fields this model does not know, kept as they are.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// An `archMap` entry: an architecture and its sub-architectures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub sub_architectures: Vec<String>,
}

/// One rule: the names it covers, its action and its conditions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyscallRule {
    /// The deprecated single-name form; kept as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub names: Vec<String>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// containers/common's alternative to `errnoRet`: an errno name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub args: Vec<ArgRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Filter::is_empty"
    )]
    pub includes: Filter,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Filter::is_empty"
    )]
    pub excludes: Filter,
    /// Fields this model does not know, kept as they are.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl SyscallRule {
    /// `name` and `names` together.
    pub fn all_names(&self) -> impl Iterator<Item = &str> {
        self.name
            .iter()
            .chain(self.names.iter())
            .map(String::as_str)
    }

    /// An ALLOW rule without conditions.
    pub fn allow(names: impl IntoIterator<Item = String>) -> Self {
        Self {
            names: names.into_iter().collect(),
            action: ACT_ALLOW.to_owned(),
            ..Self::default()
        }
    }

    /// The action and conditions of the rule: rules with equal keys can
    /// share one rule for their names.
    fn conditions_key(&self) -> ConditionsKey {
        (
            self.action.clone(),
            self.errno_ret,
            self.errno.clone(),
            sorted_args(&self.args),
            self.includes.normalized(),
            self.excludes.normalized(),
        )
    }

    /// Whether the rule applies always: no argument conditions, no filters.
    pub fn is_unconditional(&self) -> bool {
        self.args.is_empty() && self.includes.is_empty() && self.excludes.is_empty()
    }
}

type ConditionsKey = (
    String,
    Option<u32>,
    Option<String>,
    Vec<ArgRule>,
    Filter,
    Filter,
);

fn sorted_args(args: &[ArgRule]) -> Vec<ArgRule> {
    let mut v = args.to_vec();
    v.sort();
    v.dedup();
    v
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub arches: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub caps: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.arches.is_empty() && self.caps.is_empty() && self.min_kernel.is_none()
    }

    fn normalized(&self) -> Self {
        let mut f = self.clone();
        f.arches.sort();
        f.arches.dedup();
        f.caps.sort();
        f.caps.dedup();
        f
    }
}

/// What was recorded, by ABI: the input of [`Profile::from_recorded`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// Syscall names by ABI.
    pub syscalls: BTreeMap<Abi, BTreeSet<String>>,
    /// With argument recording: for a native syscall, the conditions that
    /// together cover every call seen (one rule each). A syscall without an
    /// entry is allowed unconditionally.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, Vec<ArgRule>>,
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

/// What runc's init (the Go runtime) may call after it loaded the seccomp
/// filter and before the entrypoint's execve, whether or not one recording
/// saw it: profiles/runtime-runc.json.
pub fn runc_floor() -> &'static [String] {
    static FLOOR: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    FLOOR.get_or_init(|| {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../profiles/runtime-runc.json"))
                .unwrap_or_default();
        v["syscalls"][0]["names"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    })
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
        if set.flags & recorder_common::FLAG_RUNTIME_RUNC != 0 {
            // runc's init is a Go program: after loading the filter its
            // runtime may preempt (tgkill, rt_sigreturn), yield or grow its
            // heap at any moment, so one recording can miss what the next
            // start needs. See profiles/runtime-runc.json.
            rec.add(Abi::native(), runc_floor().iter().map(String::as_str));
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
        let native = |r: &Self, name: &str| {
            r.syscalls
                .get(&Abi::native())
                .is_some_and(|s| s.contains(name))
        };
        let mut args = BTreeMap::new();
        for name in self.args.keys().chain(other.args.keys()) {
            let (a, b) = (self.args.get(name), other.args.get(name));
            if (a.is_none() && native(self, name)) || (b.is_none() && native(other, name)) {
                // One side allows it unconditionally.
                continue;
            }
            let mut rules: Vec<ArgRule> = a.into_iter().chain(b).flatten().cloned().collect();
            rules.sort();
            rules.dedup();
            args.insert(name.clone(), rules);
        }
        self.args = args;
        for (abi, names) in &other.syscalls {
            self.syscalls
                .entry(*abi)
                .or_default()
                .extend(names.iter().cloned());
        }
    }

    /// Adds the argument values the kernel recorded. Values that did not
    /// fit leave their syscall unconditional.
    pub fn add_args(&mut self, set: &recorder_common::ArgSet) {
        use recorder_common::{NS_FLAGS, OVERFLOW_PERSONALITY, OVERFLOW_SOCKET};
        let eq = |value: u64| ArgRule {
            index: 0,
            value,
            value_two: 0,
            op: "SCMP_CMP_EQ".to_owned(),
        };
        let ns_mask: u64 = NS_FLAGS.iter().fold(0, |m, f| m | f);
        let ns_rules = |bits: &[u64; 2]| -> Vec<ArgRule> {
            (0u64..128)
                .filter(|c| bits[(c / 64) as usize] & (1 << (c % 64)) != 0)
                .map(|c| ArgRule {
                    index: 0,
                    value: ns_mask,
                    value_two: NS_FLAGS
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| c & (1 << j) != 0)
                        .fold(0, |m, (_, f)| m | f),
                    op: "SCMP_CMP_MASKED_EQ".to_owned(),
                })
                .collect()
        };
        let mut found: Vec<(&str, Vec<ArgRule>)> = Vec::new();
        if set.overflow & OVERFLOW_SOCKET == 0 {
            found.push((
                "socket",
                (0u64..64)
                    .filter(|d| set.socket_domains & (1 << d) != 0)
                    .map(eq)
                    .collect(),
            ));
        }
        found.push(("clone", ns_rules(&set.clone_ns)));
        found.push(("unshare", ns_rules(&set.unshare_ns)));
        if set.overflow & OVERFLOW_PERSONALITY == 0 {
            let len = (set.personality_len as usize).min(set.personality.len());
            found.push((
                "personality",
                set.personality[..len]
                    .iter()
                    .map(|p| eq(u64::from(*p)))
                    .collect(),
            ));
        }
        for (name, mut rules) in found {
            if rules.is_empty() {
                continue;
            }
            let entry = self.args.entry(name.to_owned()).or_default();
            entry.append(&mut rules);
            entry.sort();
            entry.dedup();
        }
    }
}

impl Profile {
    /// The least-privilege profile for what was recorded: everything not
    /// recorded fails with EPERM; one ALLOW rule with the native ABI's sorted
    /// names, and one per other ABI with the names recorded from processes of
    /// that ABI.
    ///
    /// The docker format cannot limit a rule to one ABI of the filter (see
    /// [`FILTER_ARCHES`]): libseccomp adds each name to every architecture
    /// of the filter that has a syscall of that name. So the other ABIs'
    /// rules are limited to hosts of the native architecture (where they were
    /// recorded), and a name such as `read` recorded from an i386 process is
    /// also allowed for x86_64 processes. Names that only i386 has
    /// (`getuid32`, `socketcall`, ...) stay i386-only.
    pub fn from_recorded(recorded: &Recorded) -> Self {
        let mut syscalls = Vec::new();
        for (abi, names) in &recorded.syscalls {
            if names.is_empty() {
                continue;
            }
            let mut rule = SyscallRule::allow(names.iter().cloned());
            if *abi != Abi::native() {
                rule.includes.arches = vec![host_filter_arch().to_owned()];
                rule.comment = Some(format!(
                    "recorded from {abi} processes; applies to every architecture of the filter that has these names"
                ));
            }
            syscalls.push(rule);
        }
        // With argument recording, a native syscall whose arguments were
        // seen is allowed only with those values.
        if let Some(native) = syscalls
            .iter_mut()
            .find(|r| r.includes.is_empty() && r.comment.is_none())
        {
            let mut conditional = Vec::new();
            native.names.retain(|name| match recorded.args.get(name) {
                Some(rules) if !rules.is_empty() => {
                    conditional.extend(rules.iter().map(|arg| SyscallRule {
                        names: vec![name.clone()],
                        action: ACT_ALLOW.to_owned(),
                        args: vec![arg.clone()],
                        ..SyscallRule::default()
                    }));
                    false
                }
                _ => true,
            });
            syscalls.extend(conditional);
        }
        if syscalls.is_empty() {
            syscalls.push(SyscallRule::allow(Vec::new()));
        }
        Self {
            default_action: ACT_ERRNO.to_owned(),
            default_errno_ret: Some(EPERM),
            architectures: Abi::host_arches()
                .iter()
                .map(|a| a.scmp_arch().to_owned())
                .collect(),
            syscalls,
            ..Self::default()
        }
    }

    /// Sets the default action; `errno_ret` applies to
    /// [`DefaultAction::Errno`] only (EPERM when `None`).
    pub fn set_default_action(&mut self, action: DefaultAction, errno_ret: Option<u32>) {
        self.default_action = action.action().to_owned();
        self.default_errno_ret = match action {
            DefaultAction::Errno => Some(errno_ret.unwrap_or(EPERM)),
            _ => None,
        };
    }

    /// Parses a profile, reporting the line and column of an error.
    pub fn from_json(path: &Path, text: &str) -> Result<Self, ProfileError> {
        serde_json::from_str(text).map_err(|e| {
            let message = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            ProfileError::Parse {
                path: path.to_owned(),
                line: e.line(),
                column: e.column(),
                message: message.strip_suffix(&suffix).unwrap_or(&message).to_owned(),
            }
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

    /// The ABIs the profile's filter covers: `architectures`, or every
    /// `archMap` entry with its sub-architectures, or (neither set) the
    /// host's native ABI, which is what libseccomp then uses. Names as given.
    pub fn arches(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let listed = self.architectures.iter().chain(
            self.arch_map
                .iter()
                .flat_map(|m| std::iter::once(&m.architecture).chain(&m.sub_architectures)),
        );
        for a in listed {
            let a = if a == "SCMP_ARCH_NATIVE" {
                Abi::native().scmp_arch()
            } else {
                a.as_str()
            };
            if !out.iter().any(|o| o == a) {
                out.push(a.to_owned());
            }
        }
        if out.is_empty() {
            out.push(Abi::native().scmp_arch().to_owned());
        }
        out
    }

    /// All names allowed unconditionally by some rule that applies on this
    /// host, for syscalls of `abi` (a name that `abi`'s table does not have
    /// is not counted).
    pub fn allowed_names(&self, abi: Abi) -> BTreeSet<&str> {
        let host = host_filter_arch();
        self.syscalls
            .iter()
            .filter(|r| r.action == ACT_ALLOW && r.args.is_empty())
            .filter(|r| r.includes.arches.is_empty() || r.includes.arches.iter().any(|a| a == host))
            .filter(|r| !r.excludes.arches.iter().any(|a| a == host))
            .flat_map(SyscallRule::all_names)
            .filter(|n| abi.number(n).is_some())
            .collect()
    }

    /// Merges `other` into `self` (a union): rules with the same action and
    /// conditions share one rule, identical argument rules appear once, and
    /// a name that a rule allows unconditionally is dropped from rules that
    /// allow it only under conditions. `self`'s default action, flags and
    /// listener win; what differs in `other` is returned as notes.
    pub fn merge(&mut self, other: &Self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.default_action != other.default_action
            || self.default_errno_ret != other.default_errno_ret
        {
            notes.push(format!(
                "default action {} of the merged profile ignored; keeping {}",
                other.default_action, self.default_action
            ));
        }
        if self.listener_path.is_none() {
            self.listener_path.clone_from(&other.listener_path);
            self.listener_metadata.clone_from(&other.listener_metadata);
        } else if other.listener_path.is_some() && other.listener_path != self.listener_path {
            notes.push("listenerPath of the merged profile ignored".to_owned());
        }
        for flag in &other.flags {
            if !self.flags.contains(flag) {
                self.flags.push(flag.clone());
            }
        }
        if self.arch_map.is_empty() && other.arch_map.is_empty() {
            for arch in &other.architectures {
                if !self.architectures.contains(arch) {
                    self.architectures.push(arch.clone());
                }
            }
        } else {
            // One of them uses archMap: the union is an archMap.
            let mut map = std::mem::take(&mut self.arch_map);
            let singles = std::mem::take(&mut self.architectures)
                .into_iter()
                .chain(other.architectures.iter().cloned())
                .map(|architecture| ArchMap {
                    architecture,
                    sub_architectures: Vec::new(),
                });
            for entry in other.arch_map.iter().cloned().chain(singles) {
                let covered = map.iter().any(|m| {
                    m.architecture == entry.architecture
                        || m.sub_architectures.contains(&entry.architecture)
                });
                match map
                    .iter_mut()
                    .find(|m| m.architecture == entry.architecture)
                {
                    Some(m) => {
                        for s in entry.sub_architectures {
                            if !m.sub_architectures.contains(&s) {
                                m.sub_architectures.push(s);
                            }
                        }
                    }
                    None if covered && entry.sub_architectures.is_empty() => {}
                    None => map.push(entry),
                }
            }
            self.arch_map = map;
        }
        for (k, v) in &other.extra {
            self.extra.entry(k.clone()).or_insert_with(|| v.clone());
        }
        self.syscalls.extend(other.syscalls.iter().cloned());
        self.normalize();
        notes
    }

    /// Puts the rules in canonical form: the deprecated `name` folded into
    /// `names`; rules with the same action and conditions joined (first
    /// occurrence's place, comment and unknown fields); names sorted and
    /// unique; a name dropped from a rule when a rule with the same action
    /// allows it unconditionally (or with the same filters and no argument
    /// conditions); rules left without names removed.
    pub fn normalize(&mut self) {
        // Linear in the rules and names (a base profile may have thousands
        // of rules, and the daemon merges it on the control path).
        let mut rules: Vec<SyscallRule> = Vec::new();
        let mut by_conditions: std::collections::HashMap<ConditionsKey, usize> =
            std::collections::HashMap::new();
        for mut rule in std::mem::take(&mut self.syscalls) {
            if let Some(name) = rule.name.take() {
                rule.names.insert(0, name);
            }
            rule.args = sorted_args(&rule.args);
            let key = rule.conditions_key();
            match by_conditions.get(&key).and_then(|&i| rules.get_mut(i)) {
                Some(r) => {
                    r.names.extend(rule.names);
                    if r.comment.is_none() {
                        r.comment = rule.comment;
                    }
                    for (k, v) in rule.extra {
                        r.extra.entry(k).or_insert(v);
                    }
                }
                None => {
                    by_conditions.insert(key, rules.len());
                    rules.push(rule);
                }
            }
        }
        let was_empty: Vec<bool> = rules.iter().map(|r| r.names.is_empty()).collect();
        for r in &mut rules {
            r.names.sort();
            r.names.dedup();
        }
        // The rules without argument conditions that allow each name, by
        // name, action, errno and filters: a name of rule i is covered by
        // another such rule with i's action and errno and either no
        // filters or i's filters.
        type Cover = (String, String, Option<u32>, Filter, Filter);
        let filters: Vec<(Filter, Filter)> = rules
            .iter()
            .map(|r| (r.includes.normalized(), r.excludes.normalized()))
            .collect();
        let mut covering: std::collections::HashMap<Cover, Vec<usize>> =
            std::collections::HashMap::new();
        for (j, r) in rules.iter().enumerate() {
            if r.args.is_empty() {
                for n in &r.names {
                    let (inc, exc) = filters[j].clone();
                    covering
                        .entry((n.clone(), r.action.clone(), r.errno_ret, inc, exc))
                        .or_default()
                        .push(j);
                }
            }
        }
        for (i, rule) in rules.iter_mut().enumerate() {
            let covered_by = |name: &String| {
                let (inc, exc) = &filters[i];
                let others = |inc: &Filter, exc: &Filter| {
                    let key = (
                        name.clone(),
                        rule.action.clone(),
                        rule.errno_ret,
                        inc.clone(),
                        exc.clone(),
                    );
                    covering
                        .get(&key)
                        .is_some_and(|js| js.iter().any(|&j| j != i))
                };
                others(&Filter::default(), &Filter::default()) || others(inc, exc)
            };
            let kept: Vec<String> = rule
                .names
                .iter()
                .filter(|n| !covered_by(n))
                .cloned()
                .collect();
            rule.names = kept;
        }
        self.syscalls = rules
            .into_iter()
            .zip(was_empty)
            .filter(|(r, was_empty)| *was_empty || !r.names.is_empty())
            .map(|(r, _)| r)
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_floor_is_shipped_and_named() {
        let floor = runc_floor();
        assert!(floor.iter().any(|n| n == "tgkill"), "{floor:?}");
        for n in floor {
            assert!(
                Abi::native().number(n).is_some(),
                "{n} is not a syscall here"
            );
        }
        let mut set = recorder_common::SyscallSet::new(1, recorder_common::PHASE_WORKLOAD);
        set.native[0] = 1; // read
        let (rec, _) = Recorded::from_set(&set);
        assert!(!rec.native().any(|n| n == "tgkill"));
        set.flags = recorder_common::FLAG_MARKER_SEEN | recorder_common::FLAG_RUNTIME_RUNC;
        let (rec, _) = Recorded::from_set(&set);
        assert!(rec.native().any(|n| n == "tgkill"));
    }

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
    fn compat_rule_is_limited_to_the_recording_host() {
        let mut rec = Recorded::default();
        rec.add(Abi::native(), ["read"]);
        rec.add(Abi::compat(), ["socketcall", "write"]);
        let p = Profile::from_recorded(&rec);
        assert_eq!(p.syscalls.len(), 2);
        // Runtimes match includes.arches against the host (amd64, arm64),
        // never against SCMP_ARCH_* names.
        assert_eq!(p.syscalls[1].includes.arches, vec![host_filter_arch()]);
        assert!(FILTER_ARCHES.contains(&host_filter_arch()));
        assert!(p.allowed_names(Abi::compat()).contains("socketcall"));
        #[cfg(target_arch = "x86_64")]
        assert!(!p.allowed_names(Abi::native()).contains("socketcall"));
    }

    #[test]
    fn type_error_in_a_rule_has_its_own_line() {
        let text = "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscalls\": [\n    {\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\",\n     \"args\": [{\"index\": \"zero\", \"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]}\n  ],\n  \"x\": 1\n}\n";
        let err = Profile::from_json(Path::new("r.json"), text).unwrap_err();
        let ProfileError::Parse { line, column, .. } = err else {
            panic!("{err}")
        };
        assert_eq!((line, column), (5, 30), "{err}");
    }

    #[test]
    fn unknown_fields_survive() {
        let text = r#"{"defaultAction":"SCMP_ACT_ERRNO","x-owner":"ops","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","x-why":"tests"}]}"#;
        let p = Profile::from_json(Path::new("u.json"), text).unwrap();
        assert_eq!(p.extra["x-owner"], "ops");
        assert_eq!(p.syscalls[0].extra["x-why"], "tests");
        let back: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        let orig: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(back, orig);
    }

    fn rule(names: &[&str], args: &[(u32, u64)]) -> SyscallRule {
        SyscallRule {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            action: ACT_ALLOW.into(),
            args: args
                .iter()
                .map(|(index, value)| ArgRule {
                    index: *index,
                    value: *value,
                    value_two: 0,
                    op: "SCMP_CMP_EQ".into(),
                })
                .collect(),
            ..SyscallRule::default()
        }
    }

    #[test]
    fn merge_dedups_arg_rules_and_unconditional_wins() {
        let mut a = Profile {
            default_action: ACT_ERRNO.into(),
            syscalls: vec![
                rule(&["read"], &[]),
                rule(&["socket"], &[(0, 1)]),
                rule(&["clone"], &[(0, 17)]),
            ],
            ..Profile::default()
        };
        let b = Profile {
            default_action: ACT_ERRNO.into(),
            syscalls: vec![
                rule(&["socket"], &[(0, 1)]),
                rule(&["socket"], &[(0, 2)]),
                rule(&["write", "clone"], &[]),
            ],
            ..Profile::default()
        };
        let notes = a.merge(&b);
        assert!(notes.is_empty(), "{notes:?}");
        let summary: Vec<(Vec<&str>, usize)> = a
            .syscalls
            .iter()
            .map(|r| (r.names.iter().map(String::as_str).collect(), r.args.len()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (vec!["clone", "read", "write"], 0),
                (vec!["socket"], 1),
                (vec!["socket"], 1),
            ]
        );
        assert_eq!(a.syscalls[1].args[0].value, 1);
        assert_eq!(a.syscalls[2].args[0].value, 2);
    }

    #[test]
    fn recorded_args_become_conditions() {
        let mut rec = Recorded::default();
        rec.add(Abi::native(), ["read", "socket", "clone", "unshare"]);
        let mut set = recorder_common::ArgSet::EMPTY;
        set.socket_domains = 1 << 1 | 1 << 10;
        set.clone_ns[0] = 1; // no namespace flags
        rec.add_args(&set);
        let p = Profile::from_recorded(&rec);
        // unshare had no values recorded: it stays unconditional.
        assert_eq!(p.syscalls[0].names, vec!["read", "unshare"]);
        let socket: Vec<u64> = p
            .syscalls
            .iter()
            .filter(|r| r.names == ["socket"])
            .map(|r| r.args[0].value)
            .collect();
        assert_eq!(socket, vec![1, 10]);
        let clone = p.syscalls.iter().find(|r| r.names == ["clone"]).unwrap();
        assert_eq!(clone.args[0].op, "SCMP_CMP_MASKED_EQ");
        assert_eq!(clone.args[0].value_two, 0);
        // Overflowed values leave the syscall unconditional.
        let mut rec2 = Recorded::default();
        rec2.add(Abi::native(), ["socket"]);
        set.overflow = recorder_common::OVERFLOW_SOCKET;
        rec2.add_args(&set);
        assert!(!rec2.args.contains_key("socket"));
        rec.extend(&rec2);
        assert!(!rec.args.contains_key("socket"), "unconditional wins");
    }

    #[test]
    fn go_nulls_read_as_empty() {
        // containers/common writes nil slices as null.
        let text = r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrno":"ENOSYS","architectures":null,
            "syscalls":[{"names":["socket"],"action":"SCMP_ACT_ALLOW","args":null,"comment":"",
            "includes":{"caps":null},"excludes":null,"errno":"EPERM"}]}"#;
        let p = Profile::from_json(Path::new("n.json"), text).unwrap();
        assert!(p.syscalls[0].args.is_empty() && p.architectures.is_empty());
        assert_eq!(p.syscalls[0].errno.as_deref(), Some("EPERM"));
        assert_eq!(errno_number("EPERM"), Some(1));
        assert_eq!(errno_number("ENOSYS"), Some(38));
        assert_eq!(errno_number("EWHATEVER"), None);
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
}
