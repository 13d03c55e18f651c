//! Auto mode (`cgroup_mkdir`, `cgroup_rmdir`): enrols new container
//! cgroups, and cgroups made inside recorded ones, before any process can
//! enter them, and reports removals of recorded cgroups to user space.
//!
//! The record fields are read at offsets user space found in tracefs
//! (`TP_*_OFF`) with `read_at`, a fault-tolerant read (a bad offset gives
//! an error, never a fault). The per-CPU scratch maps are this run's alone:
//! a program does not nest on a CPU, and only `cgroup_mkdir` uses them.

use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_get_current_cgroup_id, bpf_probe_read_kernel_buf},
    macros::tracepoint,
    programs::TracePointContext,
};
use recorder_common::{
    CgroupEvent, EVENT_MKDIR, EVENT_RMDIR, FLAG_AUTO, ID_HEX_LEN, LEAF_MAX, LEAF_PREFIX_MAX,
    LEAF_SUFFIX_MAX, LeafPattern, MAX_LEAF_PATTERNS, PATH_BUF, PHASE_RUNTIME_INIT, stat,
};

use crate::maps::{
    AUTO_ENROL, CGROUP_LEAF, CGROUP2_HIERARCHY, EVENTS, LEAF_PATTERNS, LEAF_SCRATCH, PATH_SCRATCH,
    SET_SCRATCH, SYSCALL_SETS, TP_ID_OFF, TP_PATH_OFF, TP_ROOT_OFF, bump, filter_add,
};

#[inline(always)]
fn is_hex(c: u8) -> bool {
    c.is_ascii_digit() || (b'a'..=b'f').contains(&c)
}

/// Whether the last component of `path[..len]` (len without the NUL) matches
/// `pattern`: `prefix`, 64 hex digits, `suffix`, preceded by a '/'. Returns
/// where the leaf starts and how long it is.
#[inline(always)]
fn leaf_matches(
    path: &[u8; PATH_BUF],
    len: usize,
    pattern: &LeafPattern,
) -> Option<(usize, usize)> {
    let plen = pattern.prefix_len as usize;
    let slen = pattern.suffix_len as usize;
    if plen > LEAF_PREFIX_MAX || slen > LEAF_SUFFIX_MAX {
        return None;
    }
    let leaf = plen + ID_HEX_LEN + slen;
    if len <= leaf || len >= PATH_BUF {
        return None;
    }
    let start = len - leaf;
    if path[(start - 1) & (PATH_BUF - 1)] != b'/' {
        return None;
    }
    for i in 0..LEAF_PREFIX_MAX {
        if i >= plen {
            break;
        }
        if path[(start + i) & (PATH_BUF - 1)] != pattern.prefix[i] {
            return None;
        }
    }
    for i in 0..ID_HEX_LEN {
        if !is_hex(path[(start + plen + i) & (PATH_BUF - 1)]) {
            return None;
        }
    }
    for i in 0..LEAF_SUFFIX_MAX {
        if i >= slen {
            break;
        }
        if path[(start + plen + ID_HEX_LEN + i) & (PATH_BUF - 1)] != pattern.suffix[i] {
            return None;
        }
    }
    Some((start, leaf))
}

/// Tells user space that cgroup `id` was made (`EVENT_MKDIR`, `enrolled`)
/// or removed (`EVENT_RMDIR`).
fn send_event(kind: u32, id: u64, enrolled: bool) {
    let event = CgroupEvent {
        kind,
        enrolled: u32::from(enrolled),
        id,
    };
    // A full ring buffer loses only the notification: user space also scans
    // the map and the cgroup tree periodically.
    _ = EVENTS.output::<CgroupEvent>(&event, 0);
}

#[tracepoint(category = "cgroup", name = "cgroup_mkdir")]
pub(crate) fn cgroup_mkdir(ctx: TracePointContext) -> u32 {
    // A program has no one to report an error to.
    _ = try_cgroup_mkdir(&ctx);
    0
}

