//! What an image profile is keyed by: the image id where the runtime tells
//! it, else the normalised reference, else the container's name; and the
//! label a row gets when it is made (its file name and metrics label).

use crate::index::Entry;

pub use recorder_api::image::KeyedBy;

/// How listings show an image row: its image, or for a row without an
/// image `(name) NAME` or `(rootfs) PATH`. [`unmark`] takes it back.
pub fn shown(keyed_by: KeyedBy, image: &str) -> String {
    match keyed_by {
        KeyedBy::Name => format!("{NAME_MARK}{image}"),
        KeyedBy::Rootfs => format!("{ROOTFS_MARK}{image}"),
        KeyedBy::Id | KeyedBy::Reference => image.to_owned(),
    }
}

const NAME_MARK: &str = "(name) ";
const ROOTFS_MARK: &str = "(rootfs) ";

/// A row's key as a listing shows it ([`shown`]), without its mark.
pub fn unmark(spec: &str) -> &str {
    [NAME_MARK, ROOTFS_MARK]
        .iter()
        .find_map(|m| spec.strip_prefix(m))
        .unwrap_or(spec)
}

/// The image profile a container feeds (see [`key`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageKey {
    pub key: String,
    pub keyed_by: KeyedBy,
    /// The container's image reference, normalised, when it has one.
    pub reference: Option<String>,
}

/// An image reference as docker resolves it: without `docker.io/` (or
/// `index.docker.io/`) and `library/`, with `:latest` when it has neither
/// tag nor digest.
pub fn normalise(reference: &str) -> String {
    let r = reference.trim();
    let r = ["docker.io/", "index.docker.io/"]
        .iter()
        .find_map(|p| r.strip_prefix(p))
        .unwrap_or(r);
    let r = r.strip_prefix("library/").unwrap_or(r);
    let last = r.rsplit('/').next().unwrap_or(r);
    if r.contains('@') || last.contains(':') {
        r.to_owned()
    } else {
        format!("{r}:latest")
    }
}

/// The hex of an id, without `sha256:`.
fn hex(id: &str) -> &str {
    id.strip_prefix("sha256:").unwrap_or(id)
}

/// An id's first 12 hex digits, as `docker images` shows it.
pub fn short_id(id: &str) -> String {
    hex(id).chars().take(12).collect()
}

/// Whether `spec` is `id` or a prefix of it (at least 4 hex digits, with
/// or without `sha256:`, either case).
pub fn is_id_prefix(spec: &str, id: &str) -> bool {
    let spec = hex(spec).to_ascii_lowercase();
    spec.len() >= 4
        && spec.chars().all(|c| c.is_ascii_hexdigit())
        && hex(id).to_ascii_lowercase().starts_with(&spec)
}

/// What an image is known by: its id where the runtime tells it, so that
/// every reference of it (and running it by id) feeds one row; else its
/// normalised reference; a container without an image goes by its name.
/// An "image" that is a prefix of the id (`docker run dd66f5…`) is not a
/// reference.
pub fn key(image: Option<&str>, image_id: Option<&str>, name: Option<&str>) -> Option<ImageKey> {
    let id = image_id.filter(|i| !i.is_empty());
    let reference = image
        .filter(|i| !i.is_empty() && !id.is_some_and(|id| is_id_prefix(i, id)))
        .map(normalise);
    let (key, keyed_by) = match (id, &reference, name) {
        (Some(id), _, _) => (id.to_owned(), KeyedBy::Id),
        (None, Some(r), _) => (r.clone(), KeyedBy::Reference),
        // A rootfs path, where the caller knows one, else a name.
        (None, None, Some(n)) if n.starts_with('/') => (n.to_owned(), KeyedBy::Rootfs),
        (None, None, Some(n)) => (n.to_owned(), KeyedBy::Name),
        (None, None, None) => return None,
    };
    Some(ImageKey {
        key,
        keyed_by,
        reference,
    })
}

/// The image profile the container of index entry `e` feeds: the one
/// place that picks which of a container's facts key its image row.
pub(super) fn of_entry(e: &Entry) -> Option<ImageKey> {
    let c = &e.container;
    // Without an image: keyed by the rootfs path, else the name.
    let or_name = c.rootfs.as_deref().or(c.name.as_deref());
    key(c.image.as_deref(), c.image_id.as_deref(), or_name)
}

/// The file name (without `.json`) of an image's profile: the container
/// key's escaping, which maps distinct labels to distinct names and never
/// yields `/`, `..` or a leading dot.
pub fn file_stem(label: &str) -> String {
    crate::container::file_stem(label)
}

/// The longest file stem kept whole: a file name (with `.json`, and the
/// temporary name `atomic_file` writes first, `.<name>.tmp.<pid>`) stays
/// well within NAME_MAX (255 bytes).
const MAX_STEM: usize = 200;

