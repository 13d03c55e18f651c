//! `recorderctl diff A B`: what B allows that A does not, and the reverse,
//! per architecture of the filter.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
};

use crate::{
    profile::{Profile, SyscallRule},
    syscalls::Abi,
};

/// How a profile treats one syscall on one architecture: the rules that
/// name it, each as "ACTION [if CONDITIONS] [FILTERS]".
type Treatment = BTreeSet<String>;

/// The differences between two profiles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProfileDiff {
    /// `(a, b)` default actions, when they differ.
    pub default_action: Option<(String, String)>,
    /// Per architecture (libseccomp name), in order of first appearance.
    pub arches: Vec<(String, ArchDiff)>,
}

/// The differences on one architecture.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchDiff {
    /// Names B has and A has not.
    pub added: Vec<String>,
    /// Names A has and B has not.
    pub removed: Vec<String>,
    /// Names both have, with different actions or conditions: `(name, a, b)`.
    pub changed: Vec<(String, String, String)>,
}

impl ArchDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl ProfileDiff {
    /// Whether the profiles are the same, as filters.
    pub fn is_empty(&self) -> bool {
        self.default_action.is_none() && self.arches.iter().all(|(_, d)| d.is_empty())
    }
}

fn describe(rule: &SyscallRule) -> String {
    let mut s = rule.action.clone();
    if let Some(e) = rule.errno_ret {
        s.push_str(&format!("({e})"));
    }
    if !rule.args.is_empty() {
        let conds: Vec<String> = rule
            .args
            .iter()
            .map(|a| {
                let op = a.op.trim_start_matches("SCMP_CMP_");
                if a.op == "SCMP_CMP_MASKED_EQ" {
                    format!("arg{} & {:#x} == {:#x}", a.index, a.value, a.value_two)
                } else {
                    format!("arg{} {op} {:#x}", a.index, a.value)
                }
            })
            .collect();
        s.push_str(&format!(" if {}", conds.join(" && ")));
    }
    for (which, f) in [("includes", &rule.includes), ("excludes", &rule.excludes)] {
        if !f.is_empty() {
            let mut parts = Vec::new();
            if !f.arches.is_empty() {
                parts.push(format!("arches {}", f.arches.join(",")));
            }
            if !f.caps.is_empty() {
                parts.push(format!("caps {}", f.caps.join(",")));
            }
            if let Some(k) = &f.min_kernel {
                parts.push(format!("minKernel {k}"));
            }
            s.push_str(&format!(" [{which} {}]", parts.join(" ")));
        }
    }
    s
}

/// name -> treatment, for syscalls of `arch` (names the architecture's table
/// lacks are left out when the recorder has a table for it).
fn treatments(profile: &Profile, arch: &str) -> BTreeMap<String, Treatment> {
    let abi = Abi::from_scmp_arch(arch);
    let mut out: BTreeMap<String, Treatment> = BTreeMap::new();
    for rule in &profile.syscalls {
        let d = describe(rule);
        for name in rule.all_names() {
            if abi.is_some_and(|abi| abi.number(name).is_none()) {
                continue;
            }
            out.entry(name.to_owned()).or_default().insert(d.clone());
        }
    }
    out
}

/// Compares two profiles.
pub fn diff(a: &Profile, b: &Profile) -> ProfileDiff {
    let mut result = ProfileDiff::default();
    let da = (a.default_action.as_str(), a.default_errno_ret);
    let db = (b.default_action.as_str(), b.default_errno_ret);
    if da != db {
        let show = |(action, errno): (&str, Option<u32>)| match errno {
            Some(e) => format!("{action}({e})"),
            None => action.to_owned(),
        };
        result.default_action = Some((show(da), show(db)));
    }
    let mut arches = a.arches();
    for arch in b.arches() {
        if !arches.contains(&arch) {
            arches.push(arch);
        }
    }
    let a_arches = a.arches();
    let b_arches = b.arches();
    for arch in arches {
        let empty = BTreeMap::new();
        let ta = if a_arches.contains(&arch) {
            treatments(a, &arch)
        } else {
            empty.clone()
        };
        let tb = if b_arches.contains(&arch) {
            treatments(b, &arch)
        } else {
            empty
        };
        let mut d = ArchDiff::default();
        for (name, t) in &tb {
            match ta.get(name) {
                None => d.added.push(name.clone()),
                Some(old) if old != t => d.changed.push((
                    name.clone(),
                    old.iter().cloned().collect::<Vec<_>>().join(" | "),
                    t.iter().cloned().collect::<Vec<_>>().join(" | "),
                )),
                Some(_) => {}
            }
        }
        d.removed = ta
            .keys()
            .filter(|n| !tb.contains_key(*n))
            .cloned()
            .collect();
        result.arches.push((arch, d));
    }
    result
}

impl fmt::Display for ProfileDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((a, b)) = &self.default_action {
            writeln!(f, "defaultAction: {a} -> {b}")?;
        }
        // Architectures with the same differences share one section (a
        // recorded profile lists x86_64, x86 and x32 with the same names).
        for (i, (arch, d)) in self.arches.iter().enumerate() {
            if d.is_empty() || self.arches[..i].iter().any(|(_, e)| e == d) {
                continue;
            }
            let same: Vec<&str> = self.arches[i + 1..]
                .iter()
                .filter(|(_, e)| e == d)
                .map(|(a, _)| a.as_str())
                .collect();
            writeln!(f, "{}:", [&[arch.as_str()][..], &same].concat().join(", "))?;
            for n in &d.added {
                writeln!(f, "+ {n}")?;
            }
            for n in &d.removed {
                writeln!(f, "- {n}")?;
            }
            for (n, a, b) in &d.changed {
                writeln!(f, "~ {n}: {a} -> {b}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn p(json: &str) -> Profile {
        Profile::from_json(Path::new("t.json"), json).unwrap()
    }

    #[test]
    fn added_removed_changed_per_arch() {
        let a = p(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
            "syscalls":[{"names":["read","write","socket"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        let b = p(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
            "syscalls":[{"names":["read","getuid32"],"action":"SCMP_ACT_ALLOW"},
            {"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"valueTwo":0,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        let d = diff(&a, &b);
        assert!(!d.is_empty());
        let x86_64 = &d.arches[0];
        assert_eq!(x86_64.0, "SCMP_ARCH_X86_64");
        assert_eq!(
            x86_64.1.added,
            Vec::<String>::new(),
            "getuid32 is not an x86_64 syscall"
        );
        assert_eq!(x86_64.1.removed, vec!["write"]);
        assert_eq!(x86_64.1.changed[0].0, "socket");
        let x86 = &d.arches[1];
        assert_eq!(x86.1.added, vec!["getuid32"]);
        let text = d.to_string();
        assert!(text.contains("SCMP_ARCH_X86:\n+ getuid32\n"), "{text}");
        assert!(diff(&a, &a).is_empty());
    }

    #[test]
    fn architectures_with_the_same_differences_share_a_section() {
        let arches = r#""architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"]"#;
        let a = p(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ERRNO",{arches},"syscalls":[{{"names":["read"],"action":"SCMP_ACT_ALLOW"}}]}}"#
        ));
        let b = p(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ERRNO",{arches},"syscalls":[{{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}}]}}"#
        ));
        assert_eq!(
            diff(&a, &b).to_string(),
            "SCMP_ARCH_X86_64, SCMP_ARCH_X86, SCMP_ARCH_X32:\n+ write\n"
        );
    }
}
