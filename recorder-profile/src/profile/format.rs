//! Writers of a [`Profile`] in the formats other tools read:
//!
//! * `docker`: the docker/moby JSON format itself (podman, CRI-O, containerd).
//! * `oci`: the `linux.seccomp` object of an OCI runtime-spec `config.json`
//!   (runc, crun). It has no `archMap`, `includes`, `excludes` or comments:
//!   those are resolved for one host architecture the way podman resolves
//!   them when it hands a profile to the runtime.
//! * `spo`: a `SeccompProfile` custom resource of the Kubernetes Security
//!   Profiles Operator (`security-profiles-operator.x-k8s.io/v1beta1`), YAML.
//! * `kafel`: a Kafel policy for nsjail, for the host's native ABI.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;

use crate::{
    profile::{
        ACT_ALLOW, ACT_ERRNO, ACT_KILL, ACT_KILL_PROCESS, ACT_KILL_THREAD, ACT_LOG, ACT_NOTIFY,
        ACT_TRACE, ACT_TRAP, ArgRule, DefaultAction, Profile, SyscallRule, errno_number,
        host_filter_arch,
    },
    syscalls::Abi,
};

/// Errors of rendering a profile.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error(
        "{0:?} is not a valid Kubernetes object name (lower-case letters, digits, '-' and '.', at most 253 characters, starting and ending with a letter or digit)"
    )]
    InvalidName(String),
    #[error("the kafel format has no equivalent of action {0}")]
    KafelAction(String),
    #[error("cannot serialise the profile: {0}")]
    Serialize(String),
}

/// The output formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Format {
    /// docker/moby seccomp JSON (what podman, docker, CRI-O and containerd read).
    #[default]
    Docker,
    /// The `linux.seccomp` object of an OCI runtime-spec config.json.
    Oci,
    /// A Security Profiles Operator SeccompProfile custom resource (YAML).
    Spo,
    /// A Kafel policy for nsjail.
    Kafel,
}

/// How to render a profile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FormatOptions {
    pub format: Format,
    /// Replaces the profile's default action when set.
    pub default_action: Option<DefaultAction>,
    /// The errno of `--default-action errno` (EPERM when `None`).
    pub errno_ret: Option<u32>,
    /// `metadata.name` of the `spo` resource and the `kafel` policy name.
    pub name: Option<String>,
    /// `metadata.namespace` of the `spo` resource.
    pub namespace: Option<String>,
    /// Capabilities the container will have, for rules with
    /// `includes.caps` / `excludes.caps` in the flattened formats.
    pub caps: Vec<String>,
}

/// A rendered profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// The text to write, ending in a newline.
    pub text: String,
    /// What the format could not express and was dropped or widened.
    pub notes: Vec<String>,
}

/// The default name of an `spo` resource or `kafel` policy.
pub const DEFAULT_NAME: &str = "recorded";

/// Renders `profile` as `opts` asks.
pub fn render(profile: &Profile, opts: &FormatOptions) -> Result<Rendered, FormatError> {
    let mut profile = profile.clone();
    if let Some(action) = opts.default_action {
        profile.set_default_action(action, opts.errno_ret);
    }
    match opts.format {
        Format::Docker => Ok(Rendered {
            text: profile.to_json(),
            notes: Vec::new(),
        }),
        Format::Oci => {
            let (flat, notes) = flatten(&profile, &opts.caps);
            let mut text = serde_json::to_string_pretty(&flat)
                .map_err(|e| FormatError::Serialize(e.to_string()))?;
            text.push('\n');
            Ok(Rendered { text, notes })
        }
        Format::Spo => spo(&profile, opts),
        Format::Kafel => kafel(&profile, opts),
    }
}

/// The OCI runtime-spec `linux.seccomp` object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciSeccomp {
    pub default_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_metadata: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syscalls: Vec<OciSyscall>,
}

/// One rule of [`OciSeccomp`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciSyscall {
    pub names: Vec<String>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<ArgRule>,
}

/// Whether a rule applies on a host of architecture `host` (libseccomp-golang
/// naming) to a container with capabilities `caps`, as podman decides it.
/// Capabilities are matched conservatively: a rule that needs a capability
/// applies only when it was given.
fn applies(rule: &SyscallRule, host: &str, caps: &[String]) -> Result<(), String> {
    if rule.excludes.arches.iter().any(|a| a == host) {
        return Err(format!("excluded on {host}"));
    }
    if let Some(cap) = rule.excludes.caps.iter().find(|c| caps.contains(c)) {
        return Err(format!("excluded for containers with {cap}"));
    }
    if !rule.includes.arches.is_empty() && !rule.includes.arches.iter().any(|a| a == host) {
        return Err(format!(
            "only for {} hosts, not {host}",
            rule.includes.arches.join(", ")
        ));
    }
    if let Some(cap) = rule.includes.caps.iter().find(|c| !caps.contains(c)) {
        return Err(format!(
            "needs {cap} (pass --cap {cap} if the container has it)"
        ));
    }
    Ok(())
}

