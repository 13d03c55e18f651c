//! `recorder-oci-hook`'s command line.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "recorder-oci-hook",
    version,
    about = "OCI prestart hook: records the container's syscalls into the profile named by the io.containers.trace-syscall annotation (of:/out.json or if:/in.json;of:/out.json)"
)]
pub struct Cli {
    /// recorderd's control socket; without a running recorderd the hook
    /// records on its own in a detached process.
    #[arg(long, value_name = "PATH", default_value = crate::config::DEFAULT_SOCKET, env = "RECORDER_SOCKET")]
    pub socket: PathBuf,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
