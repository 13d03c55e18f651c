//! `recorderctl check`: finds what makes a docker-format profile wrong or
//! ineffective, each problem with the JSON path of the value at fault
//! (e.g. `$.syscalls[3].names[2]`).

use std::{collections::BTreeMap, fmt};

use crate::{
    profile::{
        ACT_ALLOW, ACT_ERRNO, ACT_LOG, ACT_NOTIFY, ACT_TRACE, ACTIONS, ENOSYS, EPERM,
        FILTER_ARCHES, OPS, Profile, SCMP_ARCHES, errno_number, fallback::FALLBACKS,
    },
    syscalls::Abi,
};

/// One problem found in a profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// JSON path of the value at fault, e.g. `$.syscalls[3].names[2]`.
    pub path: String,
    pub kind: ProblemKind,
    pub message: String,
}

/// The classes of problems `check` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProblemKind {
    /// A syscall name that none of the profile's architectures has.
    UnknownSyscall,
    /// An action libseccomp does not know.
    UnknownAction,
    /// An argument operator libseccomp does not know.
    UnknownOp,
    /// An argument index above 5.
    ArgIndex,
    /// `architectures` and `archMap` both set (runtimes refuse this).
    ArchitecturesAndArchMap,
    /// An architecture name that is not a libseccomp / runtime name.
    UnknownArch,
    /// A name listed twice in a rule, or in two rules with the same conditions.
    DuplicateName,
    /// `name` and `names` both set in a rule (runtimes refuse this).
    NameAndNames,
    /// A field the docker format does not have.
    UnknownField,
    /// A value of the right type that cannot be right (e.g. `minKernel`).
    InvalidValue,
    /// A fallback syscall allowed while its newer form answers anything but
    /// ENOSYS: libc does not fall back (e.g. `clone3` EPERM, `clone` allowed).
    NoFallback,
    /// A default that denies and no syscall allowed: nothing can run under
    /// it (a runtime cannot even start the container).
    NoSyscall,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Names libseccomp resolves for 32-bit arm beyond the kernel's syscall
/// table: the ARM private syscalls (`__ARM_NR_*`) and the generic alias
/// `sync_file_range2` of `arm_sync_file_range`.
const ARM_EXTRA: &[&str] = &[
    "breakpoint",
    "cacheflush",
    "set_tls",
    "usr26",
    "usr32",
    "sync_file_range2",
];

/// Whether `name` is a syscall of the ABI libseccomp calls `scmp_arch`:
/// `None` when the recorder has no table for that architecture.
fn known_in(scmp_arch: &str, name: &str) -> Option<bool> {
    let abi = Abi::from_scmp_arch(scmp_arch)?;
    Some(abi.number(name).is_some() || (abi == Abi::Arm && ARM_EXTRA.contains(&name)))
}