fn describe(rule: &SyscallRule, index: usize) -> String {
    let names: Vec<&str> = rule.all_names().take(3).collect();
    let more = if rule.all_names().count() > 3 {
        ", ..."
    } else {
        ""
    };
    format!("rule {index} ({}{more})", names.join(", "))
}

/// Resolves what the OCI format cannot say, for this host: `archMap` becomes
/// the host architecture's entry; rules whose `includes` / `excludes` do not
/// hold here are dropped; comments go; `name` joins `names`.
pub fn flatten(profile: &Profile, caps: &[String]) -> (OciSeccomp, Vec<String>) {
    let mut notes = Vec::new();
    let host = host_filter_arch();
    let architectures = if profile.arch_map.is_empty() {
        profile.architectures.clone()
    } else {
        let native = Abi::native().scmp_arch();
        match profile.arch_map.iter().find(|m| m.architecture == native) {
            Some(m) => std::iter::once(m.architecture.clone())
                .chain(m.sub_architectures.iter().cloned())
                .collect(),
            None => {
                notes.push(format!("archMap has no entry for {native}; the filter covers the native architecture only"));
                Vec::new()
            }
        }
    };
    let mut syscalls = Vec::new();
    for (i, rule) in profile.syscalls.iter().enumerate() {
        if let Err(why) = applies(rule, host, caps) {
            notes.push(format!("{} dropped: {why}", describe(rule, i)));
            continue;
        }
        if rule.includes.min_kernel.is_some() {
            notes.push(format!(
                "{}: minKernel is not checked; runtimes skip names the kernel lacks",
                describe(rule, i)
            ));
        }
        let names: Vec<String> = rule.all_names().map(str::to_owned).collect();
        if names.is_empty() {
            continue;
        }
        syscalls.push(OciSyscall {
            names,
            action: rule.action.clone(),
            errno_ret: rule
                .errno_ret
                .or_else(|| rule.errno.as_deref().and_then(errno_number)),
            args: rule.args.clone(),
        });
    }
    let flat = OciSeccomp {
        default_action: profile.default_action.clone(),
        default_errno_ret: profile
            .default_errno_ret
            .or_else(|| profile.default_errno.as_deref().and_then(errno_number)),
        architectures,
        flags: profile.flags.clone(),
        listener_path: profile.listener_path.clone(),
        listener_metadata: profile.listener_metadata.clone(),
        syscalls,
    };
    (flat, notes)
}

/// A Kubernetes object name (RFC 1123 subdomain).
fn valid_k8s_name(name: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    !name.is_empty()
        && name.len() <= 253
        && name.chars().all(ok_char)
        && alnum(name.chars().next())
        && alnum(name.chars().last())
}

/// The Security Profiles Operator resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpoProfile {
    pub api_version: String,
    pub kind: String,
    pub metadata: SpoMetadata,
    pub spec: SpoSpec,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SpoMetadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `spec` of a `SeccompProfile` (the operator's v1beta1 API).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpoSpec {
    pub default_action: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_metadata: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syscalls: Vec<SpoSyscall>,
}

/// A rule of [`SpoSpec`]; the operator's `errnoRet` is a string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpoSyscall {
    pub names: Vec<String>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<ArgRule>,
}

/// A valid Kubernetes object name (and kafel identifier) made from `s`,
/// e.g. an image reference: lower-cased, every run of other characters
/// (`/`, `:`, `@`, `.`, `_`) one `-`; [`DEFAULT_NAME`] when nothing is left.
pub fn name_from(s: &str) -> String {
    let mut name = String::new();
    for c in s.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    name.truncate(253);
    let name = name.trim_end_matches('-');
    if name.is_empty() {
        DEFAULT_NAME.to_owned()
    } else {
        name.to_owned()
    }
}

/// The SPO API group and version.
pub const SPO_API_VERSION: &str = "security-profiles-operator.x-k8s.io/v1beta1";

