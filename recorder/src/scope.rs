//! Which containers auto mode records: include and exclude globs on a
//! container's image reference, name and labels (`[scope]` in
//! recorderd.toml, or recorderd's `--include-*`/`--exclude-*` flags).

use std::{collections::BTreeMap, fmt};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

/// The `[scope]` table: globs (`*`, `?`, `[...]`) on a container's image
/// reference, name, or label (`KEY=VALUE-GLOB`). With any include set, a
/// container must match one; a container matching an exclude is not
/// recorded in auto mode.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScopeConfig {
    pub include_images: Vec<String>,
    pub exclude_images: Vec<String>,
    pub include_names: Vec<String>,
    pub exclude_names: Vec<String>,
    pub include_labels: Vec<String>,
    pub exclude_labels: Vec<String>,
}

impl ScopeConfig {
    /// One line for `status`: `every container`, or the globs by key.
    pub fn summary(&self) -> String {
        let lists = [
            ("include_images", &self.include_images),
            ("exclude_images", &self.exclude_images),
            ("include_names", &self.include_names),
            ("exclude_names", &self.exclude_names),
            ("include_labels", &self.include_labels),
            ("exclude_labels", &self.exclude_labels),
        ];
        let set: Vec<String> = lists
            .iter()
            .filter(|(_, globs)| !globs.is_empty())
            .map(|(key, globs)| format!("{key} {}", globs.join(",")))
            .collect();
        if set.is_empty() {
            "every container".to_owned()
        } else {
            set.join("; ")
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    /// `key` is the `[scope]` key the glob is in.
    #[error("{key}: '{glob}': {reason}")]
    Glob {
        key: &'static str,
        glob: String,
        reason: String,
    },
}

/// What a list of globs is matched against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum On {
    Image,
    Name,
    /// A label as `KEY=VALUE`.
    Label,
}

/// Compiles one glob; a label glob must be `KEY=VALUE` (one without `=`
/// would match no label, silently). The error is the reason alone, for a
/// message that names the key or the flag and the value.
pub fn compile(glob: &str, on: On) -> Result<Glob, String> {
    // `*` crosses `/`: an image glob `quay.io/*` covers every path.
    let compiled = Glob::new(glob).map_err(|e| format!("bad glob: {}", e.kind()))?;
    if on == On::Label && !glob.contains('=') {
        return Err(format!(
            "a label glob is KEY=VALUE, with '=' (e.g. '{glob}=*' for any value)"
        ));
    }
    Ok(compiled)
}

/// One list of globs: on images, names, or `KEY=VALUE` labels.
#[derive(Clone, Debug, Default)]
struct Globs {
    /// The `[scope]` key, for messages.
    key: &'static str,
    globs: Vec<String>,
    set: Option<GlobSet>,
}

impl Globs {
    fn new(key: &'static str, globs: &[String], on: On) -> Result<Self, ScopeError> {
        let mut this = Self {
            key,
            ..Self::default()
        };
        if globs.is_empty() {
            return Ok(this);
        }
        let mut b = GlobSetBuilder::new();
        for g in globs {
            b.add(compile(g, on).map_err(|reason| ScopeError::Glob {
                key,
                glob: g.clone(),
                reason,
            })?);
        }
        let set = b.build().map_err(|e| ScopeError::Glob {
            key,
            glob: globs.join(", "),
            reason: e.to_string(),
        })?;
        this.globs = globs.to_vec();
        this.set = Some(set);
        Ok(this)
    }

    fn is_empty(&self) -> bool {
        self.set.is_none()
    }

    /// The first glob that matches `s`.
    fn first_match(&self, s: &str) -> Option<&str> {
        let set = self.set.as_ref()?;
        let i = set.matches(s).into_iter().next()?;
        self.globs.get(i).map(String::as_str)
    }
}

/// What a container is known by, for the scope's globs. Displays as
/// `name N, image I` for log lines.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    pub image: Option<&'a str>,
    pub name: Option<&'a str>,
    pub labels: &'a BTreeMap<String, String>,
}

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name.unwrap_or("-");
        write!(f, "name {name}, image {}", self.image.unwrap_or("-"))
    }
}

/// Why auto mode does not record a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Includes are set and none matched.
    NoInclude,
    /// An exclude matched: its key, the glob, and what it matched
    /// (`image …`, `name …`, `label K=V`).
    Excluded {
        key: &'static str,
        glob: String,
        matched: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoInclude => f.write_str("no include matched"),
            Self::Excluded { key, glob, matched } => write!(f, "{key} '{glob}' matched {matched}"),
        }
    }
}

/// The compiled `[scope]`.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    include: [Globs; 3],
    exclude: [Globs; 3],
}

impl Scope {
    pub fn new(c: &ScopeConfig) -> Result<Self, ScopeError> {
        Ok(Self {
            include: [
                Globs::new("include_images", &c.include_images, On::Image)?,
                Globs::new("include_names", &c.include_names, On::Name)?,
                Globs::new("include_labels", &c.include_labels, On::Label)?,
            ],
            exclude: [
                Globs::new("exclude_images", &c.exclude_images, On::Image)?,
                Globs::new("exclude_names", &c.exclude_names, On::Name)?,
                Globs::new("exclude_labels", &c.exclude_labels, On::Label)?,
            ],
        })
    }