fn is_kernel_version(v: &str) -> bool {
    let mut parts = v.split('.');
    let ok =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

/// Checks a parsed profile.
pub fn check(profile: &Profile) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut add = |path: String, kind: ProblemKind, message: String| {
        problems.push(Problem {
            path,
            kind,
            message,
        });
    };
    // moby's and recorder's own profiles describe themselves in `comment`.
    for key in profile.extra.keys().filter(|k| *k != "comment") {
        add(
            format!("$.{key}"),
            ProblemKind::UnknownField,
            format!("unknown field {key:?}"),
        );
    }
    if let Some(e) = &profile.default_errno
        && errno_number(e).is_none()
    {
        add(
            "$.defaultErrno".into(),
            ProblemKind::InvalidValue,
            format!("unknown errno {e:?}"),
        );
    }
    if !ACTIONS.contains(&profile.default_action.as_str()) {
        add(
            "$.defaultAction".into(),
            ProblemKind::UnknownAction,
            format!("unknown action {:?}", profile.default_action),
        );
    }
    if !profile.architectures.is_empty() && !profile.arch_map.is_empty() {
        add(
            "$.archMap".into(),
            ProblemKind::ArchitecturesAndArchMap,
            "both architectures and archMap are set; runtimes refuse such a profile, use one of them".into(),
        );
    }
    for (i, a) in profile.architectures.iter().enumerate() {
        if !SCMP_ARCHES.contains(&a.as_str()) {
            add(
                format!("$.architectures[{i}]"),
                ProblemKind::UnknownArch,
                format!("unknown architecture {a:?}"),
            );
        }
    }
    for (i, m) in profile.arch_map.iter().enumerate() {
        if !SCMP_ARCHES.contains(&m.architecture.as_str()) {
            add(
                format!("$.archMap[{i}].architecture"),
                ProblemKind::UnknownArch,
                format!("unknown architecture {:?}", m.architecture),
            );
        }
        for (j, s) in m.sub_architectures.iter().enumerate() {
            if !SCMP_ARCHES.contains(&s.as_str()) {
                add(
                    format!("$.archMap[{i}].subArchitectures[{j}]"),
                    ProblemKind::UnknownArch,
                    format!("unknown architecture {s:?}"),
                );
            }
        }
    }
    // Names are checked only when every architecture of the filter has a
    // table here: a name none of them has may exist on one without.
    let arches = profile.arches();
    let checkable: Vec<&String> = if arches.iter().all(|a| Abi::from_scmp_arch(a).is_some()) {
        arches.iter().collect()
    } else {
        Vec::new()
    };
    // name -> (conditions key, first path) for duplicates across rules.
    let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
    for (i, rule) in profile.syscalls.iter().enumerate() {
        let at = format!("$.syscalls[{i}]");
        for key in rule.extra.keys() {
            add(
                format!("{at}.{key}"),
                ProblemKind::UnknownField,
                format!("unknown field {key:?}"),
            );
        }
        if rule.name.is_some() && !rule.names.is_empty() {
            add(
                format!("{at}.name"),
                ProblemKind::NameAndNames,
                "both name and names are set; runtimes refuse such a rule".into(),
            );
        }
        if !ACTIONS.contains(&rule.action.as_str()) {
            add(
                format!("{at}.action"),
                ProblemKind::UnknownAction,
                format!("unknown action {:?}", rule.action),
            );
        }
        if let Some(e) = &rule.errno
            && errno_number(e).is_none()
        {
            add(
                format!("{at}.errno"),
                ProblemKind::InvalidValue,
                format!("unknown errno {e:?}"),
            );
        }
        if rule.errno_ret.is_some() && ![ACT_ERRNO, ACT_TRACE].contains(&rule.action.as_str()) {
            add(
                format!("{at}.errnoRet"),
                ProblemKind::InvalidValue,
                format!("errnoRet has no meaning for {}", rule.action),
            );
        }
        if rule.action == ACT_NOTIFY && profile.listener_path.is_none() {
            add(
                format!("{at}.action"),
                ProblemKind::InvalidValue,
                "SCMP_ACT_NOTIFY needs listenerPath".into(),
            );
        }
        for (j, arg) in rule.args.iter().enumerate() {
            if arg.index > 5 {
                add(
                    format!("{at}.args[{j}].index"),
                    ProblemKind::ArgIndex,
                    format!(
                        "argument index {} is above 5 (syscalls have 6 arguments)",
                        arg.index
                    ),
                );
            }
            if !OPS.contains(&arg.op.as_str()) {
                add(
                    format!("{at}.args[{j}].op"),
                    ProblemKind::UnknownOp,
                    format!("unknown operator {:?}", arg.op),
                );
            }
        }
        for (which, filter) in [("includes", &rule.includes), ("excludes", &rule.excludes)] {
            for (j, a) in filter.arches.iter().enumerate() {
                if !FILTER_ARCHES.contains(&a.as_str()) {
                    let hint = if SCMP_ARCHES.contains(&a.as_str()) {
                        format!(
                            "; {which}.arches is compared with the host architecture as runtimes name it (amd64, arm64, x86, ...), so this never matches"
                        )
                    } else {
                        String::new()
                    };
                    add(
                        format!("{at}.{which}.arches[{j}]"),
                        ProblemKind::UnknownArch,
                        format!("unknown architecture {a:?}{hint}"),
                    );
                }
            }
            for (j, c) in filter.caps.iter().enumerate() {
                if !c.starts_with("CAP_") || c.len() == 4 {
                    add(
                        format!("{at}.{which}.caps[{j}]"),
                        ProblemKind::InvalidValue,
                        format!("{c:?} is not a capability name (CAP_...)"),
                    );
                }
            }
            if let Some(v) = &filter.min_kernel
                && !is_kernel_version(v)
            {
                add(
                    format!("{at}.{which}.minKernel"),
                    ProblemKind::InvalidValue,
                    format!("{v:?} is not a kernel version (e.g. \"4.8\")"),
                );
            }
        }
        let mut args = rule.args.clone();
        args.sort();
        let conditions = format!(
            "{}|{:?}|{:?}|{:?}|{:?}",
            rule.action, rule.errno_ret, args, rule.includes, rule.excludes
        );
        let named = rule.name.iter().map(|n| (format!("{at}.name"), n)).chain(
            rule.names
                .iter()
                .enumerate()
                .map(|(j, n)| (format!("{at}.names[{j}]"), n)),
        );
        for (path, name) in named {
            if !checkable.is_empty() && checkable.iter().all(|a| known_in(a, name) == Some(false)) {
                let list: Vec<&str> = checkable.iter().map(|a| a.as_str()).collect();
                add(
                    path.clone(),
                    ProblemKind::UnknownSyscall,
                    format!("unknown syscall {name:?} for {}", list.join(", ")),
                );
            }
            match seen.get(&(name.clone(), conditions.clone())) {
                Some(first) => add(
                    path,
                    ProblemKind::DuplicateName,
                    format!(
                        "duplicate name {name:?} (also at {first}, with the same action and conditions)"
                    ),
                ),
                None => {
                    seen.insert((name.clone(), conditions.clone()), path);
                }
            }
        }
    }
    no_fallback(profile, &mut add);
    no_syscall(profile, &mut add);
    problems
}