fn spo(profile: &Profile, opts: &FormatOptions) -> Result<Rendered, FormatError> {
    let name = opts.name.clone().unwrap_or_else(|| DEFAULT_NAME.to_owned());
    if !valid_k8s_name(&name) {
        return Err(FormatError::InvalidName(name));
    }
    if let Some(ns) = &opts.namespace
        && (!valid_k8s_name(ns) || ns.contains('.') || ns.len() > 63)
    {
        return Err(FormatError::InvalidName(ns.clone()));
    }
    let (flat, mut notes) = flatten(profile, &opts.caps);
    if let Some(errno) = flat.default_errno_ret
        && errno != crate::profile::EPERM
    {
        notes.push(format!(
            "the SeccompProfile API has no defaultErrnoRet; the runtime's default (EPERM) replaces {errno}"
        ));
    }
    let spec = SpoSpec {
        default_action: flat.default_action,
        architectures: flat.architectures,
        flags: flat.flags,
        listener_path: flat.listener_path,
        listener_metadata: flat.listener_metadata,
        syscalls: flat
            .syscalls
            .into_iter()
            .map(|s| SpoSyscall {
                names: s.names,
                action: s.action,
                errno_ret: s.errno_ret.map(|e| e.to_string()),
                args: s.args,
            })
            .collect(),
    };
    let resource = SpoProfile {
        api_version: SPO_API_VERSION.to_owned(),
        kind: "SeccompProfile".to_owned(),
        metadata: SpoMetadata {
            name,
            namespace: opts.namespace.clone(),
            annotations: BTreeMap::new(),
        },
        spec,
    };
    let text =
        serde_norway::to_string(&resource).map_err(|e| FormatError::Serialize(e.to_string()))?;
    Ok(Rendered { text, notes })
}

/// The Kafel name of a libseccomp syscall name, where the two differ (Kafel
/// names syscalls after the kernel's entry points on x86_64).
fn kafel_name(abi: Abi, name: &str) -> Option<&'static str> {
    if abi != Abi::X86_64 {
        return None;
    }
    Some(match name {
        "stat" => "newstat",
        "fstat" => "newfstat",
        "lstat" => "newlstat",
        "uname" => "newuname",
        "sendfile" => "sendfile64",
        "_sysctl" => "sysctl",
        "umount2" => "umount",
        _ => return None,
    })
}

/// Names that Kafel's x86_64 table lacks: written as `SYSCALL[nr]`.
fn kafel_lacks(abi: Abi, name: &str) -> bool {
    abi == Abi::X86_64 && matches!(name, "uprobe" | "uretprobe")
}

fn kafel_action(action: &str, errno_ret: Option<u32>) -> Result<String, FormatError> {
    Ok(match action {
        ACT_ALLOW => "ALLOW".to_owned(),
        ACT_LOG => "LOG".to_owned(),
        ACT_KILL | ACT_KILL_THREAD => "KILL".to_owned(),
        ACT_KILL_PROCESS => "KILL_PROCESS".to_owned(),
        ACT_NOTIFY => "USER_NOTIF".to_owned(),
        ACT_ERRNO => format!("ERRNO({})", errno_ret.unwrap_or(crate::profile::EPERM)),
        ACT_TRAP => format!("TRAP({})", errno_ret.unwrap_or(0)),
        ACT_TRACE => format!("TRACE({})", errno_ret.unwrap_or(0)),
        other => return Err(FormatError::KafelAction(other.to_owned())),
    })
}

/// One argument condition as a Kafel expression over arguments `a0`..`a5`.
fn kafel_condition(arg: &ArgRule) -> String {
    let a = format!("a{}", arg.index);
    let v = format!("{:#x}", arg.value);
    match arg.op.as_str() {
        "SCMP_CMP_NE" => format!("{a} != {v}"),
        "SCMP_CMP_LT" => format!("{a} < {v}"),
        "SCMP_CMP_LE" => format!("{a} <= {v}"),
        "SCMP_CMP_GE" => format!("{a} >= {v}"),
        "SCMP_CMP_GT" => format!("{a} > {v}"),
        "SCMP_CMP_MASKED_EQ" => format!("({a} & {v}) == {:#x}", arg.value_two),
        // SCMP_CMP_EQ, and anything `check` would have reported.
        _ => format!("{a} == {v}"),
    }
}

/// A Kafel policy identifier from a resource name.
fn kafel_ident(name: &str) -> String {
    let mut id: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !id.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        id.insert(0, '_');
    }
    id
}

