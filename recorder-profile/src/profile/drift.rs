//! Drift: what a workload called outside the profile it runs under. A
//! syscall that reached the recorder passed the container's filter; when
//! no ALLOW rule of that filter names it, the filter's default action let
//! it through (complain mode: `SCMP_ACT_LOG`), and it is drift.
//!
//! A syscall that the filter allows only under argument conditions counts
//! as inside: the recorded sets hold no argument values (argument
//! recording is opt-in and read apart), so nothing shows otherwise.

use std::collections::{BTreeMap, BTreeSet};

use super::{ACT_ALLOW, Profile, Recorded, SyscallRule, host_filter_arch};
use crate::syscalls::Abi;

/// The comment of the rule [`widen`] adds.
pub const WIDEN_COMMENT: &str = "called outside the profile while watched (recorderctl drift)";

/// Names outside a profile, per ABI, each with when it was first seen
/// (seconds since the epoch).
pub type Outside = BTreeMap<Abi, BTreeMap<String, u64>>;

/// The names `policy` allows for syscalls of `abi`, with or without
/// argument conditions, by the rules that apply on this host.
fn allowed(policy: &Profile, abi: Abi) -> BTreeSet<&str> {
    let host = host_filter_arch();
    policy
        .syscalls
        .iter()
        .filter(|r| r.action == ACT_ALLOW)
        .filter(|r| r.includes.arches.is_empty() || r.includes.arches.iter().any(|a| a == host))
        .filter(|r| !r.excludes.arches.iter().any(|a| a == host))
        .flat_map(SyscallRule::all_names)
        .filter(|n| abi.number(n).is_some())
        .collect()
}

/// The names in `recorded` that `policy` does not allow, per ABI (ABIs
/// without any are left out).
pub fn outside(policy: &Profile, recorded: &Recorded) -> BTreeMap<Abi, BTreeSet<String>> {
    recorded
        .syscalls
        .iter()
        .filter_map(|(abi, names)| {
            let allowed = allowed(policy, *abi);
            let out: BTreeSet<String> = names
                .iter()
                .filter(|n| !allowed.contains(n.as_str()))
                .cloned()
                .collect();
            (!out.is_empty()).then_some((*abi, out))
        })
        .collect()
}

/// Adds to `seen` the names of `now_outside` it does not have yet, first
/// seen at `now`. Returns how many were new.
pub fn note(seen: &mut Outside, now_outside: BTreeMap<Abi, BTreeSet<String>>, now: u64) -> usize {
    let mut new = 0;
    for (abi, names) in now_outside {
        let known = seen.entry(abi).or_default();
        for name in names {
            known.entry(name).or_insert_with(|| {
                new += 1;
                now
            });
        }
    }
    new
}

/// Every outside name (over all ABIs), each with its earliest first-seen
/// time.
pub fn names(seen: &Outside) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for (name, at) in seen.values().flatten() {
        out.entry(name.clone())
            .and_modify(|t| *t = (*t).min(*at))
            .or_insert(*at);
    }
    out
}

/// How many distinct syscalls are outside (over all ABIs, as the
/// recorded count is).
pub fn count(seen: &Outside) -> usize {
    seen.values().map(BTreeMap::len).sum()
}

