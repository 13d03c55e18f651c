//! The docker/moby seccomp JSON model: [`Profile`] and its rules, read and
//! written as JSON. Unknown fields are kept.

use std::{collections::BTreeMap, fs, path::Path};

use serde::{Deserialize, Serialize};

use super::{ACT_ALLOW, ProfileError};

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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    pub(super) fn conditions_key(&self) -> ConditionsKey {
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

pub(super) type ConditionsKey = (
    String,
    Option<u32>,
    Option<String>,
    Vec<ArgRule>,
    Filter,
    Filter,
);

pub(super) fn sorted_args(args: &[ArgRule]) -> Vec<ArgRule> {
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

    pub(super) fn normalized(&self) -> Self {
        let mut f = self.clone();
        f.arches.sort();
        f.arches.dedup();
        f.caps.sort();
        f.caps.dedup();
        f
    }
}

impl Profile {
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
            err: source,
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
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn go_nulls_read_as_empty() {
        // containers/common writes nil slices as null.
        let text = r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrno":"ENOSYS","architectures":null,
            "syscalls":[{"names":["socket"],"action":"SCMP_ACT_ALLOW","args":null,"comment":"",
            "includes":{"caps":null},"excludes":null,"errno":"EPERM"}]}"#;
        let p = Profile::from_json(Path::new("n.json"), text).unwrap();
        assert!(p.syscalls[0].args.is_empty() && p.architectures.is_empty());
        assert_eq!(p.syscalls[0].errno.as_deref(), Some("EPERM"));
    }

    #[test]
    fn parse_error_has_location() {
        let err =
            Profile::from_json(Path::new("x.json"), "{\n  \"defaultAction\": 3\n}").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("x.json: line 2"), "{msg}");
    }
}