fn kafel(profile: &Profile, opts: &FormatOptions) -> Result<Rendered, FormatError> {
    let abi = Abi::native();
    let (flat, mut notes) = flatten(profile, &opts.caps);
    if flat.architectures.iter().any(|a| a != abi.scmp_arch()) {
        notes.push(format!(
            "kafel policies filter one architecture; only {} is kept",
            abi.scmp_arch()
        ));
    }
    if !flat.flags.is_empty() || flat.listener_path.is_some() {
        notes.push("kafel has no flags or listener; they are dropped".to_owned());
    }
    // action -> syscall -> (highest argument used, alternatives: each a
    // conjunction, empty = always).
    type Alternatives = (Option<u32>, Vec<Vec<String>>);
    let mut blocks: Vec<(String, BTreeMap<String, Alternatives>)> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    for rule in &flat.syscalls {
        let action = kafel_action(&rule.action, rule.errno_ret)?;
        let conj: Vec<String> = rule.args.iter().map(kafel_condition).collect();
        let max_arg = rule.args.iter().map(|a| a.index.min(5)).max();
        for name in &rule.names {
            let Some(nr) = abi.number(name) else {
                if !missing.contains(name) {
                    missing.push(name.clone());
                }
                continue;
            };
            let id = if kafel_lacks(abi, name) {
                format!("SYSCALL[{nr}]")
            } else {
                kafel_name(abi, name).unwrap_or(name).to_owned()
            };
            let index = match blocks.iter().position(|(a, _)| *a == action) {
                Some(i) => i,
                None => {
                    blocks.push((action.clone(), BTreeMap::new()));
                    blocks.len() - 1
                }
            };
            let entry = blocks[index].1.entry(id).or_default();
            entry.0 = entry.0.max(max_arg);
            entry.1.push(conj.clone());
        }
    }
    if !missing.is_empty() {
        notes.push(format!(
            "{} names are not {} syscalls and are left out: {}",
            missing.len(),
            abi.scmp_arch(),
            missing.join(", ")
        ));
    }
    let policy = kafel_ident(opts.name.as_deref().unwrap_or(DEFAULT_NAME));
    let default = kafel_action(&flat.default_action, flat.default_errno_ret)?;
    let mut text = String::new();
    _ = writeln!(text, "// Generated by recorder {}.", crate::VERSION);
    _ = writeln!(text, "POLICY {policy} {{");
    let mut first_block = true;
    for (action, syscalls) in &blocks {
        if !first_block {
            text.push_str(",\n");
        }
        first_block = false;
        _ = writeln!(text, "  {action} {{");
        let mut entries = Vec::new();
        for (id, (max_arg, alternatives)) in syscalls {
            match max_arg {
                // An unconditional rule wins over conditional ones.
                _ if alternatives.iter().any(Vec::is_empty) => entries.push(format!("    {id}")),
                Some(max) => {
                    let params: Vec<String> = (0..=*max).map(|i| format!("a{i}")).collect();
                    let ors: Vec<String> = alternatives
                        .iter()
                        .map(|c| format!("({})", c.join(" && ")))
                        .collect();
                    entries.push(format!(
                        "    {id}({}) {{ {} }}",
                        params.join(", "),
                        ors.join(" || ")
                    ));
                }
                None => entries.push(format!("    {id}")),
            }
        }
        text.push_str(&entries.join(",\n"));
        text.push_str("\n  }");
    }
    text.push_str("\n}\n");
    _ = writeln!(text, "USE {policy} DEFAULT {default}");
    Ok(Rendered { text, notes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_image_references_are_valid() {
        for (image, name) in [
            ("registry.example/app:1", "registry-example-app-1"),
            (
                "docker.io/library/Nginx@sha256:ab",
                "docker-io-library-nginx-sha256-ab",
            ),
            ("__x__", "x"),
            ("/:@", DEFAULT_NAME),
        ] {
            assert_eq!(name_from(image), name);
            assert!(valid_k8s_name(&name_from(image)), "{image}");
        }
        assert!(valid_k8s_name(&name_from(&"a/".repeat(200))));
    }
    use crate::profile::{Filter, Recorded};

    fn sample() -> Profile {
        let mut rec = Recorded::default();
        rec.add(Abi::native(), ["read", "write", "fstat", "uname"]);
        let mut p = Profile::from_recorded(&rec);
        p.syscalls.push(SyscallRule {
            names: vec!["socket".into()],
            action: ACT_ALLOW.into(),
            args: vec![ArgRule {
                index: 0,
                value: 1,
                value_two: 0,
                op: "SCMP_CMP_EQ".into(),
            }],
            ..SyscallRule::default()
        });
        p.syscalls.push(SyscallRule {
            names: vec!["mount".into()],
            action: ACT_ALLOW.into(),
            includes: Filter {
                caps: vec!["CAP_SYS_ADMIN".into()],
                ..Filter::default()
            },
            ..SyscallRule::default()
        });
        p
    }

    #[test]
    fn oci_drops_rules_needing_caps_unless_given() {
        let p = sample();
        let r = render(
            &p,
            &FormatOptions {
                format: Format::Oci,
                ..Default::default()
            },
        )
        .unwrap();
        let oci: OciSeccomp = serde_json::from_str(&r.text).unwrap();
        assert!(
            !oci.syscalls
                .iter()
                .any(|s| s.names.contains(&"mount".to_owned()))
        );
        assert!(
            r.notes.iter().any(|n| n.contains("CAP_SYS_ADMIN")),
            "{:?}",
            r.notes
        );
        let r = render(
            &p,
            &FormatOptions {
                format: Format::Oci,
                caps: vec!["CAP_SYS_ADMIN".into()],
                ..Default::default()
            },
        )
        .unwrap();
        let oci: OciSeccomp = serde_json::from_str(&r.text).unwrap();
        assert!(
            oci.syscalls
                .iter()
                .any(|s| s.names.contains(&"mount".to_owned()))
        );
        let v: serde_json::Value = serde_json::from_str(&r.text).unwrap();
        assert!(v.get("archMap").is_none());
        assert!(
            v["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s.get("includes").is_none())
        );
    }

    #[test]
    fn default_action_is_replaced() {
        let p = sample();
        let r = render(
            &p,
            &FormatOptions {
                default_action: Some(DefaultAction::Log),
                ..Default::default()
            },
        )
        .unwrap();
        let back: Profile = serde_json::from_str(&r.text).unwrap();
        assert_eq!(back.default_action, "SCMP_ACT_LOG");
        assert_eq!(back.default_errno_ret, None);
        let r = render(
            &p,
            &FormatOptions {
                default_action: Some(DefaultAction::Errno),
                errno_ret: Some(38),
                ..Default::default()
            },
        )
        .unwrap();
        let back: Profile = serde_json::from_str(&r.text).unwrap();
        assert_eq!(back.default_errno_ret, Some(38));
    }

    #[test]
    fn complain_mode_drops_carried_denials_but_enosys() {
        use crate::profile::{ACT_ERRNO, CARRIED_COMMENT, ENOSYS, EPERM, SyscallRule};
        let carried = |names: &[&str], errno| SyscallRule {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            action: ACT_ERRNO.into(),
            errno_ret: Some(errno),
            comment: Some(CARRIED_COMMENT.into()),
            ..SyscallRule::default()
        };
        let mut p = sample();
        p.syscalls.push(carried(&["chmod", "reboot"], EPERM));
        p.syscalls.push(carried(&["clone3"], ENOSYS));
        let mut own = carried(&["ptrace"], EPERM);
        own.comment = None;
        p.syscalls.push(own);
        let log = |p: &Profile| {
            let r = render(
                p,
                &FormatOptions {
                    default_action: Some(DefaultAction::Log),
                    ..Default::default()
                },
            )
            .unwrap();
            serde_json::from_str::<Profile>(&r.text).unwrap()
        };
        let names = |p: &Profile| -> Vec<String> {
            p.syscalls
                .iter()
                .filter(|r| r.action == ACT_ERRNO)
                .flat_map(|r| r.names.clone())
                .collect()
        };
        // The carried EPERM goes (logged now); ENOSYS and the profile's
        // own rules stay.
        assert_eq!(names(&log(&p)), ["clone3", "ptrace"]);
        // Another default action keeps them all.
        let r = render(
            &p,
            &FormatOptions {
                default_action: Some(DefaultAction::Errno),
                ..Default::default()
            },
        )
        .unwrap();
        let back: Profile = serde_json::from_str(&r.text).unwrap();
        assert_eq!(names(&back).len(), 4);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn kafel_policy_shape() {
        let r = render(
            &sample(),
            &FormatOptions {
                format: Format::Kafel,
                name: Some("my-app".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let t = &r.text;
        assert!(t.contains("POLICY my_app {"), "{t}");
        assert!(t.contains("    newfstat,"), "{t}");
        assert!(t.contains("    newuname"), "{t}");
        assert!(t.contains("socket(a0) { (a0 == 0x1) }"), "{t}");
        assert!(!t.contains("mount"), "{t}");
        assert!(t.trim_end().ends_with("USE my_app DEFAULT ERRNO(1)"), "{t}");
    }

    #[test]
    fn spo_rejects_bad_names() {
        let err = render(
            &sample(),
            &FormatOptions {
                format: Format::Spo,
                name: Some("Bad_Name".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(matches!(err, FormatError::InvalidName(_)));
    }
}
