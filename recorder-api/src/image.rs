//! What `recorderctl images` shows of an image profile, and what its row
//! is keyed by.

use serde::{Deserialize, Serialize};

/// What an image row is keyed by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyedBy {
    /// The image id the runtime told: every reference of it feeds one row.
    Id,
    /// The normalised reference (no id known).
    #[default]
    Reference,
    /// The container's name (no image known, e.g. a containerd task
    /// without one).
    Name,
    /// The root filesystem's path (no image known: podman or runc
    /// `--rootfs`), so that runs under different names share a row.
    Rootfs,
}

/// What `recorderctl images` shows of an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub image: String,
    pub key: String,
    #[serde(default)]
    pub keyed_by: KeyedBy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The references seen, the most recent last.
    #[serde(default)]
    pub references: Vec<String>,
    /// Its label in the metrics and `images/<file>.json`.
    #[serde(default)]
    pub label: String,
    pub runs: u64,
    /// Of `runs`, those that failed (their workload never started, or
    /// exited non-zero within `ready_min_run_secs`): they add nothing to
    /// the profile and do not count toward `ready`.
    #[serde(default)]
    pub failed_runs: u64,
    /// The size of the union (distinct allowed names, over every ABI).
    pub syscalls: usize,
    pub first_seen: u64,
    pub last_seen: u64,
    pub last_new: u64,
    pub runs_since_last_new: u64,
    /// The syscalls that were new when the union last grew.
    #[serde(default)]
    pub last_new_syscalls: Vec<String>,
    /// Syscalls the recording-time policy denied while recorded (and tasks
    /// it killed), summed over the runs watched for denials: those under
    /// an enforcing chosen profile (which feed the image only with
    /// `skip_chosen_profile = false`); `None` when no run was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied_while_recorded: Option<u64>,
    pub ready: bool,
    /// What the ready rule still waits for, each as what there is and
    /// what it needs (`2/5 runs`, `1/3 runs quiet`, `3h/1d quiet`), and
    /// what was new (`new: mkdir, symlink`); empty when ready.
    #[serde(default)]
    pub not_ready: Vec<String>,
}

/// The ready rule's thresholds, as recorderd tells them (`status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyRule {
    pub min_runs: u64,
    pub quiet_runs: u64,
    pub quiet_secs: u64,
}