/// Reports a profile whose default denies and that lets no syscall run.
fn no_syscall(profile: &Profile, add: &mut impl FnMut(String, ProblemKind, String)) {
    let lets_run = |action: &str| [ACT_ALLOW, ACT_LOG, ACT_NOTIFY, ACT_TRACE].contains(&action);
    if lets_run(&profile.default_action)
        || !ACTIONS.contains(&profile.default_action.as_str())
        || profile
            .syscalls
            .iter()
            .any(|r| lets_run(&r.action) && r.all_names().next().is_some())
    {
        return;
    }
    add(
        "$.syscalls".to_owned(),
        ProblemKind::NoSyscall,
        format!(
            "no syscall is allowed and the default is {}: nothing can run under this profile (a runtime cannot even start the container)",
            profile.default_action
        ),
    );
}

/// Reports each fallback syscall the profile allows while its newer form
/// answers anything but ENOSYS.
fn no_fallback(profile: &Profile, add: &mut impl FnMut(String, ProblemKind, String)) {
    let rule_of = |name: &str| {
        profile
            .syscalls
            .iter()
            .enumerate()
            .find(|(_, r)| r.all_names().any(|n| n == name))
    };
    for (newer, older) in FALLBACKS {
        let Some(allowed) = older.iter().find(|o| {
            profile
                .syscalls
                .iter()
                .any(|r| r.action == ACT_ALLOW && r.all_names().any(|n| n == **o))
        }) else {
            continue;
        };
        let (path, action, errno) = match rule_of(newer) {
            // Allowed, or an answer that depends on the arguments.
            Some((_, r)) if r.action == ACT_ALLOW || !r.args.is_empty() => continue,
            Some((i, r)) => (
                format!("$.syscalls[{i}]"),
                r.action.as_str(),
                r.errno_ret
                    .or_else(|| r.errno.as_deref().and_then(errno_number)),
            ),
            None => (
                "$.defaultAction".to_owned(),
                profile.default_action.as_str(),
                profile
                    .default_errno_ret
                    .or_else(|| profile.default_errno.as_deref().and_then(errno_number)),
            ),
        };
        let errno = (action == ACT_ERRNO).then(|| errno.unwrap_or(EPERM));
        // An unknown action is reported as such.
        if action == ACT_LOG || errno == Some(ENOSYS) || !ACTIONS.contains(&action) {
            continue;
        }
        let answer = match errno {
            Some(e) => format!("{action} (errno {e})"),
            None => action.to_owned(),
        };
        add(
            path,
            ProblemKind::NoFallback,
            format!(
                "{allowed} is allowed but {newer} answers {answer}: libc falls back from {newer} to {allowed} only on ENOSYS; answer {newer} with SCMP_ACT_ERRNO and errnoRet 38"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn problems(json: &str) -> Vec<Problem> {
        check(&Profile::from_json(Path::new("t.json"), json).unwrap())
    }

    #[test]
    fn clean_profile_has_no_problems() {
        let p = problems(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
            "syscalls":[{"names":["read","getuid32"],"action":"SCMP_ACT_ALLOW"},
            {"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"valueTwo":0,"op":"SCMP_CMP_EQ"}]},
            {"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2,"valueTwo":0,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        assert_eq!(p, vec![]);
    }

    #[test]
    fn each_class_is_reported_with_its_path() {
        let p = problems(
            r#"{"defaultAction":"SCMP_ACT_NOPE","architectures":["SCMP_ARCH_X86_64"],
            "archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]}],
            "syscalls":[{"names":["read","no_such_call","read"],"action":"SCMP_ACT_ALLOW"},
            {"names":["write"],"action":"SCMP_ACT_MAYBE","args":[{"index":6,"value":1,"valueTwo":0,"op":"SCMP_CMP_ABOUT"}]},
            {"names":["read"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["SCMP_ARCH_X86"]}}]}"#,
        );
        let got: Vec<(&str, ProblemKind)> = p.iter().map(|p| (p.path.as_str(), p.kind)).collect();
        for want in [
            ("$.defaultAction", ProblemKind::UnknownAction),
            ("$.archMap", ProblemKind::ArchitecturesAndArchMap),
            ("$.syscalls[0].names[1]", ProblemKind::UnknownSyscall),
            ("$.syscalls[0].names[2]", ProblemKind::DuplicateName),
            ("$.syscalls[1].action", ProblemKind::UnknownAction),
            ("$.syscalls[1].args[0].index", ProblemKind::ArgIndex),
            ("$.syscalls[1].args[0].op", ProblemKind::UnknownOp),
            ("$.syscalls[2].includes.arches[0]", ProblemKind::UnknownArch),
        ] {
            assert!(got.contains(&want), "{want:?} missing from {got:#?}");
        }
        assert_eq!(got.len(), 8, "{got:#?}");
    }

    #[test]
    fn fallbacks_need_enosys() {
        // clone allowed, clone3 left to the default EPERM: pthread_create fails.
        let p = problems(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
            "syscalls":[{"names":["clone","openat","fstat"],"action":"SCMP_ACT_ALLOW"},
            {"names":["statx"],"action":"SCMP_ACT_KILL_PROCESS"}]}"#,
        );
        let got: Vec<(&str, ProblemKind)> = p.iter().map(|p| (p.path.as_str(), p.kind)).collect();
        assert_eq!(
            got,
            vec![
                ("$.defaultAction", ProblemKind::NoFallback),
                ("$.syscalls[1]", ProblemKind::NoFallback),
                ("$.defaultAction", ProblemKind::NoFallback),
            ],
            "{p:#?}"
        );
        assert!(
            p[0].message
                .contains("clone is allowed but clone3 answers SCMP_ACT_ERRNO (errno 1)")
        );
        // Newer forms answered ENOSYS (by a rule or the default), or allowed.
        for ok in [
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["clone","openat"],"action":"SCMP_ACT_ALLOW"},
               {"names":["clone3","openat2"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrno":"ENOSYS","syscalls":[{"names":["clone"],"action":"SCMP_ACT_ALLOW"}]}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["clone","clone3"],"action":"SCMP_ACT_ALLOW"}]}"#,
            r#"{"defaultAction":"SCMP_ACT_LOG","syscalls":[{"names":["clone"],"action":"SCMP_ACT_ALLOW"}]}"#,
        ] {
            assert_eq!(problems(ok), vec![], "{ok}");
        }
    }

    #[test]
    fn a_profile_without_syscalls_is_refused() {
        for json in [
            r#"{"defaultAction":"SCMP_ACT_ERRNO"}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"action":"SCMP_ACT_ALLOW"}]}"#,
            r#"{"defaultAction":"SCMP_ACT_KILL","syscalls":[{"names":["reboot"],"action":"SCMP_ACT_ERRNO"}]}"#,
        ] {
            let got: Vec<ProblemKind> = problems(json).iter().map(|p| p.kind).collect();
            assert_eq!(got, [ProblemKind::NoSyscall], "{json}");
        }
        for ok in [
            r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#,
            r#"{"defaultAction":"SCMP_ACT_LOG","syscalls":[]}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#,
        ] {
            assert_eq!(problems(ok), vec![], "{ok}");
        }
    }

    #[test]
    fn unknown_architectures_and_unchecked_names() {
        let p = problems(
            r#"{"defaultAction":"SCMP_ACT_ERRNO",
            "archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X87"]}],
            "syscalls":[{"names":["no_such_call"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        let got: Vec<(&str, ProblemKind)> = p.iter().map(|p| (p.path.as_str(), p.kind)).collect();
        // With an architecture that has no table here, names are not judged.
        assert_eq!(
            got,
            vec![("$.archMap[0].subArchitectures[0]", ProblemKind::UnknownArch)]
        );
    }

    #[test]
    fn every_shipped_profile_passes_check() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../profiles"));
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let p = Profile::read(&path).unwrap();
                let problems = check(&p);
                assert!(problems.is_empty(), "{}: {problems:#?}", path.display());
                seen += 1;
            }
        }
        assert!(seen >= 2, "no profiles in {}", dir.display());
    }
}
