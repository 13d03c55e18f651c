//! recorderd's pushes: the node's contribution to an image's profile (its
//! image row as a KEP-6061 artifact under the image's contribution tag for
//! this node), pushed by a task of its own whenever the row changes. The
//! manager only offers rows (an unbounded channel: recording never waits);
//! rows offered within [`COALESCE`] go in one round, the newest row of an
//! image wins; while the registry fails they wait here and are retried with
//! backoff, so nothing is lost once it is back. Counted in [`PushStats`].

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::mpsc;

use super::{
    Registry, RegistryConfig, RegistryError, Repo,
    artifact::{self, Artifact, Kind, Provenance},
    install::{INSTALL_EVERY, Installer},
    tags,
};
use crate::{
    images::{ImageRow, KeyedBy},
    timefmt::now_secs,
};

/// Rows offered within this long go in one round.
pub const COALESCE: Duration = Duration::from_secs(2);
/// The first wait after a failed round; doubled up to [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The pushes' counts, for the metrics.
#[derive(Debug, Default)]
pub struct PushStats {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    /// Seconds since the epoch of the last successful push (0: none yet).
    pub last_success: AtomicU64,
    /// Contributions waiting to be pushed.
    pub pending: AtomicU64,
}

/// The kernel release, for the provenance.
fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// `node`'s contribution of `row`: its tag and artifact.
pub fn contribution(
    row: &ImageRow,
    node: &str,
    kernel: &str,
) -> Result<(String, Artifact), RegistryError> {
    let prov = Provenance {
        kind: Kind::Contribution,
        node: node.to_owned(),
        image: row.image.clone(),
        key: row.key.clone(),
        id: row.id.clone(),
        references: row.references.clone(),
        runs: row.runs,
        failed_runs: row.failed_runs,
        last_failure: row.last_failure.clone(),
        first_seen: row.first_seen,
        last_seen: row.last_seen,
        last_new: row.last_new,
        runs_since_last_new: row.runs_since_last_new,
        version: crate::VERSION.to_owned(),
        kernel: kernel.to_owned(),
        contributions: Vec::new(),
    };
    let fleet = tags::fleet_tag(&row.key, &row.image);
    let a = artifact::build(&row.profile, &prov)?;
    Ok((tags::contribution_tag(&fleet, node), a))
}

/// Whether a row goes to the registry: only an image's, by id or reference.
pub fn pushed(row: &ImageRow) -> bool {
    matches!(row.keyed_by, KeyedBy::Id | KeyedBy::Reference)
}

/// The handle the manager offers rows to.
#[derive(Debug, Clone)]
pub struct Pusher {
    tx: mpsc::UnboundedSender<ImageRow>,
    pub stats: Arc<PushStats>,
}

