//! What the host must offer before anything is loaded: privileges, BTF,
//! tracefs and bpffs. Missing mounts are mounted when we may; everything
//! else is reported with what to do about it.

use std::{
    ffi::CString,
    fs, io,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    #[error(
        "missing privileges: {missing} (have uid {uid}); loading the recorder's eBPF program needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN), and creating cgroups needs root: run as root or with sudo"
    )]
    Capabilities { missing: String, uid: u32 },
    #[error(
        "tracefs is not mounted at {path} and mounting it failed ({err}); mount it with `mount -t tracefs tracefs {path}`"
    )]
    Tracefs { path: String, err: io::Error },
    #[error(
        "{path} is not a bpf filesystem and mounting one there failed ({err}); mount it with `mount -t bpf bpf {path}`"
    )]
    Bpffs { path: String, err: io::Error },
    #[error(
        "cannot create {path}: bpffs refuses names with a dot ('{name}'); choose a pin dir without one"
    )]
    BpffsDot { path: String, name: String },
    #[error("cannot read {path}: {err}")]
    Read { path: String, err: io::Error },
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The effective capability set of this process.
fn effective_caps() -> Result<u64, SystemError> {
    let path = "/proc/self/status";
    let text = fs::read_to_string(path).map_err(|source| SystemError::Read {
        path: path.to_owned(),
        err: source,
    })?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0))
}

/// Checks that this process may load and attach tracing programs.
pub fn check_privileges() -> Result<(), SystemError> {
    let caps = effective_caps()?;
    let has = |c: u32| caps & (1u64 << c) != 0;
    if has(CAP_BPF) && has(CAP_PERFMON) || has(CAP_SYS_ADMIN) {
        return Ok(());
    }
    let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|(c, _)| !has(*c))
        .map(|(_, n)| n)
        .collect();
    Err(SystemError::Capabilities {
        missing: missing.join(", "),
        // SAFETY: getuid cannot fail.
        uid: unsafe { libc::getuid() },
    })
}

const TRACEFS_MAGIC: i64 = 0x7472_6163;
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

fn fs_magic(path: &Path) -> Option<i64> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid C string and st a valid out pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    #[allow(
        clippy::unnecessary_cast,
        trivial_numeric_casts,
        reason = "f_type's width differs by arch"
    )]
    Some(st.f_type as i64)
}

fn mount(fstype: &str, target: &Path) -> io::Result<()> {
    fs::create_dir_all(target)?;
    let src = CString::new(fstype).map_err(io::Error::other)?;
    let tgt = CString::new(target.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: all pointers are valid C strings; data is NULL.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            src.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The tracefs mount point, mounting it at /sys/kernel/tracing if needed.
pub fn ensure_tracefs() -> Result<PathBuf, SystemError> {
    let path = PathBuf::from("/sys/kernel/tracing");
    if fs_magic(&path) == Some(TRACEFS_MAGIC) {
        return Ok(path);
    }
    // Older systems reach tracefs through debugfs.
    let debug = PathBuf::from("/sys/kernel/debug/tracing");
    if fs_magic(&debug) == Some(TRACEFS_MAGIC) {
        return Ok(debug);
    }
    mount("tracefs", &path).map_err(|source| SystemError::Tracefs {
        path: path.display().to_string(),
        err: source,
    })?;
    log::info!("mounted tracefs at {}", path.display());
    Ok(path)
}

/// Makes sure `dir` lies on a bpf filesystem, mounting one at /sys/fs/bpf
/// if needed, and creates `dir`.
pub fn ensure_bpffs(dir: &Path) -> Result<(), SystemError> {
    let root = Path::new("/sys/fs/bpf");
    let on_bpffs = |p: &Path| fs_magic(p) == Some(BPF_FS_MAGIC);
    let err = |source| SystemError::Bpffs {
        path: root.display().to_string(),
        err: source,
    };
    if !on_bpffs(root) && dir.starts_with(root) {
        mount("bpf", root).map_err(err)?;
        log::info!("mounted bpffs at {}", root.display());
    }
    fs::create_dir_all(dir).map_err(|source| {
        // bpffs refuses names with a dot (they are the kernel's own).
        let dotted = dir
            .strip_prefix(root)
            .unwrap_or(dir)
            .components()
            .find(|c| c.as_os_str().to_string_lossy().contains('.'));
        match dotted {
            Some(c) if on_bpffs(root) => SystemError::BpffsDot {
                path: dir.display().to_string(),
                name: c.as_os_str().to_string_lossy().into_owned(),
            },
            _ => SystemError::Bpffs {
                path: dir.display().to_string(),
                err: source,
            },
        }
    })?;
    if !on_bpffs(dir) {
        return Err(SystemError::Bpffs {
            path: dir.display().to_string(),
            err: io::Error::other("not a bpf filesystem"),
        });
    }
    Ok(())
}

/// Keeps a long-running daemon's heap from creeping (glibc; a no-op
/// elsewhere): one malloc arena instead of one per thread that ever
/// allocated (each kept its own high-water mark), and a fixed mmap
/// threshold (128 KiB), so that large transient buffers are unmapped when
/// freed instead of raising the threshold and staying in the heap.
pub fn bound_allocator() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes the allocator's own parameters.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Returns memory the allocator keeps after large frees (glibc's
/// `malloc_trim`) to the kernel; a no-op elsewhere.
pub fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only inspects the allocator's own state.
    unsafe {
        libc::malloc_trim(0);
    }
}
