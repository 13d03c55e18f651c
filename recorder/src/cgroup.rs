//! The cgroup2 hierarchy: where it is mounted, cgroup ids, and the cgroups
//! the recorder creates for `recorderctl record`.
//!
//! A note on cgroups-rs: its `V2` hierarchy is fixed at `/sys/fs/cgroup` and
//! its mountinfo reader keeps only cgroup v1 mounts, so it cannot find the
//! unified hierarchy of a hybrid host (`/sys/fs/cgroup/unified`). This module
//! therefore reads /proc/self/mountinfo itself and works on the cgroup2
//! filesystem directly; it needs nothing but mkdir, rmdir and a few files.

use std::{
    fs, io,
    os::unix::fs::MetadataExt as _,
    path::{Component, Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

/// Errors of the cgroup module.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "no cgroup2 filesystem is mounted (looked in /proc/self/mountinfo); mount one with `mount -t cgroup2 none /sys/fs/cgroup/unified` or boot with systemd.unified_cgroup_hierarchy=1"
    )]
    NotMounted,
    #[error("cannot read {path}: {err}")]
    Read { path: PathBuf, err: io::Error },
    #[error("cannot create cgroup {path}: {err}")]
    Create { path: PathBuf, err: io::Error },
    #[error("cannot remove cgroup {path}: {err}")]
    Remove { path: PathBuf, err: io::Error },
    #[error("cannot write {path}: {err}")]
    Write { path: PathBuf, err: io::Error },
    #[error(
        "invalid cgroup path '{0}': it must be absolute within the cgroup2 hierarchy, without '..'"
    )]
    InvalidPath(String),
    #[error("process {0} does not exist")]
    NoSuchProcess(u32),
}

/// Whether cgroup2 is the only hierarchy or sits beside v1 controllers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Pure cgroup2 at /sys/fs/cgroup.
    Unified,
    /// v1 controllers, with cgroup2 mounted elsewhere (e.g. /sys/fs/cgroup/unified).
    Hybrid,
}

/// The mounted cgroup2 hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where cgroup2 is mounted.
    pub mount: PathBuf,
    pub layout: Layout,
}

impl Hierarchy {
    /// Finds the cgroup2 mount from /proc/self/mountinfo.
    pub fn detect() -> Result<Self, CgroupError> {
        let path = Path::new("/proc/self/mountinfo");
        let text = fs::read_to_string(path).map_err(|source| CgroupError::Read {
            path: path.to_owned(),
            err: source,
        })?;
        Self::from_mountinfo(&text).ok_or(CgroupError::NotMounted)
    }

    /// Picks the cgroup2 mount out of a mountinfo text: /sys/fs/cgroup if it
    /// is cgroup2, else the first cgroup2 mount whose root is the hierarchy's
    /// root.
    pub fn from_mountinfo(text: &str) -> Option<Self> {
        let mut v1 = false;
        let mut mounts = Vec::new();
        for line in text.lines() {
            // id parent major:minor root mount-point options [optional...] - fstype source super-options
            let mut halves = line.splitn(2, " - ");
            let (Some(left), Some(right)) = (halves.next(), halves.next()) else {
                continue;
            };
            let fields: Vec<&str> = left.split(' ').collect();
            let Some(fstype) = right.split(' ').next() else {
                continue;
            };
            if fields.len() < 5 {
                continue;
            }
            match fstype {
                "cgroup" => v1 = true,
                "cgroup2" if fields[3] == "/" => mounts.push(PathBuf::from(unescape(fields[4]))),
                _ => {}
            }
        }
        let mount = mounts
            .iter()
            .find(|m| m.as_path() == Path::new("/sys/fs/cgroup"))
            .or_else(|| mounts.first())?
            .clone();
        let layout = if v1 || mount != Path::new("/sys/fs/cgroup") {
            Layout::Hybrid
        } else {
            Layout::Unified
        };
        Some(Self { mount, layout })
    }

    /// The directory of the cgroup at `rel` ("/a/b").
    pub fn dir(&self, rel: &str) -> Result<PathBuf, CgroupError> {
        let rel = validate_rel(rel)?;
        Ok(self.mount.join(rel.trim_start_matches('/')))
    }

