//! recorderd's `[registry] install`: the published (fleet) profiles of the
//! images this node records, pulled and checked as `recorderctl pull` does,
//! and written atomically as `<install_dir>/recorder/<fleet tag>.json`,
//! where a pod's `localhostProfile: recorder/<fleet tag>.json` finds them
//! (`install_dir` is kubelet's seccomp root by default). Run by the push
//! task after its rounds and every [`INSTALL_EVERY`].

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::Duration,
};

use super::{Registry, RegistryError};
use crate::atomic_file;

/// How often the published profiles are looked for when nothing is pushed.
pub const INSTALL_EVERY: Duration = Duration::from_secs(30);

/// The profiles installed so far: fleet tag → the digest written.
#[derive(Debug)]
pub struct Installer {
    dir: PathBuf,
    installed: BTreeMap<String, String>,
}

/// Where the profile of fleet tag `tag` goes under `dir`.
pub fn path_of(dir: &Path, tag: &str) -> PathBuf {
    dir.join("recorder").join(format!("{tag}.json"))
}

impl Installer {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            installed: BTreeMap::new(),
        }
    }

    /// Installs the published profile of every fleet tag in `tags` that is
    /// new or changed; one that is not published yet is skipped, one that
    /// fails is logged and tried again next time.
    pub async fn refresh(&mut self, reg: &Registry, tags: &BTreeSet<String>) {
        for tag in tags {
            if let Err(e) = self.install(reg, tag).await {
                log::warn!("installing the published profile {tag}: {e}");
            }
        }
    }

    async fn install(&mut self, reg: &Registry, tag: &str) -> Result<(), RegistryError> {
        let r = reg.repo.tagged(tag);
        let digest = match reg.manifest(&r).await {
            Ok((_, d)) => d,
            // Not published (yet), or the registry is away: next time.
            Err(e) => {
                log::debug!("no published profile {tag}: {e}");
                return Ok(());
            }
        };
        if self.installed.get(tag) == Some(&digest) {
            return Ok(());
        }
        let pulled = reg.pull(&reg.repo.pinned(&digest)).await?;
        let path = path_of(&self.dir, tag);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                RegistryError::Registry(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        atomic_file::write(&path, &pulled.layer)
            .map_err(|e| RegistryError::Registry(e.to_string()))?;
        log::info!(
            "installed {}@{digest} as {}",
            reg.repo.name(),
            path.display()
        );
        self.installed.insert(tag.to_owned(), digest);
        Ok(())
    }
}
