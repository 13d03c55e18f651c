//! The command line of recorderctl's profile commands (convert, merge,
//! diff, check; run by [`crate::profile_commands`]) and the output options
//! of every command that writes a profile.

use std::{ffi::OsStr, path::PathBuf};

use clap::{
    Arg, Args, Command, Subcommand, ValueEnum,
    builder::{EnumValueParser, PossibleValue, TypedValueParser},
    error::{ContextKind, ContextValue, Error},
};

use super::output::{NoReport, out_file};
use crate::profile::{
    DefaultAction,
    format::{Format, FormatOptions},
};

/// The exit status convention of every profile command, for their --help
/// and man pages.
pub const EXIT_STATUS: &str = "Exit status: 0 on success (check: no problems; diff: the same); \
1 when check finds problems or diff finds differences; \
2 on trouble: a file cannot be read, parsed or written, or a usage error. \
The same for convert, merge, diff and check.";

/// The profile commands, to flatten into recorderctl's command enum.
#[derive(Subcommand, Debug, Clone)]
pub enum ProfileCommand {
    /// Convert a docker-format profile to another format (docker, oci, spo,
    /// kafel).
    #[command(after_help = EXIT_STATUS)]
    Convert {
        /// The profile to convert ("-" for standard input).
        #[arg(value_name = "IN")]
        input: PathBuf,
        /// Write here (atomically) instead of to standard output.
        #[arg(long = "out", value_name = "FILE", value_parser = out_file)]
        out_file: Option<PathBuf>,
        #[command(flatten)]
        out: OutputArgs,
        #[command(flatten)]
        no_report: NoReport,
    },
    /// Merge profiles into one that allows what any of them allows.
    #[command(after_help = EXIT_STATUS)]
    Merge {
        /// The profiles; the first one's default action and flags win.
        #[arg(required = true, num_args = 2.., value_name = "PROFILE")]
        inputs: Vec<PathBuf>,
        /// Write here (atomically) instead of to standard output.
        #[arg(long = "out", value_name = "FILE", value_parser = out_file)]
        out_file: Option<PathBuf>,
        #[command(flatten)]
        out: OutputArgs,
        #[command(flatten)]
        no_report: NoReport,
    },
    /// Show the syscalls B allows that A does not (+) and the reverse (-),
    /// per architecture. Exits 0 when they are the same, 1 when they
    /// differ, 2 on trouble (like diff).
    #[command(after_help = EXIT_STATUS)]
    Diff {
        #[arg(value_name = "A")]
        a: PathBuf,
        #[arg(value_name = "B")]
        b: PathBuf,
    },
    /// Validate a docker-format profile: unknown syscalls, actions,
    /// operators and architectures, argument indexes above 5, architectures
    /// together with archMap, duplicate names. Exits 1 when it finds
    /// problems, 2 when the file cannot be read or parsed. Warns (exit
    /// code unchanged) about what runtimes refuse from a registry: over
    /// 1 MiB, over 128 syscall entries, NOTIFY or listener fields.
    #[command(after_help = EXIT_STATUS)]
    Check {
        #[arg(value_name = "PROFILE")]
        profile: PathBuf,
    },
}

/// The exit code of every profile command on trouble (see [`EXIT_STATUS`];
/// 1 is check's "has problems" and diff's "differ").
pub const TROUBLE: u8 = 2;

/// The output options of a command that writes a profile, to flatten into
/// a clap command (`record`, `convert`, the daemon's `stop` and `profile`).
#[derive(Clone, Debug, Default, Args)]
pub struct OutputArgs {
    /// The profile's format (a report's is -o/--output).
    #[arg(long, value_name = "FORMAT", value_parser = FormatParser, default_value = "docker")]
    pub format: Format,
    /// What happens to syscalls the profile does not allow (log: audit mode).
    #[arg(long, value_enum, value_name = "ACTION")]
    pub default_action: Option<DefaultAction>,
    /// The errno returned for syscalls the profile does not allow (default
    /// 1, EPERM; at most 4095); given alone, it implies `--default-action
    /// errno`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=MAX_ERRNO))]
    pub errno: Option<u32>,
    /// Name of the `spo` resource (and of the `kafel` policy) [default:
    /// recorded; for `profile --image`, the image's, e.g.
    /// registry.example/app:1 → registry-example-app-1].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Namespace of the `spo` resource.
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// A capability the container has (e.g. CAP_SYS_ADMIN), for rules that
    /// depend on capabilities in the oci, spo and kafel formats. Repeatable.
    #[arg(long = "cap", value_name = "CAP", value_parser = capability)]
    pub caps: Vec<String>,
}

