//! Who a container is, captured when its cgroup is made (the auto-mode
//! mkdir event), not when the manager gets round to it: a short-lived
//! container (`docker run --rm IMG true`) is often gone, with its runtime's
//! record and its OCI bundle, by the time its events reach the manager in
//! turn, and would be filed with no name, image or seccomp policy. The
//! forwarder starts one capture per enrolled root as its event arrives
//! (several at once, bounded), and hands the event on when it is done;
//! the manager's adoption takes what was captured ([`Captures::take`]) and
//! leaves a cgroup whose capture is under way to it. The look-ups run on a
//! few threads of their own, started at the first capture, so a burst of
//! containers neither waits behind the manager nor grows the runtime's
//! blocking pool (and the daemon's memory) with it.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard, OnceLock, mpsc},
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

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

/// How many captures run at once (the capture threads): enough that a
/// burst of short-lived containers is looked up before they are gone,
/// few enough that neither the daemon's threads nor dockerd's connections
/// grow with the burst.
const AT_ONCE: usize = 8;

/// A look-up for a capture thread.
type Job = Box<dyn FnOnce() + Send>;

/// The captures, shared by the forwarder (which makes them) and the
/// manager (which takes them).
#[derive(Clone, Debug, Default)]
pub struct Captures {
    slots: Arc<Mutex<BTreeMap<u64, Slot>>>,
    /// The capture threads' queue, made at the first capture.
    threads: Arc<OnceLock<Mutex<mpsc::Sender<Job>>>>,
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
        // Roots alone: the kernel saves a leaf name for those (a sub-cgroup
        // enrolled with its owner has none). No read of the whole map.
        let captured = match kernel.leaf(id).await {
            Ok(Some(leaf)) => {
                let (done, answer) = oneshot::channel();
                let (h, runtime) = (hierarchy.clone(), tokio::runtime::Handle::current());
                self.run(Box::new(move || {
                    _ = done.send(look_up(&runtime, &h, id, &leaf));
                }));
                answer.await.ok()
            }
            _ => None,
        };
        let mut slots = self.slots();
        match captured {
            Some(c) => slots.insert(id, Slot::Done(Instant::now(), Box::new(c))),
            None => slots.remove(&id),
        };
    }

    /// Runs `job` on a capture thread (started at the first job).
    fn run(&self, job: Job) {
        let queue = self.threads.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            let rx = Arc::new(Mutex::new(rx));
            for i in 0..AT_ONCE {
                let rx = Arc::clone(&rx);
                let spawned = std::thread::Builder::new()
                    .name(format!("capture-{i}"))
                    .spawn(move || {
                        loop {
                            // A poisoned lock: another thread panicked
                            // while taking a job; the queue is whole.
                            let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                            match next {
                                Ok(job) => job(),
                                Err(_) => return,
                            }
                        }
                    });
                if let Err(e) = spawned {
                    log::error!("capture thread: {e}");
                }
            }
            Mutex::new(tx)
        });
        let sent = queue.lock().unwrap_or_else(|e| e.into_inner()).send(job);
        if sent.is_err() {
            log::error!("no capture thread: the container is looked up when adopted");
        }
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

/// What cgroup `id`, a root the kernel enrolled as `leaf`, is (blocking,
/// on a capture thread): the container, its facts and its policy.
fn look_up(
    runtime: &tokio::runtime::Handle,
    hierarchy: &Hierarchy,
    id: u64,
    leaf: &str,
) -> Captured {
    let enrolled = lookup::enrolled(hierarchy, id, leaf);
    let seen = match &enrolled {
        Enrolled::Container { container, .. } => {
            Some(lookup::seen_here(runtime, container.clone()))
        }
        Enrolled::Unrecognised { .. } => None,
    };
    Captured { enrolled, seen }
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
