//! The read-only globals `Kernel::load` sets in the object from the
//! kernel's BTF and the syscall table. The verifier knows their values and
//! drops the code they turn off.

use recorder_common::globals::{
    CGROUP_ID_WALK, CGROUP_KN_OFFSET, COMPAT_STATUS_OFFSET, CSS_SET_DFL_CGRP_OFFSET,
    KERNFS_NODE_ID_OFFSET, NR_ARG_CLONE, NR_ARG_PERSONALITY, NR_ARG_SOCKET, NR_ARG_UNSHARE,
    TASK_CGROUPS_OFFSET, TASK_EXIT_CODE_OFFSET,
};

use super::{error::KernelError, options::LoadOptions};
use crate::btf;

/// The compat offset to pass to the program: the offset of
/// `task_struct.thread_info.status`, or 0 when compat detection is off.
fn compat_offset(btf: &btf::Btf, opts: &LoadOptions) -> Result<u32, KernelError> {
    if !opts.compat || !cfg!(target_arch = "x86_64") {
        return Ok(0);
    }
    Ok(btf.member_offset("task_struct", &["thread_info", "status"])?)
}

/// The offsets that let `sys_enter` read the cgroup id with loads instead of
/// a helper call; `None` (the helper is used) when BTF lacks one of them.
fn cgroup_id_offsets(btf: &btf::Btf) -> Option<[u32; 4]> {
    Some([
        btf.member_offset("task_struct", &["cgroups"]).ok()?,
        btf.member_offset("css_set", &["dfl_cgrp"]).ok()?,
        btf.member_offset("cgroup", &["kn"]).ok()?,
        btf.member_offset("kernfs_node", &["id"]).ok()?,
    ])
}

/// The read-only globals `Kernel::load` sets in the object, by name (public
/// so that tools loading the object differently, like the bench, match it).
pub fn globals(opts: &LoadOptions) -> Result<Vec<(&'static str, u32)>, KernelError> {
    // Read BTF even when compat detection is off: it validates --btf, and a
    // kernel without BTF is one we have not tested against.
    let btf = btf::Btf::read(&opts.btf)?;
    let walk = cgroup_id_offsets(&btf);
    let [cgroups, dfl_cgrp, kn, id] = walk.unwrap_or_default();
    Ok(vec![
        (COMPAT_STATUS_OFFSET, compat_offset(&btf, opts)?),
        (CGROUP_ID_WALK, u32::from(walk.is_some())),
        (TASK_CGROUPS_OFFSET, cgroups),
        (CSS_SET_DFL_CGRP_OFFSET, dfl_cgrp),
        (CGROUP_KN_OFFSET, kn),
        (KERNFS_NODE_ID_OFFSET, id),
        // Without it, neither the workload's exit status (read as 0) nor
        // kills by a profile are known.
        (
            TASK_EXIT_CODE_OFFSET,
            btf.member_offset("task_struct", &["exit_code"])
                .unwrap_or(0),
        ),
    ])
}

/// The native numbers of the syscalls whose arguments are recorded, from
/// the syscall table (-1: not on this architecture).
pub(super) fn arg_syscall_numbers() -> [(&'static str, i64); 4] {
    let nr = |name| {
        crate::syscalls::Abi::native()
            .number(name)
            .map_or(-1, i64::from)
    };
    [
        (NR_ARG_SOCKET, nr("socket")),
        (NR_ARG_CLONE, nr("clone")),
        (NR_ARG_UNSHARE, nr("unshare")),
        (NR_ARG_PERSONALITY, nr("personality")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_btf_has_the_cgroup_id_offsets() {
        // Every test machine of this project has kernel BTF.
        let globals = globals(&LoadOptions::default()).unwrap();
        let get = |name| globals.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        assert_eq!(get(CGROUP_ID_WALK), Some(1));
        assert!(get(TASK_CGROUPS_OFFSET).is_some_and(|v| v > 0));
        assert!(get(CGROUP_KN_OFFSET).is_some_and(|v| v > 0));
    }
}
