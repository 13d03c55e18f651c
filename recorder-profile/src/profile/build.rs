//! The one way a recording becomes a profile: the kernel's sets are named
//! ([`Recorded::from_sets`]), argument values become conditions
//! ([`Recorded::add_args`]), [`Profile::from_recorded`] makes the
//! least-privilege profile, the base profiles are merged into it, and the
//! answers of the recording-time seccomp policy are carried over
//! ([`Policy`]). `recorderctl record`, the OCI hook's detached recorder and recorderd all
//! call [`build`].

use recorder_common::{ArgSet, SyscallSet};

use super::{Policy, Profile, Recorded, carry};
use crate::syscalls::Abi;

/// What one profile is built from. Construct it with `..Inputs::default()`
/// for what a caller does not have, so that new inputs can be added.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inputs<'a> {
    /// The kernel's sets of one recording: its cgroup's and its
    /// sub-cgroups'.
    pub sets: &'a [SyscallSet],
    /// The argument values, when they were recorded.
    pub args: Option<&'a ArgSet>,
    /// Profiles merged into the result, in order (the result's default
    /// action, flags and listener win).
    pub bases: &'a [&'a Profile],
    /// The seccomp policy the workload ran under while recorded; `None`
    /// when the caller has none to give, read as [`Policy::Unknown`].
    pub policy: Option<&'a Policy>,
    /// Bases whose blocks stay blocks: what one of them denies (without
    /// allowing it too) is denied in the result with its answer, even if
    /// the workload called it. The OCI hook's `if:` profile, as
    /// oci-seccomp-bpf-hook has it. (Other bases are a union: a recorded
    /// syscall is allowed.)
    pub blocking: &'a [&'a Profile],
}

/// A built profile and what was learnt on the way.
#[derive(Clone, Debug)]
pub struct Built {
    pub profile: Profile,
    /// The recorded names per ABI (and argument conditions), before the
    /// bases were merged.
    pub recorded: Recorded,
    /// Numbers without a name in the syscall table (so not in the
    /// profile), per ABI, sorted and unique.
    pub unknown: Vec<(Abi, u32)>,
    /// Syscalls whose number was outside every bitmap (e.g. -1), over all
    /// sets.
    pub out_of_range: u64,
    /// What merging the bases ignored ([`Profile::merge`]).
    pub notes: Vec<String>,
    /// How many names got the recording-time policy's answer, or (the
    /// policy unknown) ENOSYS as newer than every allowed syscall.
    pub carried: usize,
}

/// Builds the profile of one recording.
pub fn build(inputs: Inputs<'_>) -> Built {
    let (mut recorded, unknown) = Recorded::from_sets(inputs.sets);
    if let Some(args) = inputs.args {
        recorded.add_args(args);
    }
    let mut profile = Profile::from_recorded(&recorded);
    let mut notes = Vec::new();
    for base in inputs.bases {
        notes.extend(profile.merge(base));
    }
    // The native ABI, and the others where something was recorded.
    let abis: Vec<Abi> = std::iter::once(Abi::native())
        .chain(recorded.syscalls.keys().copied())
        .filter(|abi| Abi::host_arches().contains(abi))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let carried = carry::carry_over(
        &mut profile,
        inputs.policy.unwrap_or(&Policy::Unknown),
        &abis,
    );
    for base in inputs.blocking {
        profile.keep_blocked(base);
    }
    // Whatever the policy: an allowed syscall's newer form answers
    // ENOSYS, so that libc falls back to it (and `check` passes).
    profile.answer_fallbacks();
    let out_of_range = inputs
        .sets
        .iter()
        .fold(0u64, |n, s| n.saturating_add(s.out_of_range));
    Built {
        profile,
        recorded,
        unknown,
        out_of_range,
        notes,
        carried,
    }
}

#[cfg(test)]
mod tests {
    use recorder_common::{
        FLAG_MARKER_SEEN, PHASE_RUNTIME_INIT, PHASE_WORKLOAD, SET_BITS, SET_WORDS,
    };

    use super::*;
    use crate::profile::{ACT_ALLOW, ACT_ERRNO, SyscallRule};

    /// A bitmap with the native syscalls `names` set.
    fn bits(names: &[&str]) -> [u64; SET_WORDS] {
        let mut map = [0; SET_WORDS];
        for n in names {
            let nr = Abi::native().number(n).unwrap() as usize;
            map[nr / 64] |= 1 << (nr % 64);
        }
        map
    }

    /// The first native number without a name.
    fn unnamed() -> u32 {
        (0..SET_BITS as u32)
            .find(|nr| Abi::native().name(*nr).is_none())
            .unwrap()
    }

