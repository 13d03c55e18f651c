//! Newer syscalls and the older forms libc falls back to when the newer
//! one answers ENOSYS, and only then: one table ([`FALLBACKS`]) for
//! `check`, which reports a profile that allows an older form and answers
//! its newer form otherwise, and for the builder and `merge`, which answer
//! such a newer form ENOSYS ([`Profile::answer_fallbacks`]), so that every
//! profile they make passes `check`.

use super::{ACT_ALLOW, ACT_ERRNO, ACT_LOG, ACTIONS, ENOSYS, EPERM, Profile, SyscallRule};

/// Newer syscalls and the older ones libc falls back to when the newer
/// one answers ENOSYS (and only then).
pub const FALLBACKS: &[(&str, &[&str])] = &[
    ("clone3", &["clone"]),
    ("faccessat2", &["faccessat"]),
    ("statx", &["newfstatat", "fstat"]),
    ("openat2", &["openat"]),
];

/// The comment of the rule [`Profile::answer_fallbacks`] adds.
pub const FALLBACK_COMMENT: &str =
    "newer forms of allowed syscalls: ENOSYS, so that libc falls back to the allowed form";

/// The errno an ERRNO action answers with these fields (EPERM without one).
fn errno_of(errno_ret: Option<u32>, errno: Option<&str>) -> u32 {
    errno_ret
        .or_else(|| errno.and_then(super::errno_number))
        .unwrap_or(EPERM)
}

/// Whether a rule answers ENOSYS.
fn is_enosys(action: &str, errno_ret: Option<u32>, errno: Option<&str>) -> bool {
    action == ACT_ERRNO && errno_of(errno_ret, errno) == ENOSYS
}

