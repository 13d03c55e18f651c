//! What the kernel recorded, named: [`Recorded`] (syscall names per ABI and
//! argument conditions), and the least-privilege [`Profile`] it makes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{ACT_ALLOW, ACT_ERRNO, ArgRule, EPERM, Profile, SyscallRule, host_filter_arch};
use crate::syscalls::Abi;

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
            serde_json::from_str(include_str!("../../../profiles/runtime-runc.json"))
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

/// What runc's init may call between the earliest point it loads a
/// container's seccomp filter (before dropping privileges, when
/// `noNewPrivileges` is off) and the workload's execve: closing inherited
/// descriptors (`/proc/self/fd`), setting the user, groups and
/// capabilities, the working directory, the exec FIFO and the lookup of the
/// command. Under a filter these land in the profile by themselves; when no
/// filter was loaded they were made in the runtime-init phase, and those of
/// them the init bitmap holds are added back, so that the profile lets runc
/// start the container under it. Measured here with docker (default,
/// `--user 1000`, `no-new-privileges`) and `ctr run`: the names a filtered
/// run recorded beyond an unfiltered one, and `write` (runc's init writes
/// "0" to the exec FIFO after the load; the workloads measured wrote
/// themselves, so it did not show: without it `docker run` of a workload
/// that writes nothing fails "cannot start an already running container").
pub const RUNC_AFTER_FILTER: &[&str] = &[
    "capget",
    "capset",
    "chdir",
    "close",
    "close_range",
    "epoll_ctl",
    "faccessat",
    "faccessat2",
    "fchown",
    "fcntl",
    "fstat",
    "fstatfs",
    "getdents64",
    "getgid",
    "newfstatat",
    "openat",
    "read",
    "setgid",
    "setgroups",
    "setresgid",
    "setresuid",
    "setuid",
    "write",
];

impl Recorded {
    /// Names what the kernel recorded in `set`. The runtime-init bitmap is
    /// included only when the runtime's seccomp filter load was never seen
    /// (so nothing is dropped for recordings that have no such marker);
    /// when the runtime's init ended at the workload's exec instead
    /// (runc, no filter), only what runc calls after a filter load
    /// ([`RUNC_AFTER_FILTER`]) is taken from it.
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
            if set.flags & recorder_common::FLAG_INIT_ENDED_BY_EXEC != 0 {
                let (init, _) = crate::syscalls::names(Abi::native(), &set.init);
                rec.add(
                    Abi::native(),
                    init.into_iter().filter(|n| RUNC_AFTER_FILTER.contains(n)),
                );
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

    /// Names the union of a recording's sets (its cgroup's and its
    /// sub-cgroups'), each as [`Recorded::from_set`] does. Returns the
    /// numbers that have no name, per ABI, sorted and unique, beside.
    pub fn from_sets(sets: &[recorder_common::SyscallSet]) -> (Self, Vec<(Abi, u32)>) {
        let mut all = Self::default();
        let mut unknown = Vec::new();
        for s in sets {
            let (r, u) = Self::from_set(s);
            all.extend(&r);
            unknown.extend(u);
        }
        unknown.sort_unstable();
        unknown.dedup();
        (all, unknown)
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
    /// [`FILTER_ARCHES`](super::FILTER_ARCHES)): libseccomp adds each name to
    /// every architecture of the filter that has a syscall of that name. So
    /// the other ABIs' rules are limited to hosts of the native architecture
    /// (where they were recorded), and a name such as `read` recorded from an
    /// i386 process is also allowed for x86_64 processes. Names that only i386 has
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::FILTER_ARCHES;

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
    fn an_init_ended_at_the_exec_keeps_only_what_runc_calls_after_a_filter_load() {
        use recorder_common::{
            FLAG_INIT_ENDED_BY_EXEC, FLAG_MARKER_SEEN, FLAG_RUNTIME_RUNC, PHASE_WORKLOAD,
            SyscallSet,
        };
        let bit = |set: &mut [u64; recorder_common::SET_WORDS], name: &str| {
            let nr = Abi::native().number(name).unwrap();
            set[nr as usize / 64] |= 1 << (nr % 64);
        };
        for n in RUNC_AFTER_FILTER {
            assert!(Abi::native().number(n).is_some(), "{n}");
        }
        let mut set = SyscallSet::new(1, PHASE_WORKLOAD);
        bit(&mut set.native, "mkdir");
        for n in [
            "mount",
            "pivot_root",
            "sethostname",
            "capset",
            "openat",
            "write",
        ] {
            bit(&mut set.init, n);
        }
        set.flags = FLAG_MARKER_SEEN | FLAG_INIT_ENDED_BY_EXEC | FLAG_RUNTIME_RUNC;
        let (rec, _) = Recorded::from_set(&set);
        let names: Vec<&str> = rec.native().collect();
        // write: the exec FIFO, which a workload that writes nothing
        // does not bring in by itself.
        for n in ["mkdir", "capset", "openat", "write", "tgkill"] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
        for n in ["mount", "pivot_root", "sethostname"] {
            assert!(!names.contains(&n), "{n} in {names:?}");
        }
        // Another runtime (not named): the workload's alone.
        set.flags = FLAG_MARKER_SEEN | FLAG_INIT_ENDED_BY_EXEC;
        let (rec, _) = Recorded::from_set(&set);
        assert_eq!(rec.native().collect::<Vec<_>>(), ["mkdir"]);
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
}