    fn native_names(p: &Profile) -> Vec<&str> {
        p.syscalls[0].names.iter().map(String::as_str).collect()
    }

    #[test]
    fn unions_the_sets_of_a_recording() {
        let owner = 7;
        let mut root = SyscallSet::new(owner, PHASE_WORKLOAD);
        root.native = bits(&["read", "write"]);
        root.out_of_range = 2;
        // A sub-cgroup made inside the container: owned by the container.
        let mut sub = SyscallSet::new(owner, PHASE_WORKLOAD);
        sub.native = bits(&["write", "openat"]);
        sub.out_of_range = 3;
        let built = build(Inputs {
            sets: &[root, sub],
            ..Inputs::default()
        });
        assert_eq!(native_names(&built.profile), ["openat", "read", "write"]);
        assert_eq!(built.profile.default_action, ACT_ERRNO);
        assert_eq!(built.recorded.len(), 3);
        assert_eq!(built.out_of_range, 5);
        assert!(built.unknown.is_empty() && built.notes.is_empty());
    }

    #[test]
    fn init_bitmap_only_without_the_marker() {
        let mut set = SyscallSet::new(1, PHASE_RUNTIME_INIT);
        set.native = bits(&["read"]);
        set.init = bits(&["mount"]);
        // The runtime's filter load was never seen: nothing is dropped.
        let built = build(Inputs {
            sets: &[set],
            ..Inputs::default()
        });
        assert_eq!(native_names(&built.profile), ["mount", "read"]);
        // It was seen: what the runtime did before it is not the workload's.
        set.flags |= FLAG_MARKER_SEEN;
        let built = build(Inputs {
            sets: &[set],
            ..Inputs::default()
        });
        assert_eq!(native_names(&built.profile), ["read"]);
    }

    #[test]
    fn merges_the_bases_in_order() {
        let mut set = SyscallSet::new(1, PHASE_WORKLOAD);
        set.native = bits(&["read"]);
        let runtime = Profile {
            default_action: ACT_ERRNO.into(),
            default_errno_ret: Some(1),
            syscalls: vec![SyscallRule::allow(["futex".to_owned()])],
            ..Profile::default()
        };
        let logging = Profile {
            default_action: "SCMP_ACT_LOG".into(),
            syscalls: vec![SyscallRule::allow(["write".to_owned()])],
            ..Profile::default()
        };
        let built = build(Inputs {
            sets: &[set],
            bases: &[&runtime, &logging],
            ..Inputs::default()
        });
        assert_eq!(native_names(&built.profile), ["futex", "read", "write"]);
        assert_eq!(built.profile.syscalls[0].action, ACT_ALLOW);
        // The recorded profile's default action wins; the other is a note.
        assert_eq!(built.profile.default_action, ACT_ERRNO);
        assert_eq!(built.notes.len(), 1, "{:?}", built.notes);
        assert!(built.notes[0].contains("SCMP_ACT_LOG"), "{:?}", built.notes);
        // What was recorded is kept apart from the bases.
        assert_eq!(built.recorded.native().collect::<Vec<_>>(), ["read"]);
    }

    #[test]
    fn unknown_numbers_once_each() {
        let nr = unnamed();
        let mut a = SyscallSet::new(1, PHASE_WORKLOAD);
        a.native = bits(&["read"]);
        a.native[nr as usize / 64] |= 1 << (nr % 64);
        let b = a;
        let built = build(Inputs {
            sets: &[a, b],
            ..Inputs::default()
        });
        assert_eq!(built.unknown, [(Abi::native(), nr)]);
        assert_eq!(native_names(&built.profile), ["read"]);
    }

    #[test]
    fn argument_values_become_conditions() {
        let mut set = SyscallSet::new(1, PHASE_WORKLOAD);
        set.native = bits(&["read", "socket"]);
        let mut args = ArgSet::EMPTY;
        args.socket_domains = 1 << 1;
        let built = build(Inputs {
            sets: &[set],
            args: Some(&args),
            ..Inputs::default()
        });
        assert_eq!(native_names(&built.profile), ["read"]);
        let socket = &built.profile.syscalls[1];
        assert_eq!(socket.names, ["socket"]);
        assert_eq!(socket.args[0].value, 1);
    }

