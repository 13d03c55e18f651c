//! recorderctl's profile engineering commands: `convert`, `merge`, `diff`
//! and `check`. They need no daemon and no privileges. Their command line
//! is [`crate::cli::profile`].

use std::{
    io::{self, Read as _, Write as _},
    path::Path,
};

use crate::{
    cli::profile::ProfileCommand,
    profile::{
        self, Profile, ProfileError, check, diff,
        format::{self, FormatError},
        limits,
    },
};

/// Errors of the profile commands.
#[derive(Debug, thiserror::Error)]
pub enum ProfileCmdError {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("cannot write to standard output")]
    Stdout(#[source] io::Error),
}

/// Reads a profile from a file, or from standard input for "-".
pub fn read_profile(path: &Path) -> Result<Profile, ProfileError> {
    if path == Path::new("-") {
        let mut text = String::new();
        io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| ProfileError::Read {
                path: path.to_owned(),
                err: source,
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
        ProfileCommand::Convert {
            input,
            out_file,
            out,
            ..
        } => {
            let profile = read_profile(&input)?;
            let rendered = format::render(&profile, &out.options())?;
            note(&rendered.notes);
            write_out(&rendered.text, out_file.as_deref())?;
            Ok(0)
        }
        ProfileCommand::Merge {
            inputs,
            out_file,
            out,
            ..
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
            write_out(&rendered.text, out_file.as_deref())?;
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
            // Not wrong, but a registry's runtimes would not take it: a
            // warning, the exit code unchanged.
            let mut text = String::new();
            for over in limits::check_limits(&p) {
                text.push_str(&format!(
                    "{}: warning: {over} (a profile pulled from a registry)\n",
                    profile.display()
                ));
            }
            for problem in &problems {
                text.push_str(&format!("{}: {problem}\n", profile.display()));
            }
            if problems.is_empty() {
                text.push_str(&format!("{}: ok\n", profile.display()));
            }
            write_out(&text, None)?;
            Ok(u8::from(!problems.is_empty()))
        }
    }
}
