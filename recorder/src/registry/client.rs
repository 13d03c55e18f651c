//! The registry client: oras-project's `oci-client` (reqwest, rustls with
//! the system's roots through rustls-platform-verifier, ring as the crypto
//! provider) for one repository. HTTPS always, but for a loopback registry
//! or one listed as insecure (`--insecure-registry`, `[registry] insecure`),
//! as docker does; credentials from the auth files (`auth.rs`). Pushes an
//! [`Artifact`], lists tags page by page (`n` and `last`, the distribution
//! spec's pagination), and reads manifests and layers with their media
//! types, sizes and digests checked.

use std::net::IpAddr;

use oci_client::{
    Client, Reference,
    client::{ClientConfig, ClientProtocol},
    manifest::OciDescriptor,
    secrets::RegistryAuth,
};

use super::{
    RegistryError,
    artifact::{self, Artifact, MANIFEST_TYPE, Manifest},
    auth,
};
use crate::profile::limits;

/// What a manifest is asked as. Ours are OCI image manifests, but a tag
/// may hold an image or an index: asked only for ours, distribution 2.8
/// rewrites a docker image's manifest to a signed schema 1 one, whose
/// digest differs on every read ("Invalid digest"), instead of saying what
/// the tag holds. Asked as any of these, it comes as stored and
/// [`artifact::read_manifest`] says it is no seccomp profile artifact.
const ACCEPTED: &[&str] = &[
    MANIFEST_TYPE,
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Tags asked for per page of the tag list.
pub const TAGS_PER_PAGE: usize = 50;

/// A repository of a registry: `host[:port]/path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repo {
    pub registry: String,
    pub repository: String,
}

impl Repo {
    /// Parses `REPO` (no tag, no digest).
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        let r: Reference = s
            .parse()
            .map_err(|e| RegistryError::BadReference(s.to_owned(), format!("{e}")))?;
        if r.digest().is_some() || s.rsplit('/').next().is_some_and(|last| last.contains(':')) {
            return Err(RegistryError::BadReference(
                s.to_owned(),
                "a repository takes no tag or digest".to_owned(),
            ));
        }
        Ok(Self {
            registry: r.registry().to_owned(),
            repository: r.repository().to_owned(),
        })
    }

    /// `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    pub fn tagged(&self, tag: &str) -> Reference {
        Reference::with_tag(
            self.registry.clone(),
            self.repository.clone(),
            tag.to_owned(),
        )
    }

    pub fn pinned(&self, digest: &str) -> Reference {
        Reference::with_digest(
            self.registry.clone(),
            self.repository.clone(),
            digest.to_owned(),
        )
    }
}

/// Whether `registry` (`host[:port]`) is on the loopback.
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.split(':').next().unwrap_or(registry),
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether plain HTTP is allowed for `registry`: loopback, or listed as
/// insecure (`host:port`, or `host` for any port).
pub fn plain_http_allowed(registry: &str, insecure: &[String]) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(h, _)| h);
    is_loopback(registry) || insecure.iter().any(|i| i == registry || i == host)
}

/// reqwest is built without a default crypto provider (aws-lc's C build is
/// slow): ring is installed once per process. Installing again fails
/// harmlessly when one is already there.
#[expect(
    deprecated,
    reason = "ring has no post-quantum key exchange; aws-lc-rs would add a slow C build"
)]
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none()
        && rustls::crypto::ring::default_provider()
            .install_default()
            .is_err()
    {
        log::debug!("a crypto provider was installed meanwhile");
    }
}

/// A client for one repository.
pub struct Registry {
    client: Client,
    pub repo: Repo,
    auth: RegistryAuth,
}