    #[test]
    fn carries_the_policys_answers_after_the_bases() {
        use crate::profile::{ENOSYS, EPERM};
        let mut set = SyscallSet::new(1, PHASE_WORKLOAD);
        set.native = bits(&["read", "clone"]);
        // docker's default filter, in short: clone3 answers ENOSYS.
        let docker = Profile {
            default_action: ACT_ERRNO.into(),
            syscalls: vec![
                SyscallRule::allow(["read", "clone", "openat2"].map(str::to_owned)),
                SyscallRule {
                    names: vec!["clone3".into(), "openat2".into()],
                    action: ACT_ERRNO.into(),
                    errno_ret: Some(ENOSYS),
                    ..SyscallRule::default()
                },
            ],
            ..Profile::default()
        };
        let policy = Policy::Filter(Box::new(docker));
        let built = build(Inputs {
            sets: &[set],
            policy: Some(&policy),
            ..Inputs::default()
        });
        assert_eq!(built.carried, 1);
        let p = &built.profile;
        assert_eq!(
            (p.default_action.as_str(), p.default_errno_ret),
            (ACT_ERRNO, Some(EPERM))
        );
        let clone3 = p.syscalls.iter().find(|r| r.names == ["clone3"]).unwrap();
        assert_eq!(
            (clone3.action.as_str(), clone3.errno_ret),
            (ACT_ERRNO, Some(ENOSYS))
        );
        // A base that allows clone3: allowed, nothing carried.
        let base = Profile {
            syscalls: vec![SyscallRule::allow(["clone3".to_owned()])],
            ..Profile::default()
        };
        let built = build(Inputs {
            sets: &[set],
            bases: &[&base],
            policy: Some(&policy),
            ..Inputs::default()
        });
        assert_eq!(built.carried, 0);
        // No filter while recorded: nothing hidden, nothing carried; only
        // the newer form of clone answers ENOSYS, so that libc falls back.
        let built = build(Inputs {
            sets: &[set],
            policy: Some(&Policy::Unconfined),
            ..Inputs::default()
        });
        assert_eq!((built.carried, built.profile.syscalls.len()), (0, 2));
        let last = &built.profile.syscalls[1];
        assert_eq!(
            (last.names.as_slice(), last.errno_ret),
            (&["clone3".to_owned()][..], Some(ENOSYS))
        );
        assert!(crate::profile::check::check(&built.profile).is_empty());
    }

    #[test]
    fn a_blocking_base_keeps_what_it_blocks_blocked() {
        let mut set = SyscallSet::new(1, PHASE_WORKLOAD);
        set.native = bits(&["read", "mkdir", "clone3"]);
        // oci-seccomp-bpf-hook's block-mkdir.json, and an ENOSYS answer.
        let input = Profile {
            default_action: ACT_ERRNO.into(),
            syscalls: vec![
                SyscallRule {
                    names: vec!["mkdir".into()],
                    action: ACT_ERRNO.into(),
                    ..SyscallRule::default()
                },
                SyscallRule {
                    names: vec!["clone3".into()],
                    action: ACT_ERRNO.into(),
                    errno_ret: Some(crate::profile::ENOSYS),
                    ..SyscallRule::default()
                },
            ],
            ..Profile::default()
        };
        let answer = |p: &Profile, name: &str| {
            p.syscalls
                .iter()
                .filter(|r| r.names.iter().any(|n| n == name))
                .map(|r| (r.action.clone(), r.errno_ret))
                .collect::<Vec<_>>()
        };
        // As a plain base: a union, mkdir is allowed.
        let union = build(Inputs {
            sets: &[set],
            bases: &[&input],
            ..Inputs::default()
        });
        assert_eq!(
            answer(&union.profile, "mkdir"),
            [(ACT_ALLOW.to_owned(), None)]
        );
        // Blocking: mkdir stays blocked (EPERM, the input's answer), also
        // for the syscalls of other ABIs; read is allowed.
        let kept = build(Inputs {
            sets: &[set],
            bases: &[&input],
            blocking: &[&input],
            ..Inputs::default()
        });
        let p = &kept.profile;
        assert_eq!(answer(p, "mkdir"), [(ACT_ERRNO.to_owned(), None)]);
        assert!(p.allowed_names(Abi::native()).contains("read"));
        // clone3 was recorded and the input's answer is ENOSYS: the input
        // blocks it too, as the original hook would.
        assert_eq!(
            answer(p, "clone3"),
            [(ACT_ERRNO.to_owned(), Some(crate::profile::ENOSYS))]
        );
    }

    #[test]
    fn unknown_policy_answers_newer_syscalls_enosys() {
        let mut set = SyscallSet::new(1, PHASE_WORKLOAD);
        set.native = bits(&["read", "clone", "openat"]);
        let built = build(Inputs {
            sets: &[set],
            ..Inputs::default()
        });
        let last = built.profile.syscalls.last().unwrap();
        assert_eq!(last.errno_ret, Some(crate::profile::ENOSYS));
        assert!(last.names.iter().any(|n| n == "clone3"));
        assert_eq!(built.carried, last.names.len());
    }
}
