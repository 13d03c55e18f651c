//! systemd's file-descriptor store. At a stop under systemd, recorderd
//! hands systemd a descriptor of every object it pinned (`FDSTORE=1`, the
//! pin's file name as `FDNAME`) and unpins; `systemctl restart` passes them
//! back (`LISTEN_FDS`, `LISTEN_FDNAMES`) and the start pins them again, so
//! recording goes on; `systemctl stop` closes them, which detaches
//! everything.

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::Path,
};

use sd_notify::NotifyState;

const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;

/// `union bpf_attr` for `BPF_OBJ_PIN` and `BPF_OBJ_GET`.
#[repr(C)]
#[derive(Default)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    _pad: u32,
}

fn bpf_obj(cmd: libc::c_long, path: &Path, fd: u32) -> io::Result<libc::c_long> {
    let path = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let attr = ObjAttr {
        pathname: path.as_ptr() as u64,
        bpf_fd: fd,
        ..ObjAttr::default()
    };
    // SAFETY: `attr` is a valid bpf_attr prefix of the size passed, and
    // `path` outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            &raw const attr,
            size_of::<ObjAttr>() as libc::c_long,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret)
}

/// Whether systemd keeps descriptors for this service: `$FDSTORE` (set
/// from `FileDescriptorStoreMax=` by systemd 254+, and by the shipped unit).
pub fn available() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
        && std::env::var("FDSTORE")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .is_some_and(|n| n > 0)
}

/// Hands a descriptor of every object pinned in `pin_dir` to the store;
/// returns how many.
pub fn store(pin_dir: &Path) -> io::Result<usize> {
    let mut stored = 0;
    for entry in std::fs::read_dir(pin_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let fd = bpf_obj(BPF_OBJ_GET, &entry.path(), 0)?;
        // SAFETY: BPF_OBJ_GET returned a new descriptor, owned from here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        sd_notify::notify_with_fds(
            &[NotifyState::FdStore, NotifyState::FdName(name)],
            &[fd.as_fd()],
        )?;
        stored += 1;
    }
    Ok(stored)
}

/// Pins the objects the store passed back into `pin_dir` (never over an
/// existing pin); returns their names, for [`forget`] once the start is
/// through.
pub fn restore(pin_dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for (fd, name) in sd_notify::listen_fds_with_names()? {
        // SAFETY: systemd passed `fd` to this process (LISTEN_PID is ours);
        // nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let path = pin_dir.join(&name);
        if name.is_empty() || name.contains('/') || name.starts_with('.') || path.exists() {
            continue;
        }
        bpf_obj(BPF_OBJ_PIN, &path, fd.as_raw_fd() as u32)?;
        names.push(name);
    }
    Ok(names)
}

/// Drops `names` from the store: they are pinned again.
pub fn forget(names: &[String]) {
    for name in names {
        if let Err(e) = sd_notify::notify(&[NotifyState::FdStoreRemove, NotifyState::FdName(name)])
        {
            log::warn!("FDSTOREREMOVE {name}: {e}");
        }
    }
}
