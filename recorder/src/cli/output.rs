//! One meaning per flag name: `-o/--output FORMAT` is the format of a
//! command's report (`text` or `json`) everywhere, and `--out FILE` is where
//! a command writes a profile. Commands that print a profile rather than a
//! report refuse `-o` with a hint ([`NoReport`]), and `--out` refuses a
//! format name ([`out_file`]), so the old `-o FILE` and the likely mix-ups
//! fail at once instead of writing a file named `json`. `drift` prints a
//! report, or with `--widen` a profile: [`check_drift`] holds it to the
//! rule of whichever it prints.

use std::{ffi::OsStr, path::PathBuf};

use clap::{
    Arg, ArgMatches, Args, Command, ValueEnum,
    builder::{EnumValueParser, PossibleValue, TypedValueParser},
    error::{ContextKind, ContextValue, Error},
    parser::ValueSource,
};

/// How a report is printed (`-o/--output`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

/// The names a user may mean as a format rather than a file: the report
/// formats, `yaml`, and the profile formats.
const FORMAT_NAMES: [&str; 7] = ["text", "json", "yaml", "docker", "oci", "spo", "kafel"];

/// Whether `s` is a format name (any case), not a path.
fn is_format_name(s: &str) -> bool {
    FORMAT_NAMES.iter().any(|n| n.eq_ignore_ascii_case(s))
}

/// The value parser of `--out FILE`: any path but a bare format name.
pub fn out_file(s: &str) -> Result<PathBuf, String> {
    if s.is_empty() {
        return Err("expected a file".to_owned());
    }
    if is_format_name(s) {
        return Err(format!(
            "'{s}' is a format, not a file: the profile's format is --format \
             (docker|oci|spo|kafel), a report's is -o (text|json); \
             --out ./{s} writes a file named {s}"
        ));
    }
    Ok(PathBuf::from(s))
}

/// `-o/--output` on a command that prints a profile and no report: always
/// refused, with the hint that fits what was given.
fn refuse_output(s: &str) -> Result<String, String> {
    if is_format_name(s) {
        Err(format!(
            "this command prints a profile, not a report: choose its format \
             with --format (docker|oci|spo|kafel), a file with --out FILE \
             (--out ./{s} for a file named {s})"
        ))
    } else {
        Err(format!(
            "-o/--output is a report's format (text|json) now; \
             write the profile to a file with --out {s}"
        ))
    }
}

/// Flattened into the commands that print a profile (record, merge,
/// convert, the daemon's profile): `-o` is accepted by the parser only to
/// be refused with a hint (hidden from --help).
#[derive(Args, Debug, Clone, Default)]
pub struct NoReport {
    /// Refused here: the profile goes to --out FILE, its format is --format.
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FORMAT",
        hide = true,
        value_parser = refuse_output
    )]
    pub refused: Option<String>,
}

/// The value parser of `-o/--output FORMAT`: `text` or `json`, and a hint
/// when the value looks like a file.
#[derive(Clone, Copy, Debug, Default)]
pub struct FormatParser;

impl TypedValueParser for FormatParser {
    type Value = OutputFormat;

    fn parse_ref(
        &self,
        cmd: &Command,
        arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<OutputFormat, Error> {
        EnumValueParser::<OutputFormat>::new()
            .parse_ref(cmd, arg, value)
            .map_err(|mut e| {
                e.insert(
                    ContextKind::Suggested,
                    ContextValue::StyledStrs(vec![
                        "-o/--output is the report's format; a file to write is --out FILE \
                         (record, merge, convert, profile, drift --widen)"
                            .into(),
                    ]),
                );
                e
            })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            OutputFormat::value_variants()
                .iter()
                .filter_map(ValueEnum::to_possible_value),
        ))
    }
}

/// The ids and flags of [`super::profile::OutputArgs`]: they shape a
/// profile, so on `drift` they go with `--widen` only.
const PROFILE_OPTIONS: [(&str, &str); 6] = [
    ("format", "--format"),
    ("default_action", "--default-action"),
    ("errno", "--errno"),
    ("name", "--name"),
    ("namespace", "--namespace"),
    ("caps", "--cap"),
];

/// Whether the user gave `id` (not its default).
fn given(m: &ArgMatches, id: &str) -> bool {
    m.value_source(id)
        .is_some_and(|s| s != ValueSource::DefaultValue)
}

/// `drift`'s matches `m`, held to the rule of what it prints: with
/// `--widen` a profile (`-o` refused with [`NoReport`]'s hint), without it
/// a report (no profile options). `--out` needs `--widen` by clap's own
/// rules. The error is the message for [`Command::error`].
pub fn check_drift(m: &ArgMatches) -> Result<(), String> {
    let widen = m.get_flag("widen");
    if widen && given(m, "output") {
        let raw = m
            .get_raw("output")
            .and_then(|mut v| v.next())
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_default();
        return refuse_output(&raw).map(|_| ());
    }
    match PROFILE_OPTIONS.iter().find(|(id, _)| given(m, id)) {
        Some((_, flag)) if !widen => Err(format!(
            "{flag} shapes the profile that --widen prints; without --widen, drift \
             prints a report, whose format is -o/--output (text|json)"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[arg(short, long, value_parser = FormatParser, default_value = "text")]
        output: OutputFormat,
        #[arg(long, value_parser = out_file)]
        out: Option<PathBuf>,
    }

    #[derive(Parser, Debug)]
    struct Printer {
        #[command(flatten)]
        no_report: NoReport,
    }

    #[test]
    fn output_is_a_format() {
        let c = Cli::try_parse_from(["t", "-o", "json"]).unwrap();
        assert_eq!(c.output, OutputFormat::Json);
        let e = Cli::try_parse_from(["t", "-o", "p.json"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::InvalidValue);
        assert!(e.to_string().contains("--out FILE"), "{e}");
    }

    #[test]
    fn out_refuses_format_names() {
        for name in FORMAT_NAMES.iter().chain(&["JSON"]) {
            let e = Cli::try_parse_from(["t", "--out", name]).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(&format!("--out ./{name}")), "{e}");
        }
        let c = Cli::try_parse_from(["t", "--out", "./json"]).unwrap();
        assert_eq!(c.out, Some(PathBuf::from("./json")));
        assert!(Cli::try_parse_from(["t", "--out", "json.json"]).is_ok());
    }

    #[test]
    fn a_printer_refuses_output_with_the_fitting_hint() {
        let e = Printer::try_parse_from(["t", "-o", "app.json"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--out app.json"), "{e}");
        let e = Printer::try_parse_from(["t", "--output", "json"]).unwrap_err();
        assert!(e.to_string().contains("--format"), "{e}");
        assert!(Printer::try_parse_from(["t"]).is_ok());
    }
}
