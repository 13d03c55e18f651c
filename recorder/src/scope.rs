//! Which containers auto mode records: include and exclude globs on a
//! container's image reference, name and labels (`[scope]` in
//! recorderd.toml, or recorderd's `--include-*`/`--exclude-*` flags).

use std::collections::BTreeMap;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::config::ScopeConfig;

#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    #[error("bad glob '{glob}': {reason}")]
    Glob { glob: String, reason: String },
}

/// One list of globs: on images, names, or `KEY=VALUE` labels.
#[derive(Clone, Debug, Default)]
struct Globs {
    set: Option<GlobSet>,
}

impl Globs {
    fn new(globs: &[String]) -> Result<Self, ScopeError> {
        if globs.is_empty() {
            return Ok(Self::default());
        }
        let mut b = GlobSetBuilder::new();
        for g in globs {
            // `*` crosses `/`: an image glob `quay.io/*` covers every path.
            let glob = Glob::new(g).map_err(|e| ScopeError::Glob {
                glob: g.clone(),
                reason: e.kind().to_string(),
            })?;
            b.add(glob);
        }
        let set = b.build().map_err(|e| ScopeError::Glob {
            glob: globs.join(", "),
            reason: e.to_string(),
        })?;
        Ok(Self { set: Some(set) })
    }

    fn is_empty(&self) -> bool {
        self.set.is_none()
    }

    fn matches(&self, s: &str) -> bool {
        self.set.as_ref().is_some_and(|set| set.is_match(s))
    }
}

/// What a container is known by, for the scope's globs.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    pub image: Option<&'a str>,
    pub name: Option<&'a str>,
    pub labels: &'a BTreeMap<String, String>,
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
                Globs::new(&c.include_images)?,
                Globs::new(&c.include_names)?,
                Globs::new(&c.include_labels)?,
            ],
            exclude: [
                Globs::new(&c.exclude_images)?,
                Globs::new(&c.exclude_names)?,
                Globs::new(&c.exclude_labels)?,
            ],
        })
    }

    fn any(globs: &[Globs; 3], s: &Subject<'_>) -> bool {
        s.image.is_some_and(|i| globs[0].matches(i))
            || s.name.is_some_and(|n| globs[1].matches(n))
            || s.labels
                .iter()
                .any(|(k, v)| globs[2].matches(&format!("{k}={v}")))
    }

    /// Whether auto mode records `s`: it matches an include (when any is
    /// set) and no exclude.
    pub fn admits(&self, s: &Subject<'_>) -> bool {
        let included = self.include.iter().all(Globs::is_empty) || Self::any(&self.include, s);
        included && !Self::any(&self.exclude, s)
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
        assert!(Scope::default().admits(&web));
        let s = scope(|c| c.exclude_images = vec!["quay.io/*".into()]);
        assert!(!s.admits(&web) && s.admits(&db));
        let s = scope(|c| c.include_labels = vec!["tier=w*".into()]);
        assert!(s.admits(&web) && !s.admits(&db));
        let s = scope(|c| {
            c.include_names = vec!["*".into()];
            c.exclude_names = vec!["db".into()];
        });
        assert!(s.admits(&web) && !s.admits(&db));
        // No image and no name: only an include can refuse it.
        let bare = Subject {
            image: None,
            name: None,
            labels: &none,
        };
        assert!(!scope(|c| c.include_images = vec!["*".into()]).admits(&bare));
        assert!(scope(|c| c.exclude_images = vec!["*".into()]).admits(&bare));
    }

    #[test]
    fn bad_globs_are_refused() {
        let c = ScopeConfig {
            exclude_images: vec!["a[".into()],
            ..ScopeConfig::default()
        };
        assert!(Scope::new(&c).is_err());
    }
}