    /// The cgroup id (the inode number of its directory; what the kernel's
    /// `bpf_get_current_cgroup_id()` returns for its members).
    pub fn id(&self, rel: &str) -> Result<u64, CgroupError> {
        let dir = self.dir(rel)?;
        id_of_dir(&dir)
    }

    /// The cgroup2 path of process `pid`, e.g. "/libpod_parent/libpod-<id>".
    pub fn cgroup_of_pid(&self, pid: u32) -> Result<String, CgroupError> {
        let path = PathBuf::from(format!("/proc/{pid}/cgroup"));
        let text = fs::read_to_string(&path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                CgroupError::NoSuchProcess(pid)
            } else {
                CgroupError::Read {
                    path: path.clone(),
                    err: source,
                }
            }
        })?;
        text.lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(str::to_owned)
            .ok_or(CgroupError::Read {
                path,
                err: io::Error::other("no cgroup2 entry (0::)"),
            })
    }

    /// The cgroup paths below `rel` (not `rel` itself), depth first.
    pub fn descendants(&self, rel: &str) -> Result<Vec<String>, CgroupError> {
        let mut out = Vec::new();
        let mut stack = vec![rel.trim_end_matches('/').to_owned()];
        while let Some(cur) = stack.pop() {
            let dir = self.dir(if cur.is_empty() { "/" } else { &cur })?;
            let Ok(entries) = fs::read_dir(&dir) else {
                continue; // removed meanwhile
            };
            for entry in entries.flatten() {
                if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    let child = format!("{cur}/{}", entry.file_name().to_string_lossy());
                    out.push(child.clone());
                    stack.push(child);
                }
            }
        }
        Ok(out)
    }

    /// The processes in the cgroup `rel` and below it (best effort: a
    /// cgroup removed meanwhile has none).
    pub fn pids(&self, rel: &str) -> Result<Vec<u32>, CgroupError> {
        let mut cgroups = vec![rel.to_owned()];
        cgroups.extend(self.descendants(rel)?);
        let mut pids = Vec::new();
        for cg in cgroups {
            let Ok(text) = fs::read_to_string(self.dir(&cg)?.join("cgroup.procs")) else {
                continue;
            };
            pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        Ok(pids)
    }

    /// Creates the cgroup `rel` and its missing parents.
    pub fn create(&self, rel: &str) -> Result<PathBuf, CgroupError> {
        let dir = self.dir(rel)?;
        fs::create_dir_all(&dir).map_err(|source| CgroupError::Create {
            path: dir.clone(),
            err: source,
        })?;
        Ok(dir)
    }

    /// Removes the cgroup `rel`. Processes still in it are killed first
    /// (cgroup.kill), and their exit is awaited for up to `timeout`.
    pub fn remove(&self, rel: &str, timeout: Duration) -> Result<(), CgroupError> {
        let dir = self.dir(rel)?;
        if !dir.exists() {
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        let mut killed = false;
        loop {
            match fs::remove_dir(&dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    if !killed {
                        // Processes left behind by the recorded command.
                        _ = fs::write(dir.join("cgroup.kill"), "1");
                        killed = true;
                    }
                    thread::sleep(Duration::from_millis(5));
                }
                Err(source) => {
                    return Err(CgroupError::Remove {
                        path: dir,
                        err: source,
                    });
                }
            }
        }
    }

    /// Whether the cgroup `rel` still exists.
    pub fn exists(&self, rel: &str) -> bool {
        self.dir(rel).map(|d| d.is_dir()).unwrap_or(false)
    }
}

/// The id of a cgroup directory.
pub fn id_of_dir(dir: &Path) -> Result<u64, CgroupError> {
    fs::metadata(dir)
        .map(|m| m.ino())
        .map_err(|source| CgroupError::Read {
            path: dir.to_owned(),
            err: source,
        })
}

