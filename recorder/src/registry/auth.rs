//! Registry credentials from docker's and podman's auth files, in podman's
//! order: `$REGISTRY_AUTH_FILE`, `${XDG_RUNTIME_DIR}/containers/auth.json`,
//! `~/.config/containers/auth.json`, then docker's `config.json`
//! (`$DOCKER_CONFIG` or `~/.docker`). The first file with an entry for the
//! registry wins. Only the `auth` field (base64 `user:password`) is read;
//! credential helpers (`credsStore`, `credHelpers`) are not run.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use base64::Engine as _;
use serde::Deserialize;

/// A user and password for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({:?}, ***)", self.user)
    }
}

#[derive(Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    auth: Option<String>,
}

/// The auth files to read, in order, from the environment given.
pub fn auth_files(env: impl Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(f) = env("REGISTRY_AUTH_FILE").filter(|f| !f.is_empty()) {
        files.push(PathBuf::from(f));
    }
    if let Some(d) = env("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        files.push(Path::new(&d).join("containers/auth.json"));
    }
    let home = env("HOME").filter(|h| !h.is_empty());
    if let Some(h) = &home {
        files.push(Path::new(h).join(".config/containers/auth.json"));
    }
    match env("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        Some(d) => files.push(Path::new(&d).join("config.json")),
        None => {
            if let Some(h) = &home {
                files.push(Path::new(h).join(".docker/config.json"));
            }
        }
    }
    files
}

/// The keys an entry for `registry` (`host[:port]`) and `repository` may
/// have, most specific first: podman's `registry/namespace/repo` forms,
/// the registry itself, and docker's URL forms.
fn keys(registry: &str, repository: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut path = format!("{registry}/{repository}");
    loop {
        keys.push(path.clone());
        match path.rsplit_once('/') {
            Some((head, _)) if head.len() >= registry.len() && head != registry => {
                path = head.to_owned();
            }
            _ => break,
        }
    }
    keys.push(registry.to_owned());
    keys.push(format!("https://{registry}"));
    keys.push(format!("http://{registry}"));
    keys.push(format!("https://{registry}/v1/"));
    keys.push(format!("https://{registry}/v2/"));
    if registry == "docker.io" {
        keys.push("https://index.docker.io/v1/".to_owned());
    }
    keys
}

/// The credentials one auth file's text holds for the repository.
pub fn from_text(
    text: &str,
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>, String> {
    let file: AuthFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    for key in keys(registry, repository) {
        let Some(auth) = file.auths.get(&key).and_then(|e| e.auth.as_deref()) else {
            continue;
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| format!("the auth of {key:?} is not base64"))?;
        let decoded =
            String::from_utf8(decoded).map_err(|_| format!("the auth of {key:?} is not UTF-8"))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| format!("the auth of {key:?} is not user:password"))?;
        return Ok(Some(Credentials {
            user: user.to_owned(),
            password: password.to_owned(),
        }));
    }
    Ok(None)
}

/// The credentials for the repository from the first auth file that has
/// them; files that are missing are skipped, unreadable ones logged.
pub fn lookup(registry: &str, repository: &str) -> Option<Credentials> {
    for file in auth_files(|k| std::env::var(k).ok()) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        match from_text(&text, registry, repository) {
            Ok(Some(c)) => {
                log::debug!("credentials for {registry} from {}", file.display());
                return Some(c);
            }
            Ok(None) => {}
            Err(e) => log::warn!("{}: {e}; skipped", file.display()),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_in_podmans_order() {
        let env = |k: &str| {
            Some(match k {
                "REGISTRY_AUTH_FILE" => "/a.json".to_owned(),
                "XDG_RUNTIME_DIR" => "/run/user/0".to_owned(),
                "HOME" => "/root".to_owned(),
                _ => return None,
            })
        };
        assert_eq!(
            auth_files(env),
            [
                "/a.json",
                "/run/user/0/containers/auth.json",
                "/root/.config/containers/auth.json",
                "/root/.docker/config.json"
            ]
            .map(PathBuf::from)
        );
        assert_eq!(
            auth_files(|k| (k == "DOCKER_CONFIG").then(|| "/d".to_owned())),
            [PathBuf::from("/d/config.json")]
        );
    }

    #[test]
    fn entries_by_registry_repository_or_url() {
        // "u:p" and "v:q"
        let text = r#"{"auths":{
            "reg.example:5000":{"auth":"dTpw"},
            "reg.example:5000/team/profiles":{"auth":"djpx"},
            "https://other.example":{"auth":"dTpw"}
        }}"#;
        let c = from_text(text, "reg.example:5000", "team/profiles")
            .unwrap()
            .unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("v", "q"));
        let c = from_text(text, "reg.example:5000", "else")
            .unwrap()
            .unwrap();
        assert_eq!(c.user, "u");
        assert_eq!(
            from_text(text, "other.example", "x").unwrap().unwrap().user,
            "u"
        );
        assert_eq!(from_text(text, "none.example", "x").unwrap(), None);
        assert!(from_text(r#"{"auths":{"r":{"auth":"!!"}}}"#, "r", "x").is_err());
        assert!(!format!("{c:?}").contains('p'));
    }
}
