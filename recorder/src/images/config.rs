//! The `[images]` table of recorderd.toml: when an image profile is ready
//! to enforce, how long per-container files and image rows are kept, and
//! which runs feed image profiles. `config.rs` holds it as `images`.

use serde::{Deserialize, Serialize};

/// The `[images]` table: when an image profile is ready to enforce, how
/// many per-container files are kept, and which runs feed image profiles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImagesConfig {
    /// Ready needs at least this many recorded runs...
    pub ready_min_runs: u64,
    /// ...and no new syscall in the last this many runs...
    pub ready_quiet_runs: u64,
    /// ...and none for this many seconds. A run counts toward these only
    /// if its workload started (the kernel saw its exec after the
    /// runtime's init) and did not exit non-zero (or die of a signal
    /// other than TERM, INT, HUP, KILL) within `ready_min_run_secs` of
    /// that exec; a failed run adds nothing to the image profile.
    pub ready_quiet_secs: u64,
    /// See `ready_quiet_secs`.
    pub ready_min_run_secs: u64,
    /// Per-container profile files kept per image (the oldest go first);
    /// 0 keeps them all.
    pub keep_per_image: usize,
    /// Per-container profile files older than this many days are removed;
    /// 0 keeps them forever.
    pub keep_days: u64,
    /// Leave containers that run under a chosen (non-default) seccomp
    /// profile out of the image profiles; they are still recorded.
    pub skip_chosen_profile: bool,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        Self {
            ready_min_runs: 5,
            ready_quiet_runs: 3,
            ready_quiet_secs: 86_400,
            ready_min_run_secs: 10,
            keep_per_image: 20,
            keep_days: 30,
            skip_chosen_profile: true,
        }
    }
}

impl ImagesConfig {
    /// The retention's age cutoff at `now`: files written and rows last
    /// seen before it go; 0 (`keep_days = 0`) keeps everything.
    pub fn cutoff(&self, now: u64) -> u64 {
        if self.keep_days == 0 {
            0
        } else {
            now.saturating_sub(self.keep_days.saturating_mul(86_400))
        }
    }
}
