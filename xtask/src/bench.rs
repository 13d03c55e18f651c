//! `cargo xtask bench`.

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("cargo xtask bench: not implemented yet")
}
