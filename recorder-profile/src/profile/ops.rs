//! Operations on a [`Profile`]: set its default action, list its
//! architectures and what it allows, merge profiles, normalise rules.

use std::collections::BTreeSet;

use super::{
    ACT_ALLOW, ArchMap, CARRIED_COMMENT, DefaultAction, ENOSYS, EPERM, Filter, Profile,
    SyscallRule, host_filter_arch, model::ConditionsKey, model::sorted_args,
};
use crate::syscalls::Abi;

impl Profile {
    /// Sets the default action; `errno_ret` applies to
    /// [`DefaultAction::Errno`] only (EPERM when `None`).
    ///
    /// Complain mode ([`DefaultAction::Log`]) also drops the answers
    /// carried over from the recording-time policy ([`CARRIED_COMMENT`])
    /// other than ENOSYS: they deny what the profile does not allow (podman's
    /// carried EPERM lists every syscall its filter let through and the
    /// workload did not use), and in complain mode that should be logged,
    /// not denied. ENOSYS answers stay: libc falls back on them (clone3),
    /// as it did while recorded.
    pub fn set_default_action(&mut self, action: DefaultAction, errno_ret: Option<u32>) {
        if action == DefaultAction::Log {
            self.syscalls.retain(|r| {
                r.comment.as_deref() != Some(CARRIED_COMMENT)
                    || r.action == ACT_ALLOW
                    || r.errno_ret == Some(ENOSYS)
            });
        }
        self.default_action = action.action().to_owned();
        self.default_errno_ret = match action {
            DefaultAction::Errno => Some(errno_ret.unwrap_or(EPERM)),
            _ => None,
        };
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
    /// listener win; what differs in `other` is returned as notes. The
    /// newer form of an allowed fallback syscall answers ENOSYS
    /// ([`Profile::answer_fallbacks`]).
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
        self.drop_denials_of_allowed();
        self.answer_fallbacks();
        notes
    }

    /// Keeps blocked what `base` blocks: every name that a rule of `base`
    /// answers with anything but ALLOW or LOG, without argument conditions,
    /// and that no rule of `base` allows, leaves this profile's rules and
    /// gets `base`'s rules for it (its answer, its filters). Returns the
    /// names kept blocked. (oci-seccomp-bpf-hook: "if a syscall is blocked
    /// in the base profile, then it will remain blocked in the output file
    /// even if it is recorded while tracing".) The answers a recorded
    /// profile carries (marked by their comments: the recording-time
    /// policy's for what was not recorded, ENOSYS for newer forms) are no
    /// one's choice to block: a profile recorded earlier, given as the
    /// base, does not block what this run needs.
    pub fn keep_blocked(&mut self, base: &Self) -> Vec<String> {
        use super::{ACT_LOG, FALLBACK_COMMENT, NEWER_COMMENT};
        let lets_run = |r: &SyscallRule| r.action == ACT_ALLOW || r.action == ACT_LOG;
        let carried = |r: &SyscallRule| {
            r.comment
                .as_deref()
                .is_some_and(|c| [CARRIED_COMMENT, NEWER_COMMENT, FALLBACK_COMMENT].contains(&c))
        };
        let blocks = |r: &SyscallRule| !lets_run(r) && r.args.is_empty() && !carried(r);
        let blocked: BTreeSet<String> = base
            .syscalls
            .iter()
            .filter(|r| blocks(r))
            .flat_map(|r| r.all_names().map(str::to_owned))
            .filter(|n| {
                !base
                    .syscalls
                    .iter()
                    .any(|r| lets_run(r) && r.all_names().any(|x| x == n))
            })
            .collect();
        if blocked.is_empty() {
            return Vec::new();
        }
        self.syscalls.retain_mut(|r| {
            if !r.all_names().any(|n| blocked.contains(n)) {
                return true;
            }
            r.names.retain(|n| !blocked.contains(n));
            if r.name.as_deref().is_some_and(|n| blocked.contains(n)) {
                r.name = None;
            }
            r.all_names().next().is_some()
        });
        for rule in base.syscalls.iter().filter(|r| blocks(r)) {
            let names: Vec<String> = rule
                .all_names()
                .filter(|n| blocked.contains(*n))
                .map(str::to_owned)
                .collect();
            if !names.is_empty() {
                self.syscalls.push(SyscallRule {
                    name: None,
                    names,
                    ..rule.clone()
                });
            }
        }
        blocked.into_iter().collect()
    }

    /// Drops a name from the unconditional non-allow rules (e.g. one
    /// profile's ENOSYS answer to clone3) when an unconditional rule allows
    /// it (the other profile recorded clone3): the union allows it, and two
    /// rules with different actions for one syscall are a conflict.
    fn drop_denials_of_allowed(&mut self) {
        let plain =
            |r: &SyscallRule| r.args.is_empty() && r.includes.is_empty() && r.excludes.is_empty();
        let allowed: std::collections::HashSet<String> = self
            .syscalls
            .iter()
            .filter(|r| r.action == ACT_ALLOW && plain(r))
            .flat_map(|r| r.names.iter().cloned())
            .collect();
        self.syscalls.retain_mut(|r| {
            if r.action == ACT_ALLOW || !plain(r) || r.names.is_empty() {
                return true;
            }
            r.names.retain(|n| !allowed.contains(n));
            !r.names.is_empty()
        });
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
    use crate::profile::{ACT_ERRNO, ArgRule, Recorded};

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
    fn merge_drops_denials_of_what_the_other_allows() {
        let enosys = |names: &[&str]| SyscallRule {
            action: ACT_ERRNO.into(),
            errno_ret: Some(38),
            ..rule(names, &[])
        };
        let mut a = Profile {
            default_action: ACT_ERRNO.into(),
            syscalls: vec![rule(&["clone3", "read"], &[])],
            ..Profile::default()
        };
        let b = Profile {
            default_action: ACT_ERRNO.into(),
            syscalls: vec![rule(&["clone"], &[]), enosys(&["clone3", "statx"])],
            ..Profile::default()
        };
        a.merge(&b);
        assert_eq!(a.syscalls.len(), 2, "{:?}", a.syscalls);
        assert_eq!(a.syscalls[0].names, ["clone", "clone3", "read"]);
        assert_eq!(a.syscalls[1].names, ["statx"]);
        assert_eq!(a.syscalls[1].errno_ret, Some(38));
        let mut only = Profile {
            default_action: ACT_ERRNO.into(),
            syscalls: vec![rule(&["clone3"], &[])],
            ..Profile::default()
        };
        only.merge(&Profile {
            default_action: ACT_ERRNO.into(),
            syscalls: vec![enosys(&["clone3"])],
            ..Profile::default()
        });
        assert_eq!(only.syscalls.len(), 1, "{:?}", only.syscalls);
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
                // clone is allowed: its newer form answers ENOSYS.
                (vec!["clone3"], 0),
            ]
        );
        assert_eq!(a.syscalls[1].args[0].value, 1);
        assert_eq!(a.syscalls[2].args[0].value, 2);
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
