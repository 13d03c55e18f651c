//! recorderctl's profile engineering commands: `convert`, `merge`, `diff`
//! and `check`. They need no daemon and no privileges.

use std::{
    io::{self, Read as _, Write as _},
    path::{Path, PathBuf},
};

use clap::Subcommand;

use crate::profile::{
    self, Profile, ProfileError, check, diff,
    format::{self, FormatError, OutputArgs},
};

/// Errors of the profile commands.
#[derive(Debug, thiserror::Error)]
pub enum ProfileCmdError {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("cannot write to standard output: {0}")]
    Stdout(#[source] io::Error),
}

/// The profile commands, to flatten into recorderctl's command enum.
#[derive(Subcommand, Debug, Clone)]
pub enum ProfileCommand {
    /// Convert a docker-format profile to another format (docker, oci, spo,
    /// kafel).
    Convert {
        /// The profile to convert ("-" for standard input).
        #[arg(value_name = "IN")]
        input: PathBuf,
        /// Write here (atomically) instead of to standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Merge profiles into one that allows what any of them allows.
    Merge {
        /// The profiles; the first one's default action and flags win.
        #[arg(required = true, num_args = 2.., value_name = "PROFILE")]
        inputs: Vec<PathBuf>,
        /// Write here (atomically) instead of to standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Show the syscalls B allows that A does not (+) and the reverse (-),
    /// per architecture. Exits 0 when they are the same, 1 when they
    /// differ, 2 on trouble (like diff).
    Diff {
        #[arg(value_name = "A")]
        a: PathBuf,
        #[arg(value_name = "B")]
        b: PathBuf,
    },
    /// Validate a docker-format profile: unknown syscalls, actions,
    /// operators and architectures, argument indexes above 5, architectures
    /// together with archMap, duplicate names. Exits 1 when it finds
    /// problems, 2 when the file cannot be read or parsed.
    Check {
        #[arg(value_name = "PROFILE")]
        profile: PathBuf,
    },
}

impl ProfileCommand {
    /// The exit code for an error of this command (2 for diff and check,
    /// whose 1 means "differ" / "has problems").
    pub fn error_exit_code(&self) -> u8 {
        match self {
            Self::Diff { .. } | Self::Check { .. } => 2,
            _ => 1,
        }
    }
}

/// Reads a profile from a file, or from standard input for "-".
pub fn read_profile(path: &Path) -> Result<Profile, ProfileError> {
    if path == Path::new("-") {
        let mut text = String::new();
        io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| ProfileError::Read {
                path: path.to_owned(),
                source,
            })?;
        return Profile::from_json(Path::new("<stdin>"), &text);
    }
    Profile::read(path)
}

fn write_out(text: &str, output: Option<&Path>) -> Result<(), ProfileCmdError> {
    match output {
        Some(path) => Ok(profile::write(path, text)?),
        None => {
            let mut out = io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(ProfileCmdError::Stdout)
        }
    }
}

fn note(notes: &[String]) {
    for n in notes {
        eprintln!("recorderctl: note: {n}");
    }
}

/// Runs a profile command; returns the exit code.
pub fn run(cmd: ProfileCommand) -> Result<u8, ProfileCmdError> {
    match cmd {
        ProfileCommand::Convert { input, output, out } => {
            let profile = read_profile(&input)?;
            let rendered = format::render(&profile, &out.options())?;
            note(&rendered.notes);
            write_out(&rendered.text, output.as_deref())?;
            Ok(0)
        }
        ProfileCommand::Merge {
            inputs,
            output,
            out,
        } => {
            let mut profiles = inputs.iter().map(|p| read_profile(p));
            let mut merged = match profiles.next() {
                Some(first) => first?,
                None => return Ok(0),
            };
            merged.normalize();
            for p in profiles {
                note(&merged.merge(&p?));
            }
            let rendered = format::render(&merged, &out.options())?;
            note(&rendered.notes);
            write_out(&rendered.text, output.as_deref())?;
            Ok(0)
        }
        ProfileCommand::Diff { a, b } => {
            let pa = read_profile(&a)?;
            let pb = read_profile(&b)?;
            let d = diff::diff(&pa, &pb);
            if d.is_empty() {
                return Ok(0);
            }
            write_out(
                &format!("--- {}\n+++ {}\n{d}", a.display(), b.display()),
                None,
            )?;
            Ok(1)
        }
        ProfileCommand::Check { profile } => {
            let p = read_profile(&profile)?;
            let problems = check::check(&p);
            let mut text = String::new();
            for problem in &problems {
                text.push_str(&format!("{}: {problem}\n", profile.display()));
            }
            if problems.is_empty() {
                text = format!("{}: ok\n", profile.display());
            }
            write_out(&text, None)?;
            Ok(u8::from(!problems.is_empty()))
        }
    }
}
