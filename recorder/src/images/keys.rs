//! What an image profile is keyed by: the image id (or digest) the
//! runtime's image store vouches for, else the normalised reference the
//! runtime's own record gives, else the container's rootfs path or name;
//! and the label a row gets when it is made (its file name and metrics
//! label). Rows of different kinds never share a key or a label: a row
//! keyed by a name or a rootfs path is marked (`name=`, `rootfs=`), in its
//! key, label and file name, and shown as `(name) NAME` or `(rootfs) DIR`;
//! a reference that would read as an id's label is marked `ref=`. `=` is
//! in no sanitised name, image or id, so a marked key or label can never
//! equal another kind's.

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

/// The marks of keys and labels of rows that are not keyed by an image.
const NAME_KEY: &str = "name=";
const ROOTFS_KEY: &str = "rootfs=";
/// The mark of a reference label that would read as an id's.
const REFERENCE_LABEL: &str = "ref=";

/// A row's key as a listing shows it ([`shown`]): the kind it names (none
/// for an image) and the key without its mark.
pub fn unmark(spec: &str) -> (Option<KeyedBy>, &str) {
    if let Some(n) = spec.strip_prefix(NAME_MARK) {
        (Some(KeyedBy::Name), n)
    } else if let Some(r) = spec.strip_prefix(ROOTFS_MARK) {
        (Some(KeyedBy::Rootfs), r)
    } else {
        (None, spec)
    }
}

/// The key of the row a container without an image feeds: its `name` (or
/// rootfs path), marked with its kind.
fn marked(keyed_by: KeyedBy, name: &str) -> String {
    match keyed_by {
        KeyedBy::Name => format!("{NAME_KEY}{name}"),
        KeyedBy::Rootfs => format!("{ROOTFS_KEY}{name}"),
        KeyedBy::Id | KeyedBy::Reference => name.to_owned(),
    }
}

/// A marked key ([`marked`]) without its mark: the name or path shown.
pub(super) fn unmarked(key: &str) -> &str {
    [NAME_KEY, ROOTFS_KEY]
        .iter()
        .find_map(|m| key.strip_prefix(m))
        .unwrap_or(key)
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
/// normalised reference; a container without an image goes by its name
/// (or rootfs path), marked. `image` and `image_id` must be what the
/// runtime vouches for (its image store, its own record of the
/// container), never a name, label or annotation the container's creator
/// chose: `names.rs` fills them so.
/// An "image" that is a prefix of the id (`docker run dd66f5…`) is not a
/// reference.
pub fn key(image: Option<&str>, image_id: Option<&str>, name: Option<&str>) -> Option<ImageKey> {
    let id = image_id.filter(|i| !i.is_empty());
    let reference = image
        .filter(|i| !i.is_empty() && !id.is_some_and(|id| is_id_prefix(i, id)))
        .map(normalise);
    let (key, keyed_by) = match (id, &reference, name) {
        (Some(id), _, _) => (id.to_owned(), KeyedBy::Id),
        // A "reference" in an id's form is no image's key but its own.
        (None, Some(r), _) if r.starts_with("sha256:") => {
            (format!("{REFERENCE_LABEL}{r}"), KeyedBy::Reference)
        }
        (None, Some(r), _) => (r.clone(), KeyedBy::Reference),
        // A rootfs path, where the caller knows one, else a name; marked,
        // so that neither is ever taken for an image's key.
        (None, None, Some(n)) if n.starts_with('/') => {
            (marked(KeyedBy::Rootfs, n), KeyedBy::Rootfs)
        }
        (None, None, Some(n)) => (marked(KeyedBy::Name, n), KeyedBy::Name),
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

/// Whether `label` has the shape of an id row's label: a short id,
/// `<reference>@<short id>`, or a whole id (what a row keyed by id falls
/// back to when its label is taken).
fn reads_as_id_label(label: &str) -> bool {
    let short = |s: &str| s.len() == 12 && s.bytes().all(|b| b.is_ascii_hexdigit());
    short(label)
        || label.rsplit_once('@').is_some_and(|(_, id)| short(id))
        || label.starts_with("sha256:")
}

/// An image row's label (file name, metrics): `<first reference>@<short
/// id>` (or the short id) for an id; the reference for a reference
/// (`ref=<reference>` when it reads as an id's label); the marked key of a
/// name or rootfs row. Labels of different kinds never meet.
pub(super) fn label_of(k: &ImageKey) -> String {
    match (k.keyed_by, &k.reference) {
        (KeyedBy::Id, Some(r)) => format!("{r}@{}", short_id(&k.key)),
        (KeyedBy::Id, None) => short_id(&k.key),
        (KeyedBy::Reference, _) if reads_as_id_label(&k.key) => {
            format!("{REFERENCE_LABEL}{}", k.key)
        }
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
        assert_eq!((k.key.as_str(), k.keyed_by), ("name=web", KeyedBy::Name));
        let k = key(None, None, Some("/srv/rootfs")).unwrap();
        assert_eq!(
            (k.key.as_str(), k.keyed_by),
            ("rootfs=/srv/rootfs", KeyedBy::Rootfs)
        );
        assert_eq!(key(None, None, None), None);
    }

    /// A container named after an image's short id, or after its key or
    /// reference, never gets that image's key, label or file.
    #[test]
    fn kinds_never_share_a_key_or_a_label() {
        let id = "sha256:dd66f5ba5776aaaa";
        let images = [
            key(None, Some(id), None).unwrap(),
            key(Some("shop/web:1"), Some(id), None).unwrap(),
            key(Some("shop/web:1"), None, None).unwrap(),
        ];
        let hostile = [
            key(None, None, Some("dd66f5ba5776")).unwrap(),
            key(None, None, Some(id)).unwrap(),
            key(None, None, Some("shop/web:1")).unwrap(),
            key(None, None, Some("shop/web:1@dd66f5ba5776")).unwrap(),
            key(None, None, Some("/dd66f5ba5776")).unwrap(),
            // References that read as an id's label.
            key(Some("dd66f5ba5776"), None, None).unwrap(),
            key(Some("shop/web:1@dd66f5ba5776"), None, None).unwrap(),
            key(Some(id), None, None).unwrap(),
        ];
        for i in &images {
            for h in &hostile {
                assert_ne!(i.key, h.key, "{h:?}");
                assert_ne!(label_of(i), label_of(h), "{h:?}");
                assert_ne!(file_name(&label_of(i)), file_name(&label_of(h)));
            }
        }
        let name = &hostile[0];
        assert_eq!(label_of(name), "name=dd66f5ba5776");
        assert_eq!(file_name(&label_of(name)), "name%3Ddd66f5ba5776.json");
        assert_eq!(label_of(&hostile[5]), "dd66f5ba5776:latest");
        assert_eq!(label_of(&hostile[6]), "ref=shop/web:1@dd66f5ba5776");
        assert_eq!(label_of(&hostile[7]), format!("ref={id}"));
        assert_eq!(unmark("(name) web"), (Some(KeyedBy::Name), "web"));
        assert_eq!(unmark("web"), (None, "web"));
        assert_eq!(unmarked("rootfs=/srv"), "/srv");
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
