//! Who a container is, captured when its cgroup is made (the auto-mode
//! mkdir event), not when the manager gets round to it: a short-lived
//! container (`docker run --rm IMG true`) is often gone, with its runtime's
//! record and its OCI bundle, by the time its events reach the manager in
//! turn, and would be filed with no name, image or seccomp policy. The
//! forwarder starts one capture per enrolled root as its event arrives
//! (several at once, bounded), and hands the event on when it is done;
//! the manager's adoption takes what was captured ([`Captures::take`]) and
//! leaves a cgroup whose capture is under way to it.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use tokio::sync::Semaphore;

use super::{
    kernel_task::KernelHandle,
    lookup::{self, Enrolled, Seen},
};
use crate::cgroup::Hierarchy;

/// What was learnt of a container when its cgroup was made.
#[derive(Debug)]
pub struct Captured {
    /// What the cgroup is ([`lookup::enrolled`]).
    pub enrolled: Enrolled,
    /// Its container's facts and seccomp policy, when it is one.
    pub seen: Option<Seen>,
}

#[derive(Debug)]
enum Slot {
    /// A capture under way since then.
    Pending(Instant),
    Done(Instant, Box<Captured>),
}

/// How long a capture is kept for the manager (a capture it never takes,
/// or one whose task died, is dropped then: the manager looks the cgroup
/// up itself).
const KEPT: Duration = Duration::from_secs(60);

/// How many captures run at once: a burst of containers must not take
/// every thread of the blocking pool or every connection to dockerd.
const AT_ONCE: usize = 8;

/// The captures, shared by the forwarder (which makes them) and the
/// manager (which takes them).
#[derive(Clone, Debug)]
pub struct Captures {
    slots: Arc<Mutex<BTreeMap<u64, Slot>>>,
    at_once: Arc<Semaphore>,
}

impl Default for Captures {
    fn default() -> Self {
        Self {
            slots: Arc::default(),
            at_once: Arc::new(Semaphore::new(AT_ONCE)),
        }
    }
}

impl Captures {
    fn slots(&self) -> MutexGuard<'_, BTreeMap<u64, Slot>> {
        // A poisoned lock means a panic mid-insert; the map is still whole.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Captures what cgroup `id` (just made and enrolled) is; returns when
    /// done. `kernel` tells whether it is a recording's root and the leaf
    /// name it saved; sub-cgroups and cgroups that are no container keep
    /// nothing.
    pub async fn capture(&self, kernel: &KernelHandle, hierarchy: &Hierarchy, id: u64) {
        self.slots().insert(id, Slot::Pending(Instant::now()));
        let captured = match self.at_once.acquire().await {
            Ok(_permit) => look_up(kernel, hierarchy, id).await,
            Err(_) => None,
        };
        let mut slots = self.slots();
        match captured {
            Some(c) => slots.insert(id, Slot::Done(Instant::now(), Box::new(c))),
            None => slots.remove(&id),
        };
    }

    /// Whether cgroup `id`'s capture is under way (its adoption waits for
    /// the event the capture hands on).
    pub fn pending(&self, id: u64) -> bool {
        matches!(self.slots().get(&id), Some(Slot::Pending(_)))
    }

    /// What was captured of cgroup `id`, taken.
    pub fn take(&self, id: u64) -> Option<Captured> {
        let mut slots = self.slots();
        match slots.remove(&id) {
            Some(Slot::Done(_, c)) => Some(*c),
            Some(pending) => {
                slots.insert(id, pending);
                None
            }
            None => None,
        }
    }

    /// Drops what was kept longer than [`KEPT`] (on the manager's tick).
    pub fn expire(&self) {
        let now = Instant::now();
        self.slots().retain(|_, s| {
            let (Slot::Pending(at) | Slot::Done(at, _)) = s;
            now.duration_since(*at) < KEPT
        });
    }
}

/// What cgroup `id` is, if it is the root of a recording the kernel
/// started (the kernel saves a leaf name for those alone: a sub-cgroup
/// enrolled with its owner has none) and a container. No read of the
/// whole map: a burst of containers would make one per container.
async fn look_up(kernel: &KernelHandle, hierarchy: &Hierarchy, id: u64) -> Option<Captured> {
    let leaf = kernel.leaf(id).await.ok()??;
    let h = hierarchy.clone();
    let enrolled = lookup::blocking(move || lookup::enrolled(&h, id, &leaf))
        .await
        .ok()?;
    let seen = match &enrolled {
        Enrolled::Container { container, .. } => Some(lookup::seen(container.clone(), None).await),
        Enrolled::Unrecognised { .. } => None,
    };
    Some(Captured { enrolled, seen })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_under_way_is_not_taken_and_expires() {
        let c = Captures::default();
        c.slots().insert(7, Slot::Pending(Instant::now()));
        assert!(c.pending(7));
        assert!(c.take(7).is_none(), "nothing captured yet");
        assert!(c.pending(7), "still under way");
        let long_ago = Instant::now()
            .checked_sub(KEPT + Duration::from_secs(1))
            .expect("a clock that ran a minute");
        c.slots().insert(8, Slot::Pending(long_ago));
        c.expire();
        assert!(c.pending(7) && !c.pending(8));
        assert!(!c.pending(9) && c.take(9).is_none());
    }
}