/// Checks that `rel` is an absolute cgroup path without `..` or `.`.
pub fn validate_rel(rel: &str) -> Result<&str, CgroupError> {
    let ok = rel.starts_with('/')
        && Path::new(rel)
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if ok {
        Ok(rel)
    } else {
        Err(CgroupError::InvalidPath(rel.to_owned()))
    }
}

/// mountinfo escapes spaces and a few other characters as \ooo.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 30 0:23 / /sys rw,nosuid - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
27 26 0:25 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
28 26 0:26 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
";
    const UNIFIED: &str = "\
25 30 0:23 / /sys rw,nosuid - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn detects_hybrid_layout() {
        let h = Hierarchy::from_mountinfo(HYBRID).unwrap();
        assert_eq!(h.mount, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(h.layout, Layout::Hybrid);
    }

    #[test]
    fn detects_unified_layout() {
        let h = Hierarchy::from_mountinfo(UNIFIED).unwrap();
        assert_eq!(h.mount, Path::new("/sys/fs/cgroup"));
        assert_eq!(h.layout, Layout::Unified);
    }

    #[test]
    fn no_cgroup2_is_none() {
        assert!(
            Hierarchy::from_mountinfo(
                "28 26 0:26 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
            )
            .is_none()
        );
    }

    #[test]
    fn unescapes_mount_points() {
        assert_eq!(unescape("/a\\040b"), "/a b");
    }

    #[test]
    fn rejects_dot_dot() {
        assert!(validate_rel("/a/../b").is_err());
        assert!(validate_rel("a/b").is_err());
        assert!(validate_rel("/a/b").is_ok());
        assert!(validate_rel("/").is_ok());
    }

    #[test]
    fn dir_joins_under_mount() {
        let h = Hierarchy::from_mountinfo(UNIFIED).unwrap();
        assert_eq!(
            h.dir("/docker/abc").unwrap(),
            Path::new("/sys/fs/cgroup/docker/abc")
        );
        assert_eq!(h.dir("/").unwrap(), Path::new("/sys/fs/cgroup"));
    }

    #[test]
    fn skips_bind_mounts_of_subtrees() {
        // A container's view: its own sub-cgroup bind-mounted somewhere
        // (root field not "/") must not be taken for the hierarchy.
        let text = "\
27 26 0:25 /system.slice/x.scope /run/x rw,relatime - cgroup2 cgroup2 rw
28 26 0:25 / /mnt/cgroup\\040v2 rw,relatime - cgroup2 cgroup2 rw
";
        let h = Hierarchy::from_mountinfo(text).unwrap();
        assert_eq!(h.mount, Path::new("/mnt/cgroup v2"));
        assert_eq!(h.layout, Layout::Hybrid);
    }

    #[test]
    fn prefers_sys_fs_cgroup_among_several_mounts() {
        let text = "\
27 26 0:25 / /mnt/other rw - cgroup2 cgroup2 rw
28 26 0:25 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
";
        let h = Hierarchy::from_mountinfo(text).unwrap();
        assert_eq!(h.mount, Path::new("/sys/fs/cgroup"));
        assert_eq!(h.layout, Layout::Unified);
    }

    #[test]
    fn detects_this_host() {
        // The real mount table: whatever the layout, the mount found is a
        // cgroup2 root (it has cgroup.controllers, v1 roots do not) and it
        // holds this process's own cgroup.
        const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
        let h = Hierarchy::detect().unwrap();
        assert!(h.mount.join("cgroup.controllers").is_file(), "{h:?}");
        let c = std::ffi::CString::new(h.mount.as_os_str().to_str().unwrap()).unwrap();
        // SAFETY: a valid C string and a valid out pointer.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statfs(c.as_ptr(), &mut st) }, 0);
        #[allow(
            clippy::unnecessary_cast,
            trivial_numeric_casts,
            reason = "f_type's width differs by arch"
        )]
        let magic = st.f_type as i64;
        assert_eq!(magic, CGROUP2_SUPER_MAGIC, "{h:?}");
        let own = h.cgroup_of_pid(std::process::id()).unwrap();
        assert!(h.dir(&own).unwrap().is_dir(), "{own} not under {h:?}");
    }
}
