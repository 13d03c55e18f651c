//! Writes the man pages of recorderctl, recorderd and recorder-oci-hook and
//! the shell completions of recorderctl and recorderd into the directory
//! given as the only argument (`cargo xtask docs` runs this):
//! `<dir>/man/*.1`, `<dir>/man/recorderd.8` and
//! `<dir>/completions/{bash,zsh,fish}/`.
//!
//! It lives here rather than in xtask because xtask must build before
//! `cargo xtask setup` has installed what the recorder crate's build script
//! needs (bpf-linker, the nightly rust-src).
use std::{
    fs, io,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use clap_complete::Shell;

/// Writes the page of `cmd` and of each of its subcommands but `help`
/// (clap's pseudo-command, already built into recorderctl's command, so
/// `clap_mangen::generate_to` would write a page for it and for each of
/// its own subcommands). Every page's footer has the binary's version (a
/// subcommand has none of its own).
fn man_pages(cmd: clap::Command, version: &str, dir: &Path) -> io::Result<()> {
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        man_pages(sub.clone(), version, dir)?;
    }
    let source = format!("{} {version}", cmd.get_name());
    clap_mangen::Man::new(cmd).source(source).generate_to(dir)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .context("usage: gen-docs OUT_DIR")?;
    let man = out.join("man");
    fs::create_dir_all(&man).with_context(|| format!("creating {}", man.display()))?;
    for cmd in &recorder::cli::man_pages() {
        if cmd.get_name() == "recorderd" {
            // A daemon: section 8 (system administration), as dockerd(8).
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd.clone())
                .section("8")
                .render(&mut page)
                .context("rendering recorderd(8)")?;
            fs::write(man.join("recorderd.8"), page).context("writing recorderd.8")?;
            continue;
        }
        // One page per command and one per subcommand (recorderctl-record.1).
        let version = cmd.get_version().unwrap_or_default().to_owned();
        man_pages(cmd.clone(), &version, &man)
            .with_context(|| format!("writing the man pages of {}", cmd.get_name()))?;
    }
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let dir = out.join("completions").join(shell.to_string());
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for cmd in &recorder::cli::completions() {
            let mut cmd = cmd.clone();
            let name = cmd.get_name().to_owned();
            clap_complete::generate_to(shell, &mut cmd, &name, &dir)
                .with_context(|| format!("writing the {shell} completions of {name}"))?;
        }
    }
    println!(
        "wrote {} and {}",
        man.display(),
        out.join("completions").display()
    );
    Ok(())
}