impl Profile {
    /// The fallback pairs of [`FALLBACKS`] whose older form some rule
    /// allows and whose newer form the profile neither allows nor answers
    /// ENOSYS: the newer names. Left alone: a newer form that a rule
    /// answers for some arguments or architectures only, and answers
    /// that do not deny (`SCMP_ACT_LOG`) or that are unknown.
    pub fn missing_fallbacks(&self) -> Vec<&'static str> {
        let allows = |name: &str| {
            self.syscalls
                .iter()
                .any(|r| r.action == ACT_ALLOW && r.all_names().any(|n| n == name))
        };
        let answers_well = |action: &str, errno_ret, errno: Option<&str>| {
            action == ACT_LOG || !ACTIONS.contains(&action) || is_enosys(action, errno_ret, errno)
        };
        FALLBACKS
            .iter()
            .filter(|(newer, older)| older.iter().any(|o| allows(o)) && !allows(newer))
            .filter(|(newer, _)| {
                let naming: Vec<&SyscallRule> = self
                    .syscalls
                    .iter()
                    .filter(|r| r.all_names().any(|n| n == *newer))
                    .collect();
                if naming.is_empty() {
                    return !answers_well(
                        &self.default_action,
                        self.default_errno_ret,
                        self.default_errno.as_deref(),
                    );
                }
                naming.iter().all(|r| r.is_unconditional())
                    && !naming
                        .iter()
                        .all(|r| answers_well(&r.action, r.errno_ret, r.errno.as_deref()))
            })
            .map(|(newer, _)| *newer)
            .collect()
    }

    /// Answers ENOSYS to the newer form of every fallback pair whose
    /// older form the profile allows ([`Profile::missing_fallbacks`]):
    /// the name leaves the rules that answered it otherwise and joins an
    /// ENOSYS rule. Returns how many names it moved.
    pub fn answer_fallbacks(&mut self) -> usize {
        let moved = self.missing_fallbacks();
        if moved.is_empty() {
            return 0;
        }
        let gone = |n: &str| moved.contains(&n);
        self.syscalls.retain_mut(|r| {
            if !r.all_names().any(gone) {
                return true;
            }
            r.names.retain(|n| !gone(n));
            if r.name.as_deref().is_some_and(gone) {
                r.name = None;
            }
            r.all_names().next().is_some()
        });
        // A rule of their own, whose comment says why (an earlier one of
        // it, after a merge, takes them): a base's ENOSYS rule is left as
        // it was.
        let enosys = self.syscalls.iter_mut().find(|r| {
            r.comment.as_deref() == Some(FALLBACK_COMMENT)
                && r.is_unconditional()
                && is_enosys(&r.action, r.errno_ret, r.errno.as_deref())
        });
        let names = moved.iter().map(|n| (*n).to_owned());
        match enosys {
            Some(rule) => {
                rule.names.extend(names);
                rule.names.sort();
                rule.names.dedup();
            }
            None => self.syscalls.push(SyscallRule {
                names: names.collect(),
                action: ACT_ERRNO.to_owned(),
                errno_ret: Some(ENOSYS),
                comment: Some(FALLBACK_COMMENT.to_owned()),
                ..SyscallRule::default()
            }),
        }
        moved.len()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn p(json: &str) -> Profile {
        Profile::from_json(Path::new("t.json"), json).unwrap()
    }

    fn answer(p: &Profile, name: &str) -> Vec<(String, Option<u32>)> {
        p.syscalls
            .iter()
            .filter(|r| r.all_names().any(|n| n == name))
            .map(|r| (r.action.clone(), r.errno_ret))
            .collect()
    }

    #[test]
    fn newer_forms_of_allowed_syscalls_answer_enosys() {
        // openat allowed, openat2 left to the default; statx denied EPERM
        // by a rule that names another syscall too; clone3 allowed.
        let mut prof = p(r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
            "syscalls":[{"names":["openat","fstat","clone","clone3"],"action":"SCMP_ACT_ALLOW"},
            {"names":["statx","reboot"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#);
        assert_eq!(prof.missing_fallbacks(), ["statx", "openat2"]);
        assert_eq!(prof.answer_fallbacks(), 2);
        for name in ["statx", "openat2"] {
            assert_eq!(
                answer(&prof, name),
                [(ACT_ERRNO.to_owned(), Some(ENOSYS))],
                "{name}"
            );
        }
        assert_eq!(answer(&prof, "reboot"), [(ACT_ERRNO.to_owned(), Some(1))]);
        assert_eq!(answer(&prof, "clone3"), [(ACT_ALLOW.to_owned(), None)]);
        // faccessat is not allowed: faccessat2 keeps the default.
        assert!(answer(&prof, "faccessat2").is_empty());
        assert!(super::super::check::check(&prof).is_empty());
        // Done: nothing more to move.
        assert_eq!(prof.answer_fallbacks(), 0);
    }

    #[test]
    fn a_rule_of_their_own_and_conditional_answers_left_alone() {
        let mut prof = p(r#"{"defaultAction":"SCMP_ACT_ERRNO",
            "syscalls":[{"names":["clone","openat","faccessat"],"action":"SCMP_ACT_ALLOW"},
            {"names":["pivot_root"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
            {"names":["faccessat2"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"valueTwo":0,"op":"SCMP_CMP_EQ"}]}]}"#);
        assert_eq!(prof.answer_fallbacks(), 2);
        assert_eq!(prof.syscalls.len(), 4);
        assert_eq!(prof.syscalls[1].names, ["pivot_root"]);
        assert_eq!(prof.syscalls[2].names, ["faccessat2"]);
        let own = &prof.syscalls[3];
        assert_eq!(own.names, ["clone3", "openat2"]);
        assert_eq!(own.comment.as_deref(), Some(FALLBACK_COMMENT));
        // Later moves join it.
        prof.syscalls[0].names.push("fstat".into());
        assert_eq!(prof.answer_fallbacks(), 1);
        assert_eq!(prof.syscalls[3].names, ["clone3", "openat2", "statx"]);
    }

    #[test]
    fn complain_mode_and_enosys_defaults_need_nothing() {
        for json in [
            r#"{"defaultAction":"SCMP_ACT_LOG","syscalls":[{"names":["clone"],"action":"SCMP_ACT_ALLOW"}]}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,"syscalls":[{"names":["clone"],"action":"SCMP_ACT_ALLOW"}]}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#,
        ] {
            let mut prof = p(json);
            assert_eq!(prof.answer_fallbacks(), 0, "{json}");
        }
    }
}