fn try_cgroup_mkdir(ctx: &TracePointContext) -> Result<(), i64> {
    if AUTO_ENROL.load() == 0 {
        return Ok(());
    }
    // SAFETY: a fault-tolerant read of the record (module doc).
    let root: i32 = unsafe { ctx.read_at(TP_ROOT_OFF.load() as usize) }?;
    if root as u32 != CGROUP2_HIERARCHY.load() {
        return Ok(());
    }
    // SAFETY: as above.
    let id: u64 = unsafe { ctx.read_at(TP_ID_OFF.load() as usize) }?;

    // A cgroup made from inside a recorded cgroup belongs to the same recording.
    // SAFETY: the helper has no preconditions.
    let caller = unsafe { bpf_get_current_cgroup_id() };
    if let Some(parent) = SYSCALL_SETS.get_ptr(&caller) {
        // SAFETY: a hash map value stays valid until the program returns
        // (RCU), even if user space deletes the entry meanwhile. `owner`
        // does not change; a phase that changes meanwhile is read as it
        // was when the cgroup was made.
        let owner = unsafe { (*parent).owner };
        // SAFETY: as above.
        let phase = unsafe { (*parent).phase };
        return enrol(id, owner, phase);
    }

    // SAFETY: a fault-tolerant read of the record (module doc).
    let loc: u32 = unsafe { ctx.read_at(TP_PATH_OFF.load() as usize) }?;
    let off = (loc & 0xffff) as usize;
    let len = (loc >> 16) as usize; // includes the NUL
    let Some(buf) = PATH_SCRATCH.get_ptr_mut(0) else {
        return Ok(());
    };
    // SAFETY: this CPU's scratch buffer, this run's alone (module doc).
    let buf = unsafe { &mut *buf };
    if len < 2 || len > PATH_BUF {
        return Ok(());
    }
    // SAFETY: `off` is the path's offset in the record (its `__data_loc`),
    // so `src` points into it; it is only read through the helper.
    let src = unsafe { ctx.as_ptr().cast::<u8>().add(off) };
    // SAFETY: the helper reads kernel memory fault-tolerantly, `buf.len()`
    // bytes into `buf`.
    unsafe { bpf_probe_read_kernel_buf(src, &mut buf[..]) }?;
    let len = len - 1;
    for i in 0..MAX_LEAF_PATTERNS {
        let Some(pattern) = LEAF_PATTERNS.get(i) else {
            break;
        };
        if pattern.enabled == 0 {
            continue;
        }
        if let Some((start, leaf_len)) = leaf_matches(buf, len, pattern) {
            save_leaf(id, buf, start, leaf_len);
            return enrol(id, id, PHASE_RUNTIME_INIT);
        }
    }
    Ok(())
}

/// Keeps the enrolled cgroup's leaf name for user space.
#[inline(always)]
fn save_leaf(id: u64, path: &[u8; PATH_BUF], start: usize, len: usize) {
    let Some(leaf) = LEAF_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's scratch buffer, this run's alone (module doc).
    let leaf = unsafe { &mut *leaf };
    for i in 0..LEAF_MAX {
        leaf[i] = if i < len {
            path[(start + i) & (PATH_BUF - 1)]
        } else {
            0
        };
    }
    _ = CGROUP_LEAF.insert(&id, &*leaf, 0);
}

/// Starts recording cgroup `id` as part of recording `owner`, in `phase`,
/// unless it is recorded already.
fn enrol(id: u64, owner: u64, phase: u32) -> Result<(), i64> {
    let Some(set) = SET_SCRATCH.get_ptr_mut(0) else {
        return Ok(());
    };
    // SAFETY: this CPU's scratch set, this run's alone (module doc).
    let set = unsafe { &mut *set };
    set.owner = owner;
    set.phase = phase;
    set.flags = FLAG_AUTO;
    // Counted before the entry exists, so the entry is never filtered out.
    filter_add(id, 1);
    // BPF_NOEXIST: never clobber a set user space registered.
    match SYSCALL_SETS.insert(&id, &*set, 1) {
        Ok(()) => {
            bump(stat::ENROLLED);
            send_event(EVENT_MKDIR, id, true);
        }
        // Already recorded (user space was first, and counted it).
        Err(e) if e == -17 => filter_add(id, u64::MAX),
        // The map is full.
        Err(_) => {
            filter_add(id, u64::MAX);
            bump(stat::ENROL_FAILED);
        }
    }
    Ok(())
}

#[tracepoint(category = "cgroup", name = "cgroup_rmdir")]
pub(crate) fn cgroup_rmdir(ctx: TracePointContext) -> u32 {
    // SAFETY: a fault-tolerant read of the record (module doc).
    if let Ok(root) = unsafe { ctx.read_at::<i32>(TP_ROOT_OFF.load() as usize) }
        && root as u32 == CGROUP2_HIERARCHY.load()
        // SAFETY: as above.
        && let Ok(id) = unsafe { ctx.read_at::<u64>(TP_ID_OFF.load() as usize) }
        && SYSCALL_SETS.get_ptr(&id).is_some()
    {
        send_event(EVENT_RMDIR, id, false);
    }
    0
}
