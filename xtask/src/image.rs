//! `cargo xtask image [--tool docker|podman] [--tag TAG]... [--archive FILE]`:
//! the container image deploy/kubernetes/recorderd.yaml runs, built with no
//! network: static (musl) binaries of recorderd, recorderctl and
//! recorder-oci-hook in /usr/local/bin, `FROM scratch`, nothing else
//! (deploy/image/Containerfile), with the OCI labels version, revision,
//! source and licenses. Tagged `localhost/recorder:<version>` and `:latest`,
//! and saved as an archive (target/image/recorder-<version>.tar) for
//! `ctr -n k8s.io images import` on a node.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail, ensure};

use crate::{
    cargo, git, output,
    plan::Goal,
    run_ok,
    setup::{self, timed},
    target_dir, workspace_root,
};

/// The binaries the image carries, all in /usr/local/bin.
pub(crate) const BINARIES: [&str; 3] = ["recorderd", "recorderctl", "recorder-oci-hook"];

/// The image's name, without the tag.
pub(crate) const NAME: &str = "localhost/recorder";

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The container tool that builds (and saves) the image.
    #[arg(long, value_enum, default_value_t = Tool::Docker)]
    pub tool: Tool,
    /// Tag the image TAG instead of localhost/recorder:<version> and
    /// :latest (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Where to write the archive [default: target/image/recorder-<version>.tar].
    #[arg(long, value_name = "FILE")]
    pub archive: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Tool {
    Docker,
    Podman,
}

impl Tool {
    fn program(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Podman => "podman",
        }
    }
}

/// The default tags: the version and `latest`.
pub(crate) fn default_tags() -> Vec<String> {
    vec![
        format!("{NAME}:{}", env!("CARGO_PKG_VERSION")),
        format!("{NAME}:latest"),
    ]
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let tool = args.tool.program();
    ensure!(
        output(tool, ["--version"]).is_some(),
        "{tool} is not installed (or does not run); `cargo xtask setup --for test` installs docker.io and podman"
    );
    // Installs what is missing (the musl target, musl-tools' C compiler
    // for ring); a machine set up for the tests has it all already.
    setup::setup_for(Goal::Image, &setup::Args::default())?;
    let triple = setup::musl_triple();
    timed(
        &format!("build: static binaries ({triple}, release)"),
        || {
            run_ok(cargo().args([
                "build",
                "--release",
                "--package",
                "recorder",
                "--bins",
                "--target",
                &triple,
            ]))
        },
    )?;
    let built = target_dir().join(&triple).join("release");
    for bin in BINARIES {
        ensure_static(&built.join(bin))?;
    }

    let tags = if args.tags.is_empty() {
        default_tags()
    } else {
        args.tags.clone()
    };
    // A context of the build's own: nothing but the Containerfile and the
    // binaries is sent to the builder.
    let context = target_dir()
        .join("image")
        .join(format!("context-{}", std::process::id()));
    stage(&built, &context)?;
    let labels = [
        ("VERSION", env!("CARGO_PKG_VERSION").to_owned()),
        ("REVISION", revision()),
        ("SOURCE", env!("CARGO_PKG_REPOSITORY").to_owned()),
        ("LICENSES", env!("CARGO_PKG_LICENSE").to_owned()),
    ];
    let built_image = timed(&format!("image: {tool} build (no network)"), || {
        let mut build = Command::new(tool);
        build.args(["build", "--network", "none", "--file"]);
        build.arg(context.join("Containerfile"));
        for (arg, value) in &labels {
            build.arg("--build-arg").arg(format!("{arg}={value}"));
        }
        for tag in &tags {
            build.args(["--tag", tag]);
        }
        build.arg(&context);
        run_ok(&mut build)
    });
    _ = fs::remove_dir_all(&context);
    built_image?;

    let archive = args.archive.clone().unwrap_or_else(|| {
        target_dir()
            .join("image")
            .join(format!("recorder-{}.tar", env!("CARGO_PKG_VERSION")))
    });
    timed(&format!("image: {tool} save"), || {
        save(args.tool, &tags, &archive)
    })?;

    let size = output(
        tool,
        ["image", "inspect", "--format", "{{.Size}}", &tags[0]],
    )
    .and_then(|s| s.trim().parse::<u64>().ok())
    .context("cannot read the image's size")?;
    let archived = fs::metadata(&archive)?.len();
    eprintln!(
        "image {} ({}): {:.1} MB; archive {} ({:.1} MB) for `ctr -n k8s.io images import`",
        tags.join(", "),
        tool,
        mb(size),
        archive.display(),
        mb(archived)
    );
    Ok(())
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Fails unless `bin` is statically linked (no program interpreter): the
/// image has no libc to load.
fn ensure_static(bin: &Path) -> anyhow::Result<()> {
    let headers = output("readelf", [Path::new("--program-headers"), bin]).with_context(|| {
        format!(
            "cannot read the program headers of {} (readelf, from binutils)",
            bin.display()
        )
    })?;
    if headers.contains("INTERP") {
        bail!("{} is dynamically linked", bin.display());
    }
    Ok(())
}

/// The build context: the Containerfile and `usr/local/bin/<binaries>`
/// (stripped).
fn stage(built: &Path, context: &Path) -> anyhow::Result<()> {
    _ = fs::remove_dir_all(context);
    let bin = context.join("usr/local/bin");
    fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
    for name in BINARIES {
        fs::copy(built.join(name), bin.join(name))
            .with_context(|| format!("copying {}", built.join(name).display()))?;
        crate::deb::strip(&bin.join(name))?;
    }
    fs::copy(
        workspace_root().join("deploy/image/Containerfile"),
        context.join("Containerfile"),
    )?;
    Ok(())
}

/// The commit the image is built from (`-dirty` if the tree has changes),
/// or `unknown` outside a git checkout.
fn revision() -> String {
    match git(&["rev-parse", "HEAD"]) {
        Some(head) if git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty()) => {
            format!("{head}-dirty")
        }
        Some(head) => head,
        None => "unknown".to_owned(),
    }
}

/// Saves the image under all its tags into one archive (docker-archive
/// format, which `ctr images import` and `podman load` read).
fn save(tool: Tool, tags: &[String], archive: &Path) -> anyhow::Result<()> {
    if let Some(dir) = archive.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    _ = fs::remove_file(archive);
    let mut save = Command::new(tool.program());
    save.arg("save");
    if tool == Tool::Podman && tags.len() > 1 {
        save.arg("--multi-image-archive");
    }
    save.arg("--output").arg(archive).args(tags);
    run_ok(&mut save)
}
