//! What runtimes accept of a profile pulled from a registry (KEP-6061, as
//! CRI-O and containerd apply it): its OCI runtime-spec JSON at most
//! [`MAX_BYTES`], at most [`MAX_ENTRIES`] entries in `syscalls`, and no
//! user-space notification (`SCMP_ACT_NOTIFY`, `listenerPath`,
//! `listenerMetadata`), which needs an agent on the node. The registry code
//! refuses such a profile; `recorderctl check` warns.

use super::{ACT_NOTIFY, Profile, format};

/// The largest OCI seccomp JSON runtimes pull: 1 MiB.
pub const MAX_BYTES: usize = 1 << 20;
/// The most entries of `syscalls` runtimes accept.
pub const MAX_ENTRIES: usize = 128;

/// One limit a profile breaks, as a sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverLimit(pub String);

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The limits `oci` (the profile as OCI runtime-spec JSON, `text` its
/// bytes) breaks; empty when runtimes take it.
pub fn over_limits(oci: &format::OciSeccomp, text_len: usize) -> Vec<OverLimit> {
    let mut over = Vec::new();
    if text_len > MAX_BYTES {
        over.push(OverLimit(format!(
            "{text_len} bytes as OCI seccomp JSON, over the {MAX_BYTES} (1 MiB) runtimes pull"
        )));
    }
    if oci.syscalls.len() > MAX_ENTRIES {
        over.push(OverLimit(format!(
            "{} syscall entries, over the {MAX_ENTRIES} runtimes accept",
            oci.syscalls.len()
        )));
    }
    if let Some(i) = oci.syscalls.iter().position(|r| r.action == ACT_NOTIFY) {
        over.push(OverLimit(format!(
            "syscalls[{i}] uses SCMP_ACT_NOTIFY, which runtimes refuse from a registry"
        )));
    }
    for (field, set) in [
        ("listenerPath", oci.listener_path.is_some()),
        ("listenerMetadata", oci.listener_metadata.is_some()),
    ] {
        if set {
            over.push(OverLimit(format!(
                "{field} is set, which runtimes refuse from a registry"
            )));
        }
    }
    over
}

/// The limits `profile`, rendered as OCI runtime-spec JSON for this host,
/// breaks (what `recorderctl check` warns about).
pub fn check_limits(profile: &Profile) -> Vec<OverLimit> {
    let (flat, _) = format::flatten(profile, &[]);
    let len = serde_json::to_string_pretty(&flat).map_or(0, |t| t.len() + 1);
    over_limits(&flat, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(entries: usize) -> Profile {
        let rules: Vec<String> = (0..entries)
            .map(|i| {
                format!(
                    r#"{{"names":["read"],"action":"SCMP_ACT_ERRNO","errnoRet":{}}}"#,
                    i + 1
                )
            })
            .collect();
        Profile::from_json(
            std::path::Path::new("t.json"),
            &format!(
                r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{}]}}"#,
                rules.join(",")
            ),
        )
        .unwrap()
    }

    #[test]
    fn entries_up_to_128_pass_129_do_not() {
        assert!(check_limits(&profile(128)).is_empty());
        let over = check_limits(&profile(129));
        assert_eq!(over.len(), 1, "{over:?}");
        assert!(over[0].0.starts_with("129 syscall entries"), "{}", over[0]);
    }

    #[test]
    fn notify_and_listener_fields_are_refused() {
        let p = Profile::from_json(
            std::path::Path::new("t.json"),
            r#"{"defaultAction":"SCMP_ACT_ERRNO","listenerPath":"/run/l.sock",
            "listenerMetadata":"x","syscalls":[{"names":["read"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        )
        .unwrap();
        let over: Vec<String> = check_limits(&p).into_iter().map(|o| o.0).collect();
        assert_eq!(over.len(), 3, "{over:?}");
        assert!(over[0].contains("SCMP_ACT_NOTIFY"));
        assert!(over[1].starts_with("listenerPath"));
        assert!(over[2].starts_with("listenerMetadata"));
    }

    #[test]
    fn size_over_one_mib_is_refused() {
        let flat = format::OciSeccomp {
            default_action: "SCMP_ACT_ERRNO".into(),
            ..Default::default()
        };
        assert!(over_limits(&flat, MAX_BYTES).is_empty());
        assert_eq!(over_limits(&flat, MAX_BYTES + 1).len(), 1);
    }
}
