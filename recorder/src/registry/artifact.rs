//! The artifact, in KEP-6061's format (as SPO's `spoc push` writes it):
//! an OCI image manifest whose `artifactType` and config carry
//! [`MEDIA_TYPE`], with one layer of that type holding the profile as OCI
//! runtime-spec seccomp JSON, and our provenance in its annotations. Built
//! and read here, host-free; the tags it goes under are `tags.rs`'s.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::RegistryError;
use crate::{
    profile::{Profile, format, limits},
    timefmt::{format_time, parse_time},
};

/// KEP-6061's media type: the artifact's type, its config's and its layer's.
pub const MEDIA_TYPE: &str = "application/vnd.cncf.seccomp-profile.config.v1+json";
/// The manifest's own media type.
pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The config blob: the OCI empty JSON (the profile is the layer).
pub const CONFIG: &[u8] = b"{}";
/// The largest manifest read (a manifest with one layer is a few KiB).
pub const MAX_MANIFEST: usize = 256 * 1024;

/// Our annotations' prefix.
const P: &str = "dev.recorder.";

/// What a contribution or a fleet artifact says of where its profile
/// comes from (its annotations).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Provenance {
    /// `contribution` (one node's) or `fleet` (the merge `publish` made).
    pub kind: Kind,
    /// The node (a contribution), or the nodes, comma-separated (fleet).
    pub node: String,
    /// The image as shown (the most recent reference, else the short id).
    pub image: String,
    /// The image row's key (the id where the runtime told it).
    pub key: String,
    /// The image's id or digest, where known.
    pub id: Option<String>,
    /// The references the image was run as.
    pub references: Vec<String>,
    /// Runs in all, failed ones included.
    pub runs: u64,
    /// Of `runs`, those that failed (their workload never started, or
    /// exited non-zero early): they count toward no ready rule. 0 in
    /// artifacts of a recorderd that did not tell.
    pub failed_runs: u64,
    /// Why the last failed run failed (`exit 3 within 10 s`), as the node
    /// told it: hostile when read back, escape it to show it.
    pub last_failure: String,
    pub first_seen: u64,
    pub last_seen: u64,
    pub last_new: u64,
    pub runs_since_last_new: u64,
    /// The recorder version that made it.
    pub version: String,
    /// The kernel release it was recorded on (a contribution).
    pub kernel: String,
    /// A fleet artifact's contributions, `tag@digest` each.
    pub contributions: Vec<String>,
}

/// What an artifact is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kind {
    #[default]
    Contribution,
    Fleet,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Contribution => "contribution",
            Kind::Fleet => "fleet",
        }
    }
}

impl Provenance {
    /// As annotations.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let mut a = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            a.insert(format!("{P}{k}"), v);
        };
        put("kind", self.kind.as_str().to_owned());
        put("node", self.node.clone());
        put("image", self.image.clone());
        put("image.key", self.key.clone());
        if let Some(id) = &self.id {
            put("image.id", id.clone());
        }
        if !self.references.is_empty() {
            put("image.references", self.references.join(","));
        }
        put("runs", self.runs.to_string());
        if self.failed_runs > 0 {
            put("failed-runs", self.failed_runs.to_string());
        }
        if !self.last_failure.is_empty() {
            put("last-failure", self.last_failure.clone());
        }
        put("first-seen", format_time(self.first_seen));
        put("last-seen", format_time(self.last_seen));
        put("last-new", format_time(self.last_new));
        put("runs-since-last-new", self.runs_since_last_new.to_string());
        put("version", self.version.clone());
        if !self.kernel.is_empty() {
            put("kernel", self.kernel.clone());
        }
        if !self.contributions.is_empty() {
            put("contributions", self.contributions.join(","));
        }
        a.insert(
            "org.opencontainers.image.created".to_owned(),
            format_time(self.last_seen),
        );
        a
    }

    /// Read back from annotations; a missing or malformed one is an error
    /// naming it.
    pub fn from_annotations(a: &BTreeMap<String, String>) -> Result<Self, RegistryError> {
        let get = |k: &str| a.get(&format!("{P}{k}")).map(String::as_str);
        let need = |k: &str| {
            get(k).ok_or_else(|| RegistryError::Artifact(format!("no annotation {P}{k}")))
        };
        let bad = |k: &str| RegistryError::Artifact(format!("malformed annotation {P}{k}"));
        let number = |k: &str| need(k)?.parse::<u64>().map_err(|_| bad(k));
        let time = |k: &str| parse_time(need(k)?).ok_or_else(|| bad(k));
        let list = |k: &str| {
            get(k)
                .filter(|v| !v.is_empty())
                .map(|v| v.split(',').map(str::to_owned).collect())
                .unwrap_or_default()
        };
        let kind = match need("kind")? {
            "contribution" => Kind::Contribution,
            "fleet" => Kind::Fleet,
            _ => return Err(bad("kind")),
        };
        Ok(Self {
            kind,
            node: need("node")?.to_owned(),
            image: need("image")?.to_owned(),
            key: need("image.key")?.to_owned(),
            id: get("image.id").map(str::to_owned),
            references: list("image.references"),
            runs: number("runs")?,
            failed_runs: match get("failed-runs") {
                Some(v) => v.parse().map_err(|_| bad("failed-runs"))?,
                None => 0,
            },
            last_failure: get("last-failure").unwrap_or_default().to_owned(),
            first_seen: time("first-seen")?,
            last_seen: time("last-seen")?,
            last_new: time("last-new")?,
            runs_since_last_new: number("runs-since-last-new")?,
            version: get("version").unwrap_or_default().to_owned(),
            kernel: get("kernel").unwrap_or_default().to_owned(),
            contributions: list("contributions"),
        })
    }
}