impl Registry {
    /// A client for `repo`; `insecure` lists the registries that may be
    /// reached over plain HTTP besides loopback ones.
    pub fn new(repo: Repo, insecure: &[String]) -> Result<Self, RegistryError> {
        install_crypto_provider();
        let protocol = if plain_http_allowed(&repo.registry, insecure) {
            ClientProtocol::HttpsExcept(vec![repo.registry.clone()])
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(30)),
            ..ClientConfig::default()
        };
        let client = Client::try_from(config).map_err(|e| RegistryError::Client(e.to_string()))?;
        let auth = match auth::lookup(&repo.registry, &repo.repository) {
            Some(c) => RegistryAuth::Basic(c.user, c.password),
            None => RegistryAuth::Anonymous,
        };
        Ok(Self { client, repo, auth })
    }

    /// An error of oci-client, with its sources on the same line (reqwest
    /// says "error sending request" and keeps the why in a source).
    fn fail(&self, what: &str, e: oci_client::errors::OciDistributionError) -> RegistryError {
        RegistryError::Registry(format!(
            "{what} {}: {}",
            self.repo.name(),
            crate::errfmt::chain(&e)
        ))
    }

    /// Pushes `a` under `tag`; returns its digest.
    pub async fn push(&self, tag: &str, a: &Artifact) -> Result<String, RegistryError> {
        let r = self.repo.tagged(tag);
        self.client
            .store_auth_if_needed(r.resolve_registry(), &self.auth)
            .await;
        self.client
            .push_blob(&r, a.layer.clone(), &a.layer_digest)
            .await
            .map_err(|e| self.fail("pushing a layer to", e))?;
        self.client
            .push_blob(
                &r,
                artifact::CONFIG.to_vec(),
                &artifact::digest_of(artifact::CONFIG),
            )
            .await
            .map_err(|e| self.fail("pushing the config to", e))?;
        let content_type = http::HeaderValue::from_static(MANIFEST_TYPE);
        self.client
            .push_manifest_raw(&r, a.manifest.clone(), content_type)
            .await
            .map_err(|e| self.fail("pushing the manifest to", e))?;
        Ok(a.digest.clone())
    }

    /// Every tag of the repository, page by page (`n` and `last`, each
    /// page after the last tag of the one before); none when the
    /// repository does not exist yet. A registry that ignores `n` (as
    /// distribution 2.8 does) answers everything at once: a page that
    /// brings no new tag ends the list.
    pub async fn tags(&self) -> Result<Vec<String>, RegistryError> {
        let r = self.repo.tagged("latest");
        let mut all: Vec<String> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut last: Option<String> = None;
        loop {
            let page = match self
                .client
                .list_tags(&r, &self.auth, Some(TAGS_PER_PAGE), last.as_deref())
                .await
            {
                Ok(p) => p,
                Err(oci_client::errors::OciDistributionError::RegistryError {
                    envelope, ..
                }) if envelope
                    .errors
                    .iter()
                    .any(|e| matches!(e.code, oci_client::errors::OciErrorCode::NameUnknown)) =>
                {
                    return Ok(all);
                }
                Err(e) => return Err(self.fail("listing the tags of", e)),
            };
            let full = page.tags.len() >= TAGS_PER_PAGE;
            last = page.tags.last().cloned();
            let before = all.len();
            for t in page.tags {
                if seen.insert(t.clone()) {
                    all.push(t);
                }
            }
            if !full || all.len() == before {
                return Ok(all);
            }
        }
    }

    /// The manifest `reference` names (a tag or a digest of this
    /// repository), checked: its digest, KEP-6061's media types, one layer
    /// within the size limit. Returns it with its digest.
    pub async fn manifest(&self, r: &Reference) -> Result<(Manifest, String), RegistryError> {
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(r, &self.auth, ACCEPTED)
            .await
            .map_err(|e| self.fail(&format!("reading {r} from"), e))?;
        if bytes.len() > artifact::MAX_MANIFEST {
            return Err(RegistryError::Artifact(format!(
                "{r}: a manifest of {} bytes",
                bytes.len()
            )));
        }
        let actual = artifact::digest_of(&bytes);
        if r.digest().is_some_and(|d| d != actual) || digest != actual {
            return Err(RegistryError::Artifact(format!(
                "{r}: the manifest's digest is {actual}, not what was asked or announced"
            )));
        }
        let m = artifact::read_manifest(&bytes)
            .map_err(|e| RegistryError::Artifact(format!("{r}: {e}")))?;
        Ok((m, actual))
    }

    /// The profile layer of `m` (read from `r`'s repository), its digest
    /// checked by oci-client and its size here.
    pub async fn layer(&self, r: &Reference, m: &Manifest) -> Result<Vec<u8>, RegistryError> {
        let [layer] = m.layers.as_slice() else {
            return Err(RegistryError::Artifact(format!("{r}: not one layer")));
        };
        let desc = OciDescriptor {
            media_type: layer.media_type.clone(),
            digest: layer.digest.clone(),
            size: i64::try_from(layer.size).unwrap_or(i64::MAX),
            ..OciDescriptor::default()
        };
        let mut out = Bounded {
            buf: Vec::new(),
            max: limits::MAX_BYTES,
        };
        self.client
            .pull_blob(r, &desc, &mut out)
            .await
            .map_err(|e| self.fail(&format!("reading the layer of {r} from"), e))?;
        let out = out.buf;
        if out.len() as u64 != layer.size || out.len() > limits::MAX_BYTES {
            return Err(RegistryError::Artifact(format!(
                "{r}: the layer has {} bytes, its manifest says {}",
                out.len(),
                layer.size
            )));
        }
        Ok(out)
    }
}

