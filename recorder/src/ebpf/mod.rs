//! The loaded eBPF object: programs, links and maps. One owner (the
//! `record` command, or the daemon's kernel task) holds a [`Kernel`] and
//! is the only one that touches it.
//!
//! * `kernel`: [`Kernel`], loading, attaching, and the recorded sets;
//! * `options`: [`LoadOptions`], [`KernelInfo`], [`belongs_to`];
//! * `error`: [`KernelError`];
//! * `shared`: the two arrays user space maps and updates with atomics;
//! * `globals`: the read-only globals set at load time, from BTF;
//! * `tracefs`: the `cgroup_mkdir` record layout, from tracefs;
//! * `stats`: the kernel's per-program run statistics;
//! * `denials`: denials under an enforcing profile (watching, counts).
//!
//! The names of maps, programs and globals are `recorder_common::{maps,
//! programs, globals}`.

mod denials;
mod error;
mod globals;
mod kernel;
mod options;
mod shared;
mod stats;
mod tracefs;

pub use denials::DenialCount;
pub use error::KernelError;
pub use globals::globals;
pub use kernel::Kernel;
pub use options::{KernelInfo, LoadOptions, belongs_to};
pub use stats::{ProgramStats, enable_run_time_stats};
pub use tracefs::CgroupTpFormat;

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use recorder_common::{
        globals::{AUTO_ENROL, TP_ID_OFF, TP_PATH_OFF, TP_ROOT_OFF},
        maps, programs,
    };

    use super::*;

    fn object() -> aya_obj::Object {
        aya_obj::Object::parse(Kernel::object()).unwrap()
    }

    /// Every map of the object has a name in `recorder_common::maps`, and
    /// every name there is a map of the object (on the eBPF side a map's
    /// name is its static's identifier, or a data section's name). The
    /// object's `.rodata`, the globals, is checked by the next test.
    #[test]
    fn map_names_are_the_objects() {
        let obj = object();
        let object: BTreeSet<&str> = obj
            .maps
            .keys()
            .map(String::as_str)
            .filter(|&name| name != ".rodata")
            .collect();
        assert_eq!(object, BTreeSet::from(maps::ALL));
    }

    /// The same for the programs (named after their functions).
    #[test]
    fn program_names_are_the_objects() {
        let obj = object();
        let object: BTreeSet<&str> = obj.programs.keys().map(String::as_str).collect();
        assert_eq!(object, BTreeSet::from(programs::ALL));
    }

    /// Every global `Kernel::load` may set is in the object, with the size
    /// of the value it is given (`patch_map_data` is what aya's loader
    /// does with `override_global(.., must_exist = true)`).
    #[test]
    fn global_names_and_sizes_are_the_objects() {
        let mut values: Vec<(&str, Vec<u8>)> = Vec::new();
        for (name, value) in globals(&LoadOptions::default()).unwrap() {
            values.push((name, value.to_ne_bytes().to_vec()));
        }
        for (name, value) in globals::arg_syscall_numbers() {
            values.push((name, value.to_ne_bytes().to_vec()));
        }
        // `AUTO_ENROL` and the `CgroupTpFormat` offsets.
        for name in [AUTO_ENROL, TP_ROOT_OFF, TP_ID_OFF, TP_PATH_OFF] {
            values.push((name, 0u32.to_ne_bytes().to_vec()));
        }
        let patch: HashMap<&str, (&[u8], bool)> = values
            .iter()
            .map(|(name, value)| (*name, (value.as_slice(), true)))
            .collect();
        assert_eq!(patch.len(), 15, "a global named twice");
        object().patch_map_data(patch).unwrap();
    }
}