/// `policy` with the drift allowed, and those names taken out of the
/// rules that deny them. The profile to enforce next. The names join the
/// profile's unconditional ALLOW rule, whose comment then names them
/// ([`WIDEN_COMMENT`]); a profile without one gets one rule for them.
/// (The docker format limits a rule by the host's architecture, not by
/// the ABI: a name allows the syscall in every ABI that has it.)
pub fn widen(policy: &Profile, seen: &Outside) -> Profile {
    let mut p = policy.clone();
    let all: BTreeSet<&str> = seen
        .values()
        .flat_map(|n| n.keys().map(String::as_str))
        .collect();
    if all.is_empty() {
        return p;
    }
    for rule in p.syscalls.iter_mut().filter(|r| r.action != ACT_ALLOW) {
        rule.names.retain(|n| !all.contains(n.as_str()));
        if rule.name.as_deref().is_some_and(|n| all.contains(n)) {
            rule.name = None;
        }
    }
    p.syscalls
        .retain(|r| r.action == ACT_ALLOW || r.all_names().next().is_some());
    let names = all.iter().map(|n| (*n).to_owned());
    let comment = format!(
        "{WIDEN_COMMENT}: {}",
        all.iter().copied().collect::<Vec<_>>().join(", ")
    );
    match p
        .syscalls
        .iter_mut()
        .find(|r| r.action == ACT_ALLOW && r.is_unconditional())
    {
        Some(rule) => {
            rule.names.extend(names);
            rule.names.sort();
            rule.names.dedup();
            rule.comment = Some(match rule.comment.take() {
                Some(c) => format!("{c}; {comment}"),
                None => comment,
            });
        }
        None => {
            let mut rule = SyscallRule::allow(names);
            rule.comment = Some(comment);
            p.syscalls.push(rule);
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{ACT_ERRNO, ACT_LOG, ArgRule};

    fn policy(default: &str) -> Profile {
        let mut p = Profile {
            default_action: default.into(),
            syscalls: vec![SyscallRule::allow(
                ["read", "write", "mkdir", "mkdirat", "execve", "exit_group"].map(str::to_owned),
            )],
            ..Profile::default()
        };
        // Allowed only for one argument value: counts as inside.
        let mut cond = SyscallRule::allow(["personality".to_owned()]);
        cond.args = vec![ArgRule {
            index: 0,
            value: 8,
            value_two: 0,
            op: "SCMP_CMP_EQ".into(),
        }];
        p.syscalls.push(cond);
        // Denied by a rule: never reaches the recorder, never allowed.
        let mut deny = SyscallRule::allow(["chmod".to_owned()]);
        deny.action = ACT_ERRNO.into();
        p.syscalls.push(deny);
        p
    }

    fn recorded(abi: Abi, names: &[&str]) -> Recorded {
        let mut r = Recorded::default();
        r.add(abi, names.iter().copied());
        r
    }

    #[test]
    fn outside_is_what_no_allow_rule_names() {
        let native = Abi::native();
        let rec = recorded(
            native,
            &[
                "read",
                "mkdir",
                "fchmodat",
                "chmod",
                "personality",
                "execve",
            ],
        );
        let out = outside(&policy(ACT_LOG), &rec);
        let names: Vec<&str> = out[&native].iter().map(String::as_str).collect();
        assert_eq!(names, ["chmod", "fchmodat"]);
        // Nothing outside: no entry at all.
        assert!(outside(&policy(ACT_LOG), &recorded(native, &["read"])).is_empty());
    }

    #[test]
    fn per_abi() {
        // The compat ABI's own names: the same rule allows a name in each
        // ABI whose table has it.
        let compat = Abi::compat();
        if compat == Abi::native() {
            return;
        }
        let rec = recorded(compat, &["read", "chmod"]);
        let out = outside(&policy(ACT_LOG), &rec);
        assert_eq!(out.len(), 1);
        assert!(out[&compat].contains("chmod") && !out[&compat].contains("read"));
    }

    #[test]
    fn first_seen_times_are_kept() {
        let native = Abi::native();
        let mut seen = Outside::default();
        let p = policy(ACT_LOG);
        assert_eq!(
            note(&mut seen, outside(&p, &recorded(native, &["chmod"])), 10),
            1
        );
        let later = recorded(native, &["chmod", "fchmodat", "read"]);
        assert_eq!(note(&mut seen, outside(&p, &later), 20), 1);
        assert_eq!(note(&mut seen, outside(&p, &later), 30), 0);
        let all = names(&seen);
        assert_eq!(all["chmod"], 10);
        assert_eq!(all["fchmodat"], 20);
        assert_eq!(count(&seen), 2);
        // Kept in the state file: round trip.
        let text = serde_json::to_string(&seen).unwrap();
        assert_eq!(serde_json::from_str::<Outside>(&text).unwrap(), seen);
    }

    #[test]
    fn widen_allows_the_drift() {
        let native = Abi::native();
        let p = policy(ACT_LOG);
        let mut seen = Outside::default();
        note(
            &mut seen,
            outside(&p, &recorded(native, &["fchmodat", "chmod"])),
            1,
        );
        let wide = widen(&p, &seen);
        assert!(outside(&wide, &recorded(native, &["fchmodat", "chmod"])).is_empty());
        // chmod's denying rule is gone with its only name.
        assert!(!wide.syscalls.iter().any(|r| r.action == ACT_ERRNO));
        assert_eq!(wide.default_action, ACT_LOG);
        // One unconditional ALLOW rule: the profile's, with the drift.
        let allow: Vec<&SyscallRule> = wide
            .syscalls
            .iter()
            .filter(|r| r.action == ACT_ALLOW && r.is_unconditional())
            .collect();
        assert_eq!(allow.len(), 1, "{:?}", wide.syscalls);
        assert_eq!(
            allow[0].comment.as_deref(),
            Some(format!("{WIDEN_COMMENT}: chmod, fchmodat").as_str())
        );
        for n in ["chmod", "fchmodat", "read", "mkdir"] {
            assert!(allow[0].names.iter().any(|x| x == n), "{n}");
        }
        let mut names = allow[0].names.clone();
        names.sort();
        assert_eq!(names, allow[0].names, "sorted");
        // No drift: the profile as it was.
        assert_eq!(widen(&p, &Outside::default()), p);
    }
}
