//! What a recording cannot see. seccomp runs before `sys_enter`, so a
//! syscall that the workload's recording-time filter ([`Policy`]) denied
//! never reached the recorder: docker's default filter answers `clone3`
//! with ENOSYS, glibc falls back to `clone`, and only `clone` is recorded.
//! [`carry_over`] gives the profile the answers that filter gave (never its
//! allowances); when the filter is unknown, syscalls newer than every
//! allowed one answer ENOSYS, as runc answers syscalls it does not know.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{
    ACT_ALLOW, ACT_ERRNO, ACT_KILL, ACT_KILL_PROCESS, ACT_KILL_THREAD, ACT_LOG, ACT_TRAP, EPERM,
    Profile, SyscallRule, errno_number, host_filter_arch,
};
use crate::syscalls::Abi;

/// ENOSYS: what a filter answers a syscall it does not know.
pub const ENOSYS: u32 = 38;

/// The comment of the rules [`carry_over`] adds for a known policy.
pub const CARRIED_COMMENT: &str =
    "the answer of the seccomp policy the workload was recorded under";
/// The comment of the rule [`carry_over`] adds when the policy is unknown.
pub const NEWER_COMMENT: &str = "newer than every allowed syscall: ENOSYS, as runc answers syscalls it does not know, so that libc falls back";

/// The seccomp policy a workload ran under while it was recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "filter", rename_all = "snake_case")]
pub enum Policy {
    /// Not known: a runtime whose bundle could not be read, or
    /// `recorderctl record` started under a filter.
    #[default]
    Unknown,
    /// No seccomp filter: every syscall reached the recorder.
    Unconfined,
    /// A filter, in the docker model (an OCI `linux.seccomp` reads as one).
    Filter(Box<Profile>),
}

/// An answer other than "allow": an action and, for ERRNO, its errno.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Answer {
    action: String,
    errno: Option<u32>,
}

impl Answer {
    /// The answer of `action` with the errno fields given, or `None` when it
    /// lets the syscall run (ALLOW, LOG) or cannot be given again by a
    /// profile on its own (NOTIFY and TRACE need a listener or a tracer).
    fn of(action: &str, errno_ret: Option<u32>, errno: Option<&str>) -> Option<Self> {
        let errno = match action {
            ACT_ERRNO => Some(
                errno_ret
                    .or_else(|| errno.and_then(errno_number))
                    .unwrap_or(EPERM),
            ),
            ACT_KILL | ACT_KILL_PROCESS | ACT_KILL_THREAD | ACT_TRAP => None,
            _ => return None,
        };
        Some(Self {
            action: action.to_owned(),
            errno,
        })
    }

    fn default_of(p: &Profile) -> Option<Self> {
        Self::of(
            &p.default_action,
            p.default_errno_ret,
            p.default_errno.as_deref(),
        )
    }
}

/// Whether a rule of a docker-model policy applies on this host.
fn applies(rule: &SyscallRule) -> bool {
    let host = host_filter_arch();
    (rule.includes.arches.is_empty() || rule.includes.arches.iter().any(|a| a == host))
        && !rule.excludes.arches.iter().any(|a| a == host)
}

/// What `policy` answered `name`: `None` when it allowed it (for some
/// arguments at least), or when the answer depended on the arguments or
/// cannot be reproduced.
fn answer(policy: &Profile, name: &str) -> Option<Answer> {
    let rules: Vec<&SyscallRule> = policy
        .syscalls
        .iter()
        .filter(|r| applies(r) && r.all_names().any(|n| n == name))
        .collect();
    if rules
        .iter()
        .any(|r| r.action == ACT_ALLOW || r.action == ACT_LOG)
    {
        return None;
    }
    match rules.iter().find(|r| r.args.is_empty()) {
        Some(r) => Answer::of(&r.action, r.errno_ret, r.errno.as_deref()),
        None if rules.is_empty() => Answer::default_of(policy),
        // Denied for some arguments, the default for the others.
        None => None,
    }
}

/// Every name of the ABIs `abis`.
fn all_names(abis: &[Abi]) -> BTreeSet<&'static str> {
    abis.iter()
        .flat_map(|abi| (0..recorder_common::SET_BITS as u32).filter_map(|nr| abi.name(nr)))
        .collect()
}

