//! `cargo xtask setup` and `cargo xtask run`.

#[derive(clap::Args, Debug)]
pub struct Args {}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Arguments for recorderctl.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

pub fn run(_args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("cargo xtask setup: not implemented yet")
}

pub fn run_recorderctl(_args: &RunArgs) -> anyhow::Result<()> {
    anyhow::bail!("cargo xtask run: not implemented yet")
}