/// A profile artifact read and checked ([`Registry::pull`]).
#[derive(Debug)]
pub struct Pulled {
    pub manifest: Manifest,
    /// The manifest's digest.
    pub digest: String,
    /// The layer as it came (its digest checked): the profile's file.
    pub layer: Vec<u8>,
    pub profile: crate::profile::Profile,
}

impl Registry {
    /// The profile artifact `r` names: the manifest (media types, one
    /// layer, size, digest), the layer (size, digest), and the profile
    /// passing `check` and the registry limits; anything else refused.
    pub async fn pull(&self, r: &Reference) -> Result<Pulled, RegistryError> {
        let (manifest, digest) = self.manifest(r).await?;
        let layer = self.layer(r, &manifest).await?;
        let profile = artifact::read_layer(&layer)?;
        let problems: Vec<String> = crate::profile::check::check(&profile)
            .iter()
            .map(ToString::to_string)
            .chain(
                limits::check_limits(&profile)
                    .iter()
                    .map(ToString::to_string),
            )
            .collect();
        if !problems.is_empty() {
            return Err(RegistryError::Artifact(format!(
                "{r}: the profile has problems, refused: {}",
                problems.join("; ")
            )));
        }
        Ok(Pulled {
            manifest,
            digest,
            layer,
            profile,
        })
    }
}

/// A buffer that refuses to grow past `max` bytes: a registry that sends
/// more than the manifest said is cut off, not buffered.
struct Bounded {
    buf: Vec<u8>,
    max: usize,
}

impl tokio::io::AsyncWrite for Bounded {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.buf.len() + data.len() > self.max {
            return std::task::Poll::Ready(Err(std::io::Error::other(format!(
                "more than {} bytes",
                self.max
            ))));
        }
        self.buf.extend_from_slice(data);
        std::task::Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_or_listed() {
        for r in [
            "127.0.0.1:5000",
            "localhost:5000",
            "[::1]:5000",
            "127.9.9.9",
            "localhost",
        ] {
            assert!(plain_http_allowed(r, &[]), "{r}");
        }
        for r in [
            "registry.example:5000",
            "10.0.0.1:5000",
            "localhost.example",
        ] {
            assert!(!plain_http_allowed(r, &[]), "{r}");
        }
        let listed = [
            "registry.example:5000".to_owned(),
            "other.example".to_owned(),
        ];
        assert!(plain_http_allowed("registry.example:5000", &listed));
        assert!(!plain_http_allowed("registry.example:5001", &listed));
        assert!(plain_http_allowed("other.example:443", &listed));
    }

    #[tokio::test]
    async fn layers_past_the_limit_are_cut_off() {
        use tokio::io::AsyncWriteExt as _;
        let mut b = Bounded {
            buf: Vec::new(),
            max: 4,
        };
        b.write_all(b"1234").await.unwrap();
        assert!(b.write_all(b"5").await.is_err());
        assert_eq!(b.buf, b"1234");
    }

    #[test]
    fn repositories_parse_without_tags() {
        let r = Repo::parse("127.0.0.1:5000/h28/profiles").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "h28/profiles");
        assert_eq!(r.name(), "127.0.0.1:5000/h28/profiles");
        assert!(Repo::parse("127.0.0.1:5000/h28/profiles:v1").is_err());
        assert!(Repo::parse("127.0.0.1:5000/p@sha256:0000000000000000000000000000000000000000000000000000000000000000").is_err());
    }
}