/// Adds to `profile` the answers `policy` gave the syscalls the profile does
/// not name, for the names of `abis` (the docker format cannot give one
/// ABI an answer of its own: a rule applies to every ABI with the name).
/// Returns how many names got a rule.
///
/// For a known filter, a name the filter denied gets the filter's answer
/// where it differs from the profile's default. When the filter's default
/// answer differs from the profile's (podman's ENOSYS, the profile's EPERM),
/// the profile takes the filter's default, so that syscalls this build
/// cannot name answer as they did while recorded, and lists the names the
/// filter let through and the workload did not use with the profile's own
/// answer (they were not recorded). When the policy is unknown, the native
/// syscalls numbered above every one the profile allows answer ENOSYS.
pub(super) fn carry_over(profile: &mut Profile, policy: &Policy, abis: &[Abi]) -> usize {
    let named: BTreeSet<&str> = profile
        .syscalls
        .iter()
        .flat_map(SyscallRule::all_names)
        .collect();
    let mut rules: BTreeMap<Answer, Vec<String>> = BTreeMap::new();
    let comment = match policy {
        Policy::Unconfined => return 0,
        Policy::Unknown => {
            let native = Abi::native();
            let newest = profile
                .syscalls
                .iter()
                .filter(|r| r.action == ACT_ALLOW)
                .flat_map(SyscallRule::all_names)
                .filter_map(|n| native.number(n))
                .max()
                .unwrap_or(0);
            let newer: Vec<String> = (newest + 1..recorder_common::SET_BITS as u32)
                .filter_map(|nr| native.name(nr))
                .filter(|n| !named.contains(n))
                .map(str::to_owned)
                .collect();
            if !newer.is_empty() {
                rules.insert(
                    Answer {
                        action: ACT_ERRNO.to_owned(),
                        errno: Some(ENOSYS),
                    },
                    newer,
                );
            }
            NEWER_COMMENT
        }
        Policy::Filter(filter) => {
            let ours = Answer::default_of(profile);
            let theirs = Answer::default_of(filter);
            // With the filter's own default (podman's ENOSYS), the syscalls
            // no name here reaches (newer than this build's tables) answer
            // as they did while recorded; the ones the filter let through
            // and the workload did not use keep the profile's answer.
            let default = match (&theirs, &ours) {
                (Some(t), Some(_)) if theirs != ours => {
                    profile.default_action.clone_from(&t.action);
                    profile.default_errno_ret = t.errno;
                    profile.default_errno = None;
                    theirs.clone()
                }
                _ => ours.clone(),
            };
            for name in all_names(abis).into_iter().filter(|n| !named.contains(n)) {
                let given = match answer(filter, name) {
                    Some(a) => Some(a),
                    // Let through while recorded, not used: not recorded.
                    None => ours.clone(),
                };
                if let Some(a) = given
                    && Some(&a) != default.as_ref()
                {
                    rules.entry(a).or_default().push(name.to_owned());
                }
            }
            CARRIED_COMMENT
        }
    };
    let mut count = 0;
    for (a, names) in rules {
        count += names.len();
        profile.syscalls.push(SyscallRule {
            names,
            action: a.action,
            errno_ret: a.errno,
            comment: Some(comment.to_owned()),
            ..SyscallRule::default()
        });
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(names: &[&str]) -> Profile {
        Profile {
            default_action: ACT_ERRNO.into(),
            default_errno_ret: Some(EPERM),
            syscalls: vec![SyscallRule::allow(names.iter().map(|n| (*n).to_owned()))],
            ..Profile::default()
        }
    }

    fn rule(names: &[&str], action: &str, errno: Option<u32>) -> SyscallRule {
        SyscallRule {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            action: action.into(),
            errno_ret: errno,
            ..SyscallRule::default()
        }
    }

    /// docker 20.10's default filter, in short.
    fn docker() -> Profile {
        let mut p = allow(&["read", "write", "clone", "exit_group", "chmod"]);
        p.default_errno_ret = None;
        p.syscalls.push(rule(&["clone3"], ACT_ERRNO, Some(ENOSYS)));
        p
    }

    fn carried(p: &Profile) -> Vec<(String, Option<u32>, Vec<String>)> {
        p.syscalls
            .iter()
            .filter(|r| r.action != ACT_ALLOW)
            .map(|r| (r.action.clone(), r.errno_ret, r.names.clone()))
            .collect()
    }

    #[test]
    fn docker_clone3_answers_enosys() {
        let mut p = allow(&["read", "clone", "exit_group"]);
        let n = carry_over(
            &mut p,
            &Policy::Filter(Box::new(docker())),
            &[Abi::native()],
        );
        assert_eq!(n, 1);
        assert_eq!(
            carried(&p),
            [(
                ACT_ERRNO.to_owned(),
                Some(ENOSYS),
                vec!["clone3".to_owned()]
            )]
        );
        assert_eq!(p.syscalls[1].comment.as_deref(), Some(CARRIED_COMMENT));
        // The profile's default is kept: it is the filter's too (EPERM).
        assert_eq!(p.default_errno_ret, Some(EPERM));
    }

    #[test]
    fn never_allowances_nor_recorded_names() {
        // The workload called clone3 (it was allowed): nothing to carry.
        let mut p = allow(&["read", "clone3"]);
        assert_eq!(
            carry_over(
                &mut p,
                &Policy::Filter(Box::new(docker())),
                &[Abi::native()]
            ),
            0
        );
        // chmod was allowed by the filter, not used: the profile's default.
        let mut p = allow(&["read"]);
        carry_over(
            &mut p,
            &Policy::Filter(Box::new(docker())),
            &[Abi::native()],
        );
        assert!(
            !carried(&p)
                .iter()
                .any(|(_, _, n)| n.contains(&"chmod".to_owned()))
        );
        assert_eq!(
            carry_over(&mut allow(&["read"]), &Policy::Unconfined, &[Abi::native()]),
            0
        );
    }

    #[test]
    fn conditional_denials_and_notify_are_not_carried() {
        let mut f = allow(&["read"]);
        let mut cond = rule(&["socket"], ACT_ERRNO, Some(ENOSYS));
        cond.args = vec![crate::profile::ArgRule {
            index: 0,
            value: 40,
            value_two: 0,
            op: "SCMP_CMP_EQ".into(),
        }];
        f.syscalls.push(cond);
        f.syscalls.push(rule(&["mount"], "SCMP_ACT_NOTIFY", None));
        f.syscalls.push(rule(&["reboot"], ACT_KILL_PROCESS, None));
        let mut p = allow(&["read"]);
        carry_over(&mut p, &Policy::Filter(Box::new(f)), &[Abi::native()]);
        let c = carried(&p);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].0, ACT_KILL_PROCESS);
        assert_eq!(c[0].2, ["reboot"]);
    }

    #[test]
    fn podman_default_is_kept_and_unused_allowances_stay_eperm() {
        // podman: ENOSYS unless allowed, EPERM for a few.
        let mut f = allow(&["read", "write", "clone", "clone3", "exit_group"]);
        f.default_errno_ret = Some(ENOSYS);
        f.syscalls
            .push(rule(&["reboot", "kexec_load"], ACT_ERRNO, Some(EPERM)));
        let mut p = allow(&["read", "exit_group"]);
        carry_over(&mut p, &Policy::Filter(Box::new(f)), &[Abi::native()]);
        // The filter's default: what it did not list (and what this build
        // cannot name) answers ENOSYS, as while recorded.
        assert_eq!(p.default_errno_ret, Some(ENOSYS));
        let eperm = carried(&p)
            .into_iter()
            .find(|(_, errno, _)| *errno == Some(EPERM))
            .map(|(_, _, names)| names)
            .unwrap_or_default();
        // Its EPERM names keep EPERM, and so do the syscalls it let
        // through that the workload did not use: they were not recorded.
        for name in ["reboot", "kexec_load", "write", "clone", "clone3"] {
            assert!(eperm.iter().any(|n| n == name), "{name}: {eperm:?}");
        }
        // Recorded names get no rule; names it did not list get none
        // either (the default answers them).
        for name in ["read", "exit_group", "pivot_root"] {
            assert!(!eperm.iter().any(|n| n == name), "{name}: {eperm:?}");
        }
        assert_eq!(
            carried(&p).len(),
            1,
            "only the EPERM rule: {:?}",
            carried(&p)
        );
    }

    #[test]
    fn errno_names_and_defaults() {
        let mut f = allow(&["read"]);
        f.default_errno_ret = None;
        f.default_errno = Some("ENOSYS".into());
        let mut r = rule(&["ptrace"], ACT_ERRNO, None);
        r.errno = Some("EACCES".into());
        f.syscalls.push(r);
        assert_eq!(
            answer(&f, "ptrace"),
            Some(Answer {
                action: ACT_ERRNO.into(),
                errno: Some(13)
            })
        );
        assert_eq!(answer(&f, "mount").and_then(|a| a.errno), Some(ENOSYS));
        assert_eq!(answer(&f, "read"), None);
        // A rule for another architecture does not apply here.
        let mut other = rule(&["read"], ACT_ALLOW, None);
        other.includes.arches = vec!["s390x".into()];
        let f = Profile {
            syscalls: vec![other],
            ..allow(&[])
        };
        assert!(answer(&f, "read").is_some());
    }

    #[test]
    fn unknown_policy_answers_newer_syscalls_enosys() {
        let native = Abi::native();
        let mut p = allow(&["read", "clone", "openat", "newfstatat"]);
        let n = carry_over(&mut p, &Policy::Unknown, &[native]);
        let newest = native
            .number("newfstatat")
            .unwrap()
            .max(native.number("openat").unwrap());
        let rule = p.syscalls.last().unwrap();
        assert_eq!(rule.errno_ret, Some(ENOSYS));
        assert_eq!(rule.comment.as_deref(), Some(NEWER_COMMENT));
        assert_eq!(n, rule.names.len());
        for name in ["clone3", "faccessat2", "openat2", "statx"] {
            assert!(rule.names.iter().any(|n| n == name), "{name}");
        }
        assert!(
            rule.names
                .iter()
                .all(|n| native.number(n).unwrap() > newest)
        );
        // Allowing the newest syscall leaves nothing newer.
        let newest_name = (0..recorder_common::SET_BITS as u32)
            .rev()
            .find_map(|nr| native.name(nr))
            .unwrap();
        let mut p = allow(&["read", newest_name]);
        assert_eq!(carry_over(&mut p, &Policy::Unknown, &[native]), 0);
        assert_eq!(p.syscalls.len(), 1);
    }

    #[test]
    fn policy_round_trips_as_json() {
        for policy in [
            Policy::Unknown,
            Policy::Unconfined,
            Policy::Filter(Box::new(docker())),
        ] {
            let text = serde_json::to_string(&policy).unwrap();
            assert_eq!(serde_json::from_str::<Policy>(&text).unwrap(), policy);
        }
    }
}