/// The file name of the image profile labelled `label`: `<stem>.json`
/// ([`file_stem`]); a stem longer than [`MAX_STEM`] keeps its start and
/// ends in `~` and 32 hex digits of the label's SHA-256, so distinct
/// labels keep distinct names (a whole stem never holds `~`: it is
/// escaped).
pub fn file_name(label: &str) -> String {
    use sha2::{Digest as _, Sha256};
    let stem = file_stem(label);
    if stem.len() <= MAX_STEM {
        return format!("{stem}.json");
    }
    let digest = Sha256::digest(label.as_bytes());
    let hash: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    // The stem is ASCII: any byte is a char boundary.
    let keep = stem.get(..MAX_STEM - 1 - hash.len()).unwrap_or_default();
    format!("{keep}~{hash}.json")
}

/// An image row's label (file name, metrics): `<first reference>@<short
/// id>` (or the short id) for an id, else the key.
pub(super) fn label_of(k: &ImageKey) -> String {
    match (k.keyed_by, &k.reference) {
        (KeyedBy::Id, Some(r)) => format!("{r}@{}", short_id(&k.key)),
        (KeyedBy::Id, None) => short_id(&k.key),
        _ => k.key.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn references_are_normalised() {
        for (given, want) in [
            ("busybox", "busybox:latest"),
            ("docker.io/library/busybox", "busybox:latest"),
            ("library/busybox:1", "busybox:1"),
            ("index.docker.io/review/busy:1", "review/busy:1"),
            ("docker.io/review/busy", "review/busy:latest"),
            ("quay.io/library/x", "quay.io/library/x:latest"),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            ("localhost:5000/app:2", "localhost:5000/app:2"),
            ("b@sha256:cd", "b@sha256:cd"),
        ] {
            assert_eq!(normalise(given), want, "{given}");
        }
    }

    #[test]
    fn keys() {
        let k = key(Some("docker.io/busybox"), Some("sha256:abcd12"), None).unwrap();
        assert_eq!(
            (k.key.as_str(), k.keyed_by, k.reference.as_deref()),
            ("sha256:abcd12", KeyedBy::Id, Some("busybox:latest"))
        );
        // Run by id: no reference, the same key.
        for by_id in ["abcd", "ABCD12", "sha256:abcd12"] {
            let k = key(Some(by_id), Some("sha256:abcd12"), None).unwrap();
            assert_eq!((k.key.as_str(), k.reference), ("sha256:abcd12", None));
        }
        let k = key(Some("busybox"), None, Some("x")).unwrap();
        assert_eq!(
            (k.key.as_str(), k.keyed_by),
            ("busybox:latest", KeyedBy::Reference)
        );
        let k = key(None, None, Some("web")).unwrap();
        assert_eq!((k.key.as_str(), k.keyed_by), ("web", KeyedBy::Name));
        let k = key(None, None, Some("/srv/rootfs")).unwrap();
        assert_eq!(
            (k.key.as_str(), k.keyed_by),
            ("/srv/rootfs", KeyedBy::Rootfs)
        );
        assert_eq!(key(None, None, None), None);
    }

    #[test]
    fn file_stems_do_not_collide_or_escape() {
        let keys = [
            "quay.io/a/b:1@sha256:ff",
            "quay.io+a+b:1@sha256:ff",
            "quay.io/a/b%3A1@sha256:ff",
            "..",
            "../x",
            "a:b",
            "a@b",
            "a/b",
            "a+b",
        ];
        let stems: BTreeSet<String> = keys.iter().map(|k| file_stem(k)).collect();
        assert_eq!(stems.len(), keys.len(), "{stems:?}");
        for s in &stems {
            assert!(
                !s.contains('/') && !s.starts_with('.') && !s.contains(':'),
                "{s}"
            );
            assert!(!s.contains('@'), "{s}");
        }
    }

    #[test]
    fn long_labels_get_short_unique_file_names() {
        let long = |c: char| {
            format!(
                "registry.example/{}:1@0123456789ab",
                c.to_string().repeat(400)
            )
        };
        let (a, b) = (file_name(&long('a')), file_name(&long('b')));
        assert_ne!(a, b);
        for n in [&a, &b] {
            assert!(n.len() <= MAX_STEM + ".json".len(), "{n}");
            assert!(n.ends_with(".json") && n.contains('~'), "{n}");
        }
        // Labels that differ only past the kept start stay distinct.
        let x = format!("{}x", "a".repeat(300));
        let y = format!("{}y", "a".repeat(300));
        assert_ne!(file_name(&x), file_name(&y));
        // Short labels keep their name; `~` in a label is escaped.
        assert_eq!(file_name("busybox:1"), "busybox%3A1.json");
        assert_eq!(file_name("a~b"), "a%7Eb.json");
    }
}