/// The value parser of `--format`: a profile format, with a hint for the
/// names of what they are written in (`json` is docker's, `yaml` spo's)
/// rather than clap's nearest spelling.
#[derive(Clone, Copy, Debug, Default)]
pub struct FormatParser;

impl TypedValueParser for FormatParser {
    type Value = Format;

    fn parse_ref(&self, cmd: &Command, arg: Option<&Arg>, value: &OsStr) -> Result<Format, Error> {
        EnumValueParser::<Format>::new()
            .parse_ref(cmd, arg, value)
            .map_err(|mut e| {
                let value = value.to_string_lossy().to_ascii_lowercase();
                let hint = match value.as_str() {
                    "json" => {
                        "the docker format is JSON: --format docker \
                               (--format oci: the linux.seccomp object of a config.json)"
                    }
                    "yaml" | "yml" => "the spo format is YAML: --format spo",
                    _ => return e,
                };
                e.remove(ContextKind::SuggestedValue);
                e.insert(
                    ContextKind::Suggested,
                    ContextValue::StyledStrs(vec![hint.into()]),
                );
                e
            })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            Format::value_variants()
                .iter()
                .filter_map(ValueEnum::to_possible_value),
        ))
    }
}

/// The largest errno the kernel returns (`MAX_ERRNO`).
const MAX_ERRNO: i64 = 4095;

/// The Linux capabilities, in the kernel's order (CAP_CHOWN is 0).
const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A known capability name (CAP_SYS_ADMIN, or sys_admin), upper-cased with
/// its CAP_ prefix.
fn capability(s: &str) -> Result<String, String> {
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if CAPABILITIES.contains(&name.as_str()) {
        Ok(name)
    } else {
        Err("not a Linux capability (e.g. CAP_SYS_ADMIN, CAP_NET_ADMIN)".to_owned())
    }
}

impl OutputArgs {
    /// The rendering options these arguments ask for.
    pub fn options(&self) -> FormatOptions {
        FormatOptions {
            format: self.format,
            // An errno given alone asks for the errno action.
            default_action: self
                .default_action
                .or(self.errno.map(|_| DefaultAction::Errno)),
            errno_ret: self.errno,
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            caps: self.caps.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        out: OutputArgs,
    }

    fn parse(args: &[&str]) -> Result<OutputArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied())).map(|c| c.out)
    }

    #[test]
    fn errno_alone_implies_the_errno_action() {
        let o = parse(&["--errno", "13"]).unwrap().options();
        assert_eq!(o.default_action, Some(DefaultAction::Errno));
        assert_eq!(o.errno_ret, Some(13));
        let o = parse(&["--errno", "13", "--default-action", "log"])
            .unwrap()
            .options();
        assert_eq!(o.default_action, Some(DefaultAction::Log));
        assert_eq!(parse(&[]).unwrap().options().default_action, None);
    }

    #[test]
    fn format_names_the_format_a_file_type_means() {
        assert_eq!(parse(&[]).unwrap().format, Format::Docker);
        assert_eq!(parse(&["--format", "kafel"]).unwrap().format, Format::Kafel);
        for (given, meant) in [("json", "--format docker"), ("YAML", "--format spo")] {
            let e = parse(&["--format", given]).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            let text = e.to_string();
            assert!(text.contains(meant), "{text}");
            assert!(!text.contains("similar value"), "{text}");
        }
        // Other mistakes keep clap's nearest spelling.
        let e = parse(&["--format", "dockr"]).unwrap_err().to_string();
        assert!(e.contains("'docker'"), "{e}");
    }

    #[test]
    fn bad_errnos_and_caps_are_usage_errors() {
        for args in [
            &["--errno", "99999"][..],
            &["--cap", "CAP_FOO"],
            &["--cap", ""],
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{args:?}"
            );
            assert!(e.to_string().contains(args[0]), "{args:?}: {e}");
        }
        assert_eq!(
            parse(&["--cap", "sys_admin", "--cap", "CAP_BPF"])
                .unwrap()
                .caps,
            ["CAP_SYS_ADMIN", "CAP_BPF"]
        );
    }
}