/// A descriptor of the manifest (config or layer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// The manifest as we write and read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    pub media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A built artifact: its blobs and manifest, each with its digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// The profile as OCI runtime-spec seccomp JSON.
    pub layer: Vec<u8>,
    pub layer_digest: String,
    pub manifest: Vec<u8>,
    pub digest: String,
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in hash {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The profile as the layer holds it (OCI runtime-spec seccomp JSON, for
/// this host's architecture), refused when runtimes would refuse it.
pub fn layer_of(profile: &Profile) -> Result<Vec<u8>, RegistryError> {
    let (flat, notes) = format::flatten(profile, &[]);
    for note in notes {
        log::debug!("OCI seccomp JSON: {note}");
    }
    let mut text = serde_json::to_vec_pretty(&flat)
        .map_err(|e| RegistryError::Artifact(format!("cannot serialise the profile: {e}")))?;
    text.push(b'\n');
    let over = limits::over_limits(&flat, text.len());
    if !over.is_empty() {
        return Err(RegistryError::OverLimits(
            over.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    Ok(text)
}

/// Builds the artifact of `profile` with `prov`'s annotations.
pub fn build(profile: &Profile, prov: &Provenance) -> Result<Artifact, RegistryError> {
    let layer = layer_of(profile)?;
    let layer_digest = digest_of(&layer);
    let manifest = Manifest {
        schema_version: 2,
        media_type: MANIFEST_TYPE.to_owned(),
        artifact_type: Some(MEDIA_TYPE.to_owned()),
        config: Descriptor {
            media_type: MEDIA_TYPE.to_owned(),
            digest: digest_of(CONFIG),
            size: CONFIG.len() as u64,
        },
        layers: vec![Descriptor {
            media_type: MEDIA_TYPE.to_owned(),
            digest: layer_digest.clone(),
            size: layer.len() as u64,
        }],
        annotations: prov.annotations(),
    };
    let manifest = serde_json::to_vec(&manifest)
        .map_err(|e| RegistryError::Artifact(format!("cannot serialise the manifest: {e}")))?;
    Ok(Artifact {
        digest: digest_of(&manifest),
        layer,
        layer_digest,
        manifest,
    })
}

/// Reads a manifest fetched as `bytes`: KEP-6061's media types, exactly
/// one layer, and a layer within [`limits::MAX_BYTES`].
pub fn read_manifest(bytes: &[u8]) -> Result<Manifest, RegistryError> {
    let m: Manifest = serde_json::from_slice(bytes)
        .map_err(|e| RegistryError::Artifact(format!("not an OCI image manifest: {e}")))?;
    let not = |what: &str, got: &str| {
        Err(RegistryError::Artifact(format!(
            "{what} is {got:?}, not {MEDIA_TYPE}: not a seccomp profile artifact"
        )))
    };
    match m.artifact_type.as_deref() {
        Some(MEDIA_TYPE) => {}
        other => return not("its artifactType", other.unwrap_or("missing")),
    }
    if m.config.media_type != MEDIA_TYPE {
        return not("its config's media type", &m.config.media_type);
    }
    let [layer] = m.layers.as_slice() else {
        return Err(RegistryError::Artifact(format!(
            "{} layers, not one: not a seccomp profile artifact",
            m.layers.len()
        )));
    };
    if layer.media_type != MEDIA_TYPE {
        return not("its layer's media type", &layer.media_type);
    }
    if layer.size > limits::MAX_BYTES as u64 {
        return Err(RegistryError::OverLimits(format!(
            "its layer is {} bytes, over the {} (1 MiB) runtimes pull",
            layer.size,
            limits::MAX_BYTES
        )));
    }
    Ok(m)
}

/// Reads a layer (after its digest was checked): the profile.
pub fn read_layer(bytes: &[u8]) -> Result<Profile, RegistryError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| RegistryError::Artifact("the profile is not UTF-8".to_owned()))?;
    Profile::from_json(std::path::Path::new("layer"), text)
        .map_err(|e| RegistryError::Artifact(format!("the layer is no seccomp profile: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(names: &[&str]) -> Profile {
        let names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
        Profile::from_json(
            std::path::Path::new("t"),
            &format!(
                r#"{{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
                "syscalls":[{{"names":[{}],"action":"SCMP_ACT_ALLOW"}}]}}"#,
                names.join(",")
            ),
        )
        .unwrap()
    }

    fn prov() -> Provenance {
        Provenance {
            kind: Kind::Contribution,
            node: "node-a".into(),
            image: "docker.io/library/busybox:latest".into(),
            key: "sha256:abc".into(),
            id: Some("sha256:abc".into()),
            references: vec!["docker.io/library/busybox:latest".into()],
            runs: 7,
            failed_runs: 2,
            last_failure: "exit 3 within 10 s".into(),
            first_seen: 1_795_424_905,
            last_seen: 1_795_655_987,
            last_new: 1_795_500_000,
            runs_since_last_new: 3,
            version: "0.1.0".into(),
            kernel: "6.18.0".into(),
            contributions: Vec::new(),
        }
    }

    #[test]
    fn kep_6061_shape_and_provenance_round_trip() {
        let a = build(&profile(&["read", "write"]), &prov()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&a.manifest).unwrap();
        assert_eq!(v["mediaType"], MANIFEST_TYPE);
        assert_eq!(v["artifactType"], MEDIA_TYPE);
        assert_eq!(v["config"]["mediaType"], MEDIA_TYPE);
        assert_eq!(v["layers"].as_array().unwrap().len(), 1);
        assert_eq!(v["layers"][0]["mediaType"], MEDIA_TYPE);
        assert_eq!(v["layers"][0]["digest"], a.layer_digest.as_str());
        assert_eq!(v["annotations"]["dev.recorder.node"], "node-a");
        assert_eq!(v["annotations"]["dev.recorder.runs"], "7");
        assert_eq!(
            v["annotations"]["dev.recorder.first-seen"],
            "2026-11-23T09:08:25Z"
        );
        assert_eq!(a.digest, digest_of(&a.manifest));
        let m = read_manifest(&a.manifest).unwrap();
        assert_eq!(
            Provenance::from_annotations(&m.annotations).unwrap(),
            prov()
        );
        // The layer is runtime-spec JSON, read back as the same rules.
        let layer: serde_json::Value = serde_json::from_slice(&a.layer).unwrap();
        assert_eq!(layer["syscalls"][0]["names"][1], "write");
        let back = read_layer(&a.layer).unwrap();
        assert_eq!(back.syscalls[0].names, ["read", "write"]);
    }

    #[test]
    fn over_128_entries_is_refused_in_one_line() {
        let mut p = profile(&["read"]);
        let rule = p.syscalls[0].clone();
        p.syscalls = (0..129)
            .map(|i| {
                let mut r = rule.clone();
                r.action = "SCMP_ACT_ERRNO".into();
                r.errno_ret = Some(i + 1);
                r
            })
            .collect();
        let e = build(&p, &prov()).unwrap_err().to_string();
        assert!(e.contains("129 syscall entries"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        p.syscalls.truncate(128);
        assert!(build(&p, &prov()).is_ok());
    }

    #[test]
    fn foreign_manifests_are_refused() {
        let a = build(&profile(&["read"]), &prov()).unwrap();
        let mut m: Manifest = serde_json::from_slice(&a.manifest).unwrap();
        m.artifact_type = Some("application/vnd.oci.image.config.v1+json".into());
        let e = read_manifest(&serde_json::to_vec(&m).unwrap()).unwrap_err();
        assert!(e.to_string().contains("artifactType"), "{e}");
        let mut m: Manifest = serde_json::from_slice(&a.manifest).unwrap();
        m.layers.push(m.layers[0].clone());
        assert!(read_manifest(&serde_json::to_vec(&m).unwrap()).is_err());
        let mut m: Manifest = serde_json::from_slice(&a.manifest).unwrap();
        m.layers[0].size = limits::MAX_BYTES as u64 + 1;
        let e = read_manifest(&serde_json::to_vec(&m).unwrap()).unwrap_err();
        assert!(e.to_string().contains("1 MiB"), "{e}");
    }

    #[test]
    fn malformed_annotations_are_named() {
        let mut a = prov().annotations();
        a.insert("dev.recorder.runs".into(), "many".into());
        let e = Provenance::from_annotations(&a).unwrap_err().to_string();
        assert!(e.contains("dev.recorder.runs"), "{e}");
    }
}
