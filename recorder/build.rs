//! Builds `recorder-ebpf` for the BPF target and leaves the object in
//! OUT_DIR, where `aya::include_bytes_aligned!` embeds it.
use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "recorder-ebpf")
        .ok_or_else(|| anyhow!("recorder-ebpf package not found"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("recorder-ebpf manifest has no parent"))?;
    // Rebuild the object when the programs (aya-build watches their
    // package), the types they share, or their dependencies change. Not a
    // build-dependency on recorder-ebpf: that compiled it and aya-ebpf for
    // the host first, late in the build, delaying the eBPF build behind it.
    let workspace = root_dir
        .parent()
        .ok_or_else(|| anyhow!("recorder-ebpf has no parent directory"))?;
    println!("cargo:rerun-if-changed={workspace}/recorder-common");
    println!("cargo:rerun-if-changed={workspace}/Cargo.lock");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context("building the eBPF object failed; run `cargo xtask setup` to install bpf-linker and the nightly rust-src component")
}