    /// The first glob of `globs` that matches `s`: its list, the glob, and
    /// what it matched.
    fn first_match<'g>(
        globs: &'g [Globs; 3],
        s: &Subject<'_>,
    ) -> Option<(&'g Globs, &'g str, String)> {
        let fields = [(0, "image", s.image), (1, "name", s.name)]
            .into_iter()
            .filter_map(|(i, what, v)| Some((i, what, v?.to_owned())));
        let labels = s
            .labels
            .iter()
            .map(|(k, v)| (2, "label", format!("{k}={v}")));
        fields.chain(labels).find_map(|(i, what, v)| {
            let glob = globs[i].first_match(&v)?;
            Some((&globs[i], glob, format!("{what} {v}")))
        })
    }

    /// Whether auto mode records `s`: it matches an include (when any is
    /// set) and no exclude; else why not.
    pub fn check(&self, s: &Subject<'_>) -> Result<(), Refusal> {
        let unrestricted = self.include.iter().all(Globs::is_empty);
        if !unrestricted && Self::first_match(&self.include, s).is_none() {
            return Err(Refusal::NoInclude);
        }
        match Self::first_match(&self.exclude, s) {
            Some((globs, glob, matched)) => Err(Refusal::Excluded {
                key: globs.key,
                glob: glob.to_owned(),
                matched,
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(f: impl FnOnce(&mut ScopeConfig)) -> Scope {
        let mut c = ScopeConfig::default();
        f(&mut c);
        Scope::new(&c).unwrap()
    }

    #[test]
    fn includes_and_excludes() {
        let labels: BTreeMap<String, String> = [("tier".to_owned(), "web".to_owned())]
            .into_iter()
            .collect();
        let none = BTreeMap::new();
        let web = Subject {
            image: Some("quay.io/acme/web:1"),
            name: Some("web-1"),
            labels: &labels,
        };
        let db = Subject {
            image: Some("postgres:16"),
            name: Some("db"),
            labels: &none,
        };
        assert!(Scope::default().check(&web).is_ok());
        let s = scope(|c| c.exclude_images = vec!["quay.io/*".into()]);
        assert!(s.check(&web).is_err() && s.check(&db).is_ok());
        let s = scope(|c| c.include_labels = vec!["tier=w*".into()]);
        assert!(s.check(&web).is_ok() && s.check(&db).is_err());
        let s = scope(|c| {
            c.include_names = vec!["*".into()];
            c.exclude_names = vec!["db".into()];
        });
        assert!(s.check(&web).is_ok() && s.check(&db).is_err());
        // No image and no name: only an include can refuse it.
        let bare = Subject {
            image: None,
            name: None,
            labels: &none,
        };
        assert!(
            scope(|c| c.include_images = vec!["*".into()])
                .check(&bare)
                .is_err()
        );
        assert!(
            scope(|c| c.exclude_images = vec!["*".into()])
                .check(&bare)
                .is_ok()
        );
    }

    #[test]
    fn a_refusal_names_the_rule_and_the_container() {
        let labels: BTreeMap<String, String> = [("tier".to_owned(), "web".to_owned())]
            .into_iter()
            .collect();
        let web = Subject {
            image: Some("quay.io/acme/web:1"),
            name: Some("web-1"),
            labels: &labels,
        };
        assert_eq!(web.to_string(), "name web-1, image quay.io/acme/web:1");
        let s = scope(|c| {
            c.exclude_images = vec!["docker.io/*".into()];
            c.exclude_labels = vec!["tier=w*".into(), "tier=*".into()];
        });
        assert_eq!(
            s.check(&web).unwrap_err().to_string(),
            "exclude_labels 'tier=w*' matched label tier=web"
        );
        let s = scope(|c| c.exclude_images = vec!["x".into(), "quay.io/*".into()]);
        assert_eq!(
            s.check(&web).unwrap_err().to_string(),
            "exclude_images 'quay.io/*' matched image quay.io/acme/web:1"
        );
        let s = scope(|c| c.include_names = vec!["db*".into()]);
        assert_eq!(s.check(&web).unwrap_err(), Refusal::NoInclude);
        assert_eq!(Refusal::NoInclude.to_string(), "no include matched");
    }

    #[test]
    fn bad_globs_are_refused_naming_the_key() {
        let c = ScopeConfig {
            exclude_images: vec!["a[".into()],
            ..ScopeConfig::default()
        };
        let e = Scope::new(&c).unwrap_err().to_string();
        assert!(e.starts_with("exclude_images: 'a[': bad glob"), "{e}");
    }

    #[test]
    fn a_label_glob_needs_an_equals_sign() {
        for key in ["include", "exclude"] {
            let mut c = ScopeConfig::default();
            let list = if key == "include" {
                &mut c.include_labels
            } else {
                &mut c.exclude_labels
            };
            *list = vec!["tier=web".into(), "app".into()];
            let e = Scope::new(&c).unwrap_err().to_string();
            assert!(e.starts_with(&format!("{key}_labels: 'app': ")), "{e}");
            assert!(e.contains("KEY=VALUE") && e.contains("'app=*'"), "{e}");
        }
        assert!(compile("app*", On::Label).is_err());
        assert!(compile("app*", On::Name).is_ok());
        assert!(compile("*=*", On::Label).is_ok());
    }
}
