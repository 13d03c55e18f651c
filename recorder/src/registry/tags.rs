//! The tags artifacts go under, in one repository: an image's fleet tag
//! (the merge `publish` pushes) and one contribution tag per (image, node),
//! `<fleet tag>__<node>`, so that nodes never overwrite each other. Made
//! of a readable part (escaped to what a tag allows) and a hash of the
//! exact string, so two names never share a tag.

use sha2::{Digest as _, Sha256};

/// Between an image's fleet tag and a node in a contribution's tag; the
/// readable parts never hold it.
pub const SEP: &str = "__";

/// The readable part of a tag kept at most this long.
const READABLE: usize = 40;

/// `s` as tag characters: ASCII letters, digits, `.` and `-` (every run of
/// anything else one `-`), lower-cased, at most [`READABLE`] long.
fn readable(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= READABLE {
            break;
        }
    }
    out.trim_matches(|c| c == '-' || c == '.').to_owned()
}

/// The first `n` hex digits of `s`'s SHA-256.
fn hash(s: &str, n: usize) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..n]
        .to_owned()
}

/// A part of a tag: `<readable>-<hash>`, or `x-<hash>` when nothing
/// readable is left.
fn part(shown: &str, exact: &str, n: usize) -> String {
    let r = readable(shown);
    let r = if r.is_empty() { "x".to_owned() } else { r };
    format!("{r}-{}", hash(exact, n))
}

/// The fleet tag of the image keyed `key` (shown as `shown`).
pub fn fleet_tag(key: &str, shown: &str) -> String {
    // A short id shows nothing the hash does not.
    let shown = shown.strip_prefix("sha256:").unwrap_or(shown);
    part(shown, key, 12)
}

/// The tag of `node`'s contribution to the image of `fleet`.
pub fn contribution_tag(fleet: &str, node: &str) -> String {
    format!("{fleet}{SEP}{}", part(node, node, 8))
}

/// The fleet tag a contribution's tag belongs to, or `None` for a tag
/// that is no contribution.
pub fn fleet_of(tag: &str) -> Option<&str> {
    tag.split_once(SEP).map(|(fleet, _)| fleet)
}

/// Whether `tag` is a valid OCI tag.
pub fn valid(tag: &str) -> bool {
    let mut chars = tag.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_valid_distinct_and_grouped() {
        let long = "registry.example:5000/team/very/long/path/to/an/image/name:with-a-long-tag-too";
        let hostile = "a\u{202e}b/../\n$(x)";
        for (key, shown) in [
            ("sha256:0123", "sha256:0123"),
            (long, long),
            (hostile, hostile),
            ("", ""),
            ("___", "___"),
        ] {
            let fleet = fleet_tag(key, shown);
            assert!(valid(&fleet), "{fleet}");
            assert!(!fleet.contains(SEP), "{fleet}");
            for node in ["node-a", "NODE_A", long, hostile, ""] {
                let c = contribution_tag(&fleet, node);
                assert!(valid(&c), "{c}");
                assert_eq!(fleet_of(&c), Some(fleet.as_str()));
            }
            assert_eq!(fleet_of(&fleet), None);
        }
        assert_eq!(
            fleet_tag(
                "docker.io/library/busybox:latest",
                "docker.io/library/busybox:latest"
            )
            .split_once('-')
            .map(|(a, _)| a),
            Some("docker.io")
        );
        // Names that read the same still get their own tags.
        assert_ne!(
            contribution_tag("f", "node_a"),
            contribution_tag("f", "node-a")
        );
        assert_ne!(fleet_tag("a:b", "a:b"), fleet_tag("a/b", "a/b"));
    }
}