impl Pusher {
    /// Starts the push task for `config` (`None` when no repository is
    /// set).
    pub fn spawn(config: &RegistryConfig) -> Result<Option<Self>, RegistryError> {
        let Some(repo) = &config.repository else {
            return Ok(None);
        };
        let registry = Registry::new(Repo::parse(repo)?, &config.insecure)?;
        let node = config.node_name();
        log::info!(
            "pushing image profiles to {} as node {}",
            registry.repo.name(),
            node.escape_debug()
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(PushStats::default());
        let installer = config
            .install
            .then(|| Installer::new(config.install_dir.clone()));
        tokio::spawn(run(rx, registry, node, stats.clone(), installer));
        Ok(Some(Self { tx, stats }))
    }

    /// The pushes' counts as the metrics show them.
    pub fn series(&self) -> crate::metrics::RegistrySeries {
        let s = &self.stats;
        crate::metrics::RegistrySeries {
            pushed: s.ok.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            last_success: s.last_success.load(Ordering::Relaxed),
            pending: s.pending.load(Ordering::Relaxed),
        }
    }

    /// Offers a changed row; never waits. A row without an image (keyed
    /// by a container's name or a root filesystem's path) means nothing on
    /// another node: it stays here.
    pub fn offer(&self, row: &ImageRow) {
        if !pushed(row) {
            return;
        }
        if self.tx.send(row.clone()).is_err() {
            log::debug!("the push task is gone");
        }
    }
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<ImageRow>,
    registry: Registry,
    node: String,
    stats: Arc<PushStats>,
    mut installer: Option<Installer>,
) {
    let kernel = kernel_release();
    let mut pending: BTreeMap<String, ImageRow> = BTreeMap::new();
    // The fleet tags of the images seen, for the installer.
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut backoff = BACKOFF_MIN;
    let mut failures: u32 = 0;
    let mut open = true;
    while open || !pending.is_empty() {
        if pending.is_empty() {
            let next = match &mut installer {
                Some(inst) => tokio::select! {
                    row = rx.recv() => row,
                    () = tokio::time::sleep(INSTALL_EVERY) => {
                        inst.refresh(&registry, &seen).await;
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            match next {
                Some(row) => {
                    pending.insert(row.key.clone(), row);
                }
                None => return,
            }
        }
        // Gather what comes within the window (or the backoff).
        let wait = if failures == 0 { COALESCE } else { backoff };
        let until = tokio::time::Instant::now() + wait;
        while open {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(row)) => {
                    pending.insert(row.key.clone(), row);
                }
                Ok(None) => open = false,
                Err(_) => break,
            }
        }
        stats.pending.store(pending.len() as u64, Ordering::Relaxed);
        let keys: Vec<String> = pending.keys().cloned().collect();
        let mut failed = false;
        for key in keys {
            let Some(row) = pending.get(&key) else {
                continue;
            };
            let shown = row.label().escape_debug().to_string();
            seen.insert(tags::fleet_tag(&row.key, &row.image));
            let pushed = match contribution(row, &node, &kernel) {
                Ok((tag, a)) => registry.push(&tag, &a).await.map(|d| (tag, d)),
                Err(e) => {
                    // Refused by the limits: retrying would not help.
                    log::error!("image profile of {shown} not pushed: {e}");
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    pending.remove(&key);
                    continue;
                }
            };
            match pushed {
                Ok((tag, digest)) => {
                    pending.remove(&key);
                    stats.ok.fetch_add(1, Ordering::Relaxed);
                    stats.last_success.store(now_secs(), Ordering::Relaxed);
                    log::info!(
                        "image profile of {shown} pushed: {}:{tag}@{digest}",
                        registry.repo.name()
                    );
                }
                Err(e) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    failures += 1;
                    if failures.is_power_of_two() {
                        log::warn!(
                            "image profile of {shown} not pushed (attempt {failures}): {e}; kept and retried"
                        );
                    }
                    failed = true;
                    break;
                }
            }
        }
        stats.pending.store(pending.len() as u64, Ordering::Relaxed);
        if failed {
            backoff = if failures == 1 {
                BACKOFF_MIN
            } else {
                (backoff * 2).min(BACKOFF_MAX)
            };
        } else {
            if failures > 0 {
                log::info!("the registry took the pushes again after {failures} failures");
            }
            failures = 0;
            backoff = BACKOFF_MIN;
            if let Some(inst) = &mut installer {
                inst.refresh(&registry, &seen).await;
            }
        }
        if !open && failed {
            // Shutting down with the registry away: the rows stay in the
            // index; the next start pushes them all again.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::key;

    fn row(keyed_by: KeyedBy) -> ImageRow {
        let mut k = key(Some("busybox"), None, Some("web")).unwrap();
        k.keyed_by = keyed_by;
        let mut r = ImageRow::new(&k, 100);
        r.runs = 2;
        r
    }

    #[test]
    fn only_images_rows_are_pushed_each_under_its_nodes_tag() {
        assert!(pushed(&row(KeyedBy::Id)));
        assert!(pushed(&row(KeyedBy::Reference)));
        assert!(!pushed(&row(KeyedBy::Name)));
        assert!(!pushed(&row(KeyedBy::Rootfs)));
        let r = row(KeyedBy::Reference);
        let (tag_a, a) = contribution(&r, "node-a", "6.18").unwrap();
        let (tag_b, _) = contribution(&r, "node-b", "6.18").unwrap();
        assert_ne!(tag_a, tag_b);
        assert_eq!(tags::fleet_of(&tag_a), tags::fleet_of(&tag_b));
        let m = artifact::read_manifest(&a.manifest).unwrap();
        let p = Provenance::from_annotations(&m.annotations).unwrap();
        assert_eq!(
            (p.node.as_str(), p.runs, p.kernel.as_str()),
            ("node-a", 2, "6.18")
        );
        assert_eq!(p.failed_runs, 0);
        // A failed run goes to the registry as such: the fleet-wide rule
        // counts only the runs that did not fail.
        let mut r = row(KeyedBy::Id);
        r.add_failed(Some("busybox"), "exit 3 within 10 s", 200);
        let (_, a) = contribution(&r, "node-a", "6.18").unwrap();
        let m = artifact::read_manifest(&a.manifest).unwrap();
        let p = Provenance::from_annotations(&m.annotations).unwrap();
        assert_eq!(
            (p.runs, p.failed_runs, p.last_failure.as_str()),
            (3, 1, "exit 3 within 10 s")
        );
    }
}
