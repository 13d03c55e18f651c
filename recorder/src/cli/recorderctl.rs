//! `recorderctl`'s command line.

use std::{ffi::OsString, path::PathBuf};

use clap::{Parser, Subcommand, error::ErrorKind};

use super::{
    client::DaemonCommand,
    output::{NoReport, check_drift, out_file},
    profile::{OutputArgs, ProfileCommand},
    registry::RegistryCommand,
};

/// Record the syscalls of containers and commands as seccomp profiles.
#[derive(Parser, Debug)]
#[command(
    name = "recorderctl",
    version,
    about = "Record the syscalls of containers and commands as seccomp profiles"
)]
pub struct Cli {
    /// recorderd's control socket (for the daemon commands; before or after
    /// the command).
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        default_value = crate::config::DEFAULT_SOCKET,
        env = "RECORDER_SOCKET"
    )]
    pub socket: PathBuf,
    /// Give up when recorderd has not answered within SECONDS (for the
    /// daemon commands; before or after the command).
    #[arg(
        long,
        global = true,
        value_name = "SECONDS",
        default_value_t = 10.0,
        value_parser = super::client::timeout_secs
    )]
    pub timeout: f64,
    #[command(subcommand)]
    pub command: Command,
}

/// The commands that do not talk to recorderd: the global `--socket` and
/// `--timeout` are hidden from their help (and still accepted).
const NO_SOCKET: [&str; 7] = [
    "record",
    "convert",
    "merge",
    "diff",
    "check",
    "pull",
    "completions",
];

/// recorderctl's command as the binary runs it: [`Cli`]'s, with `--socket`
/// hidden where it is not used, and each command's usage line fixed to
/// its plain form. (In an error, clap's usage line repeats the options
/// given, so `drift --socket S` printed `Usage: recorderctl drift --socket
/// <PATH> <CONTAINER>`, as if the socket were required.)
pub fn command() -> clap::Command {
    use clap::CommandFactory as _;
    let mut cmd = Cli::command();
    let daemon_only: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| ["socket", "timeout"].contains(&a.get_id().as_str()))
        .cloned()
        .collect();
    for arg in daemon_only {
        for name in NO_SOCKET {
            let hidden = arg.clone().global(false).hide(true);
            cmd = cmd.mut_subcommand(name, |sub| sub.arg(hidden));
        }
    }
    cmd.build();
    fix_usage(&mut cmd);
    cmd
}

/// Sets the usage line of `cmd` and its subcommands to the one --help shows.
fn fix_usage(cmd: &mut clap::Command) {
    let usage = cmd.render_usage().to_string();
    let usage = usage.strip_prefix("Usage: ").unwrap_or(&usage).to_owned();
    *cmd = std::mem::take(cmd).override_usage(usage);
    for sub in cmd.get_subcommands_mut() {
        fix_usage(sub);
    }
}

