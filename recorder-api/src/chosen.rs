//! A seccomp profile someone chose for a container (not the runtime's
//! default, not unconfined), as recorderd keeps and reports it; which
//! runtime said so; whether it denies.

use recorder_profile::profile::{ACT_ALLOW, ACT_LOG, Profile};
use serde::{Deserialize, Serialize};

/// How the runtime says the filter was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChosenBy {
    /// podman's `io.podman.annotations.seccomp` annotation.
    Podman,
    /// CRI-O's `io.kubernetes.cri-o.SeccompProfilePath` annotation.
    Crio,
    /// docker's `HostConfig.SecurityOpt` (`seccomp=<profile JSON>`).
    Docker,
    /// No runtime says, but the filter logs what it does not allow
    /// (`defaultAction` `SCMP_ACT_LOG`): no runtime's default does that.
    ComplainMode,
}

/// A seccomp profile someone chose for a container: not the runtime's
/// default, not unconfined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChosenProfile {
    /// The profile's file, where the runtime tells it (podman, CRI-O).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `sha256:<hex>` of the filter's canonical JSON (the docker model,
    /// serialised compactly): the same filter, the same digest.
    pub digest: String,
    /// The filter's `defaultAction`.
    pub default_action: String,
    pub chosen_by: ChosenBy,
}

impl ChosenProfile {
    /// How reports name it: its path where known, else its digest.
    pub fn name(&self) -> &str {
        self.path.as_deref().unwrap_or(&self.digest)
    }

    /// Whether it denies what it does not allow (ERRNO, KILL*, TRAP):
    /// denied syscalls then never reach the recorder.
    pub fn enforcing(&self) -> bool {
        enforcing(&self.default_action)
    }
}

/// Whether a default action denies (anything but ALLOW and LOG; NOTIFY and
/// TRACE hand the syscall to someone else, who may deny it).
pub fn enforcing(default_action: &str) -> bool {
    !matches!(default_action, ACT_LOG | ACT_ALLOW)
}

/// Whether `policy` denies anything: an enforcing default action, or a
/// rule with one (what recorderd watches for denials).
pub fn denies(policy: &Profile) -> bool {
    enforcing(&policy.default_action) || policy.syscalls.iter().any(|r| enforcing(&r.action))
}
