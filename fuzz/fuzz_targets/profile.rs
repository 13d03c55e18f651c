//! `Profile::from_json`, and what users then do with a profile: write it
//! back (it must parse again and lose nothing), normalise, merge, check,
//! diff, and render it in every output format. Any panic is a bug.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use recorder_fuzz::{same_json, text};
use recorder_profile::profile::{
    Profile, check, diff,
    format::{Format, FormatOptions, render},
};

/// Parses text that recorder itself wrote: it must be a profile.
fn reparse(what: &str, json: &str) -> Profile {
    Profile::from_json(Path::new("fuzz.json"), json)
        .unwrap_or_else(|e| panic!("{what} does not parse again: {e}\n{json}"))
}

fn value(p: &Profile) -> serde_json::Value {
    serde_json::to_value(p).expect("a profile serialises")
}

fuzz_target!(|data: &[u8]| {
    let Some(text) = text(data) else { return };
    let profile = match Profile::from_json(Path::new("fuzz.json"), text) {
        Ok(p) => p,
        Err(e) => {
            // Every parse error names the file and a location.
            let msg = e.to_string();
            assert!(msg.contains("fuzz.json") && msg.contains("line"), "{msg}");
            return;
        }
    };

    // Written and read again, nothing is lost (unknown fields included).
    let again = reparse("to_json()", &profile.to_json());
    assert!(
        same_json(&value(&profile), &value(&again)),
        "the profile changed on a round trip:\n{profile:#?}\n{again:#?}"
    );

    let mut normal = profile.clone();
    normal.normalize();
    let normal_again = reparse("the normalised profile", &normal.to_json());
    // Normalising is idempotent.
    let mut twice = normal_again.clone();
    twice.normalize();
    assert!(
        same_json(&value(&normal_again), &value(&twice)),
        "normalize() is not idempotent:\n{normal_again:#?}\n{twice:#?}"
    );

    // A base profile merged into a recorded one, and into itself.
    let mut merged = profile.clone();
    let _ = merged.merge(&profile);
    reparse("the merged profile", &merged.to_json());

    let _ = check::check(&profile);
    let _ = diff::diff(&profile, &normal);

    for format in [Format::Docker, Format::Oci, Format::Spo, Format::Kafel] {
        let opts = FormatOptions {
            format,
            caps: vec!["CAP_SYS_ADMIN".to_owned()],
            ..FormatOptions::default()
        };
        if let Ok(rendered) = render(&profile, &opts) {
            assert!(
                rendered.text.ends_with('\n'),
                "{format:?} output does not end in a newline"
            );
            if format == Format::Docker {
                reparse("the docker rendering", &rendered.text);
            }
        }
    }
});