/// Parses recorderctl's arguments with [`command`].
pub fn try_parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    use clap::FromArgMatches as _;
    let mut cmd = command();
    let matches = cmd.try_get_matches_from_mut(args)?;
    // What clap's rules cannot say: drift's options that belong to the
    // report or to the profile (--widen) it does not print.
    if let Some(("drift", m)) = matches.subcommand()
        && let Err(msg) = check_drift(m)
    {
        return Err(match cmd.find_subcommand_mut("drift") {
            Some(drift) => drift.error(ErrorKind::ArgumentConflict, msg),
            None => cmd.error(ErrorKind::ArgumentConflict, msg),
        });
    }
    Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run CMD and record every syscall it and its children make; print or
    /// write a seccomp profile that allows exactly those. Needs no daemon.
    ///
    /// Without --out, stdout carries the profile alone and CMD's stdout goes
    /// to recorderctl's stderr (so `record -- app > app.json` works); with
    /// --out FILE, CMD keeps its stdout. CMD's stdin and stderr are its own.
    Record {
        /// Write the profile here (atomically) instead of to stdout; CMD
        /// then keeps its stdout.
        #[arg(long = "out", value_name = "FILE", value_parser = out_file)]
        out_file: Option<PathBuf>,
        #[command(flatten)]
        no_report: NoReport,
        /// Merge this profile into the result (e.g. a runtime's start-up needs).
        #[arg(long, value_name = "FILE")]
        base: Option<PathBuf>,
        /// The cgroup2 path under which the recording cgroup is created.
        #[arg(long, default_value = "/recorder", value_name = "PATH")]
        cgroup_parent: String,
        /// Kernel BTF to read struct offsets from.
        #[arg(long, default_value = crate::btf::VMLINUX, value_name = "FILE")]
        btf: PathBuf,
        /// Do not tell 32-bit (compat) syscalls apart from native ones.
        #[arg(long)]
        no_compat: bool,
        /// Also record the values of key arguments (socket domain, clone and
        /// unshare namespace flags, personality) and allow only those.
        #[arg(long)]
        args: bool,
        /// When CMD exits, wait until every process it started has exited
        /// too (daemons a script starts are recorded). Without it they are
        /// killed, and named on stderr.
        #[arg(long)]
        wait_all: bool,
        #[command(flatten)]
        out: OutputArgs,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
    #[command(flatten)]
    Daemon(DaemonCommand),
    #[command(flatten)]
    Profile(ProfileCommand),
    #[command(flatten)]
    Registry(RegistryCommand),
    /// Print a shell completion script for recorderctl to stdout.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
        command().debug_assert();
    }

    /// The usage of every error: what --help shows, never the options
    /// given; `--socket` only on the commands that use it.
    #[test]
    fn usage_lines_show_options_as_optional() {
        for args in [
            &["recorderctl", "drift", "--socket", "/s"][..],
            &[
                "recorderctl",
                "profile",
                "--socket",
                "/s",
                "--image",
                "x",
                "--bogus",
            ],
            &["recorderctl", "--socket", "/s", "status", "--bogus"],
            &["recorderctl", "convert", "--socket", "/s"],
        ] {
            let e = try_parse_from(args).unwrap_err().to_string();
            let usage = e.lines().find(|l| l.starts_with("Usage:")).unwrap();
            assert!(!usage.contains("--socket"), "{args:?}: {usage}");
            assert!(usage.contains("[OPTIONS]"), "{args:?}: {usage}");
        }
        let mut cmd = command();
        for sub in cmd.get_subcommands_mut() {
            let help = sub.render_help().to_string();
            let name = sub.get_name().to_owned();
            let uses = !NO_SOCKET.contains(&name.as_str()) && name != "help";
            assert_eq!(help.contains("--socket"), uses, "{name}: {help}");
        }
        // Hidden, not refused: the socket before or after any command.
        let cli = try_parse_from(["recorderctl", "convert", "--socket", "/s", "a"]).unwrap();
        assert_eq!(cli.socket, PathBuf::from("/s"));
        let cli = try_parse_from(["recorderctl", "--socket", "/s", "check", "a"]).unwrap();
        assert_eq!(cli.socket, PathBuf::from("/s"));
    }

    #[test]
    fn blank_container_ids_are_usage_errors() {
        for cmd in ["start", "stop", "profile"] {
            for id in ["", " ", "\t"] {
                let e = try_parse_from(["recorderctl", cmd, id]).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::ValueValidation);
                assert_eq!(e.exit_code(), 2);
            }
        }
        assert!(try_parse_from(["recorderctl", "stop", "abc"]).is_ok());
    }

    #[test]
    fn daemon_commands_take_a_timeout_before_or_after_the_command() {
        let cli = try_parse_from(["recorderctl", "status"]).unwrap();
        assert_eq!(cli.timeout, 10.0);
        for args in [
            &["recorderctl", "list", "--timeout", "0.5"][..],
            &["recorderctl", "--timeout", "0.5", "list"],
            &["recorderctl", "--timeout", "0.5", "profile", "--image", "x"],
            &["recorderctl", "drift", "--all", "--timeout=0.5"],
        ] {
            assert_eq!(try_parse_from(args).unwrap().timeout, 0.5, "{args:?}");
        }
        for bad in ["0", "-1", "inf", "NaN", "x"] {
            assert!(try_parse_from(["recorderctl", "status", "--timeout", bad]).is_err());
            assert!(try_parse_from(["recorderctl", "--timeout", bad, "status"]).is_err());
        }
    }

    #[test]
    fn record_takes_the_command_verbatim() {
        let cli = try_parse_from([
            "recorderctl",
            "record",
            "--out",
            "p.json",
            "--",
            "ls",
            "-l",
            "--all",
        ])
        .unwrap();
        let Command::Record {
            out_file, command, ..
        } = cli.command
        else {
            panic!("expected record");
        };
        assert_eq!(out_file, Some(PathBuf::from("p.json")));
        assert_eq!(command, ["ls", "-l", "--all"]);
    }

    #[test]
    fn output_is_the_report_format_before_or_after_the_container() {
        use super::super::{client::DaemonCommand, output::OutputFormat};
        for args in [
            &["recorderctl", "stop", "-o", "json", "abc"][..],
            &["recorderctl", "stop", "abc", "--output", "json"],
            &["recorderctl", "list", "-o", "json"],
            &["recorderctl", "status", "--output=json"],
        ] {
            let cli = try_parse_from(args).unwrap();
            let conn = match cli.command {
                Command::Daemon(
                    DaemonCommand::Stop { conn, .. }
                    | DaemonCommand::List { conn, .. }
                    | DaemonCommand::Status { conn },
                ) => conn,
                other => panic!("{args:?}: {other:?}"),
            };
            assert_eq!(conn.output, OutputFormat::Json, "{args:?}");
        }
        // Commands that print a profile refuse -o, with a hint.
        for args in [
            &["recorderctl", "record", "-o", "p.json", "--", "true"][..],
            &["recorderctl", "merge", "a", "b", "--output", "json"],
            &["recorderctl", "convert", "a", "-o", "b"],
            &["recorderctl", "profile", "abc", "-o", "json"],
        ] {
            let e = try_parse_from(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
            assert!(e.to_string().contains("--out"), "{args:?}: {e}");
        }
    }

    #[test]
    fn socket_is_global() {
        for args in [
            &["recorderctl", "--socket", "/s", "status"][..],
            &["recorderctl", "status", "--socket", "/s"],
            &["recorderctl", "--socket", "/s", "stop", "abc"],
        ] {
            let cli = try_parse_from(args).unwrap();
            assert_eq!(cli.socket, PathBuf::from("/s"), "{args:?}");
        }
    }

    #[test]
    fn drift_takes_a_container_or_all() {
        use super::super::{client::DaemonCommand, output::OutputFormat};
        let parse = |args: &[&str]| try_parse_from([&["recorderctl", "drift"][..], args].concat());
        let cli = parse(&["web", "--output", "json"]).unwrap();
        let Command::Daemon(DaemonCommand::Drift {
            conn,
            container,
            widen,
            ..
        }) = cli.command
        else {
            panic!("expected drift");
        };
        assert_eq!(conn.output, OutputFormat::Json);
        assert_eq!(container.as_deref(), Some("web"));
        assert!(!widen);
        assert!(parse(&["--all"]).is_ok());
        assert!(parse(&["--all", "-o", "json"]).is_ok());
        assert!(parse(&["web", "--widen", "--out", "p.json", "--format", "oci"]).is_ok());
        assert!(parse(&["web", "--widen", "--errno", "13", "--cap", "sys_admin"]).is_ok());
        for bad in [
            &[][..],
            &["web", "--all"],
            &["--all", "--widen"],
            &["web", "--out", "p.json"],
            &["--all", "--out", "p.json"],
            &[""],
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn drift_holds_to_what_it_prints() {
        let parse = |args: &[&str]| {
            try_parse_from([&["recorderctl", "drift"][..], args].concat())
                .unwrap_err()
                .to_string()
        };
        // --widen prints a profile: --out refuses a format name, -o is
        // refused with the hint of every command that prints a profile.
        assert!(parse(&["web", "--widen", "--out", "json"]).contains("--out ./json"));
        for o in ["-o", "--output"] {
            let e = parse(&["web", "--widen", o, "json"]);
            assert!(e.contains("--format (docker|oci|spo|kafel)"), "{e}");
        }
        let e = parse(&["web", "--widen", "-o", "next.json"]);
        assert!(e.contains("drift --widen"), "{e}");
        // Without --widen it prints a report: no profile options.
        for (flag, value) in [
            ("--format", "spo"),
            ("--default-action", "log"),
            ("--errno", "1"),
            ("--name", "x"),
            ("--namespace", "x"),
            ("--cap", "CAP_BPF"),
        ] {
            for target in ["web", "--all"] {
                let e = parse(&[target, flag, value]);
                assert!(e.starts_with(&format!("error: {flag} shapes")), "{e}");
                assert!(e.contains("-o/--output"), "{e}");
            }
        }
        assert!(parse(&["--all", "--out", "p.json"]).contains("cannot be used with"));
    }

    #[test]
    fn profile_writes_to_out() {
        use super::super::client::DaemonCommand;
        let cli =
            try_parse_from(["recorderctl", "profile", "--image", "x", "--out", "a.json"]).unwrap();
        let Command::Daemon(DaemonCommand::Profile { out_file, .. }) = cli.command else {
            panic!("expected profile");
        };
        assert_eq!(out_file, Some(PathBuf::from("a.json")));
        let e = try_parse_from(["recorderctl", "profile", "web", "--out", "json"]).unwrap_err();
        assert!(e.to_string().contains("--out ./json"), "{e}");
    }
}
