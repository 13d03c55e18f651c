//! containerd's own record of its containers: the task state directories
//! `<root>/<namespace>/<id>/` of the standalone containerd and of dockerd's,
//! whose `config.json` (the OCI bundle) gives the container's cgroup. A
//! cgroup is a containerd container because a task directory says so,
//! never because of the shape of its id. Read without containerd's socket.
//! A container's image is not read from its bundle: the bundle's
//! annotations (`io.kubernetes.cri.image-name`, `image-id`) are whatever
//! its creator wrote (`ctr run --annotation`). It comes from containerd's
//! metadata instead ([`image_of`]).

use std::{
    fs,
    io::Read as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// Where containerd keeps its tasks' state: the standalone daemon's, then
/// dockerd's own containerd's.
pub const TASK_ROOTS: &[&str] = &[
    "/run/containerd/io.containerd.runtime.v2.task",
    "/run/docker/containerd/daemon/io.containerd.runtime.v2.task",
];

/// The sockets of the containerds whose tasks are under [`TASK_ROOTS`],
/// in the same order.
const SOCKETS: &[&str] = &[
    "/run/containerd/containerd.sock",
    "/run/docker/containerd/containerd.sock",
];

/// The default task roots.
pub fn roots() -> Vec<PathBuf> {
    TASK_ROOTS.iter().map(PathBuf::from).collect()
}

/// One containerd task, from its state directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    pub namespace: String,
    pub id: String,
    /// `linux.cgroupsPath` of its bundle, when it is a cgroupfs path.
    pub cgroup: Option<String>,
}

/// Whether `s` can be one directory name (never `.`, `..` or a path).
fn component(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\0'])
}

/// Reads the task `<root>/<namespace>/<id>`, if its bundle is there.
fn read_task(root: &Path, namespace: &str, id: &str) -> Option<Task> {
    if !component(namespace) || !component(id) {
        return None;
    }
    let text = fs::read_to_string(root.join(namespace).join(id).join("config.json")).ok()?;
    let spec: serde_json::Value = serde_json::from_str(&text).ok()?;
    let cgroup = spec["linux"]["cgroupsPath"]
        .as_str()
        .filter(|p| p.starts_with('/'))
        .map(|p| p.trim_end_matches('/').to_owned());
    Some(Task {
        namespace: namespace.to_owned(),
        id: id.to_owned(),
        cgroup,
    })
}

/// What containerd's metadata tells of a container's image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageOf {
    /// The image it was created from (`ctr containers info`: `Image`).
    pub image: Option<String>,
    /// That image's digest in containerd's image store (its target), when
    /// the image is still there.
    pub digest: Option<String>,
}

/// containerd's client, which asks containerd itself (its socket, its
/// metadata database). A gRPC client crate (containerd-client) needs
/// tonic and protoc at build time; `ctr` ships with containerd.
const CTR: &str = "ctr";
/// How long one `ctr` call may take: a hung containerd must not hold up
/// the daemon's blocking pool.
const CTR_TIMEOUT: Duration = Duration::from_secs(3);

/// `ctr --address <socket> --namespace <namespace> <args>`'s standard
/// output, if it ran and succeeded within [`CTR_TIMEOUT`] (killed
/// otherwise).
fn ctr(socket: &str, namespace: &str, args: &[&str]) -> Option<String> {
    let mut child = Command::new(CTR)
        .args(["--address", socket])
        .arg("--namespace")
        .arg(namespace)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| log::debug!("{CTR}: {e}"))
        .ok()?;
    let mut stdout = child.stdout.take()?;
    // Read on a thread of its own: a full pipe must not stall the child
    // while this one waits for it.
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        stdout.read_to_string(&mut out).map(|_| out)
    });
    let deadline = Instant::now() + CTR_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => {
                log::warn!(
                    "ctr --namespace {namespace} {}: no answer; killed",
                    args.join(" ")
                );
                _ = child.kill();
                _ = child.wait();
                break None;
            }
        }
    };
    let out = reader.join().ok()?.ok()?;
    match status {
        Some(s) if s.success() => Some(out),
        Some(s) => {
            log::debug!("ctr --namespace {namespace} {}: {s}", args.join(" "));
            None
        }
        None => None,
    }
}

/// Whether `s` can go to `ctr` as one argument or filter value: no flag,
/// no filter syntax (`,` `|` `"` `=`), nothing but a reference's
/// characters.
fn plain_arg(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b))
}

/// The image container `namespace`/`id` has in containerd's metadata, and
/// its digest in containerd's image store: what containerd vouches for,
/// never the bundle's annotations. Nothing when `ctr` is missing or
/// containerd does not answer (the container then has no image, and its
/// image profile goes by its name, marked as such).
pub fn image_of(namespace: &str, id: &str) -> ImageOf {
    if !plain_arg(namespace) || !plain_arg(id) {
        return ImageOf::default();
    }
    // The containerd whose task directory holds it, else (its task gone)
    // whichever knows it.
    let has_task = |root: &&str| Path::new(root).join(namespace).join(id).is_dir();
    let mut sockets: Vec<&str> = TASK_ROOTS
        .iter()
        .zip(SOCKETS)
        .filter(|(root, _)| has_task(root))
        .map(|(_, s)| *s)
        .collect();
    if sockets.is_empty() {
        // Only where a containerd listens: ctr waits for a missing one.
        sockets = SOCKETS
            .iter()
            .copied()
            .filter(|s| Path::new(s).exists())
            .collect();
    }
    let Some((socket, image)) = sockets.into_iter().find_map(|socket| {
        let text = ctr(socket, namespace, &["containers", "info", id])?;
        let info: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some((socket, info["Image"].as_str()?.to_owned()))
    }) else {
        return ImageOf::default();
    };
    if !plain_arg(&image) {
        return ImageOf::default();
    }
    let filter = format!("name=={image}");
    let digest = ctr(socket, namespace, &["images", "list", &filter])
        .and_then(|listed| digest_in_listing(&listed, &image));
    ImageOf {
        image: Some(image),
        digest,
    }
}

/// The digest of `image` in `ctr images list`'s table (`REF TYPE DIGEST
/// ...`).
fn digest_in_listing(listing: &str, image: &str) -> Option<String> {
    listing.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let digest = *cols.get(2)?;
        let hex = digest.strip_prefix("sha256:")?;
        (cols.first() == Some(&image)
            && hex.len() == 64
            && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| digest.to_owned())
    })
}

/// The task whose cgroup is `path` in containerd's default layout
/// (`/<namespace>/<id>`, any parents above): its bundle must exist and
/// name `path` as its cgroup.
pub fn task_at(roots: &[PathBuf], path: &str) -> Option<Task> {
    let mut parts = path.rsplit('/');
    let id = parts.next()?;
    let namespace = parts.next()?;
    roots
        .iter()
        .filter_map(|root| read_task(root, namespace, id))
        .find(|t| t.cgroup.as_deref() == Some(path))
}

/// The config.json of task `namespace`/`id` (its OCI bundle's), in
/// whichever root has it.
pub fn bundle_config(roots: &[PathBuf], namespace: &str, id: &str) -> Option<PathBuf> {
    if !component(namespace) || !component(id) {
        return None;
    }
    roots
        .iter()
        .map(|root| root.join(namespace).join(id).join("config.json"))
        .find(|p| p.is_file())
}

/// The config.json of a task `id` in any namespace of any root (the first
/// found), for containers whose cgroup path does not name the namespace.
pub fn find_bundle_config(roots: &[PathBuf], id: &str) -> Option<PathBuf> {
    roots
        .iter()
        .flat_map(|root| dir_names(root).into_iter().map(move |ns| (root, ns)))
        .find_map(|(root, ns)| bundle_config(std::slice::from_ref(root), &ns, id))
}

/// The task `namespace`/`id`, in whichever root has it.
pub fn task(roots: &[PathBuf], namespace: &str, id: &str) -> Option<Task> {
    roots.iter().find_map(|root| read_task(root, namespace, id))
}

fn dir_names(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Every task of every namespace.
pub fn tasks(roots: &[PathBuf]) -> Vec<Task> {
    let mut tasks = Vec::new();
    for root in roots {
        for ns in dir_names(root) {
            for id in dir_names(&root.join(&ns)) {
                tasks.extend(read_task(root, &ns, &id));
            }
        }
    }
    tasks
}

/// Whether containerd has kept tasks in namespace `name` (its directory
/// stays after the tasks are gone).
pub fn is_namespace(roots: &[PathBuf], name: &str) -> bool {
    component(name) && roots.iter().any(|r| r.join(name).is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(root: &Path, ns: &str, id: &str, spec: &str) {
        let dir = root.join(ns).join(id);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("config.json"), spec).unwrap();
    }

    #[test]
    fn reads_ctr_listings_and_refuses_odd_arguments() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let listing = format!(
            "REF TYPE DIGEST SIZE PLATFORMS LABELS\n\
             h31/other:1 application/vnd.oci.image.manifest.v1+json {digest} 1.0 MiB linux/amd64 -\n"
        );
        assert_eq!(digest_in_listing(&listing, "h31/other:1"), Some(digest));
        assert_eq!(digest_in_listing(&listing, "h31/other:2"), None);
        assert_eq!(
            digest_in_listing("REF TYPE DIGEST\nx y sha256:12\n", "x"),
            None
        );
        for bad in ["", "-n", "a,b", "a|b", "a==b", "a b", "a\"b"] {
            assert!(!plain_arg(bad), "{bad}");
            assert_eq!(image_of(bad, "x"), ImageOf::default());
        }
        assert!(plain_arg("docker.io/library/busybox:1.36@sha256:ab"));
    }

    #[test]
    fn finds_tasks_by_their_bundles() {
        let dir = tempfile::tempdir().unwrap();
        let roots = vec![dir.path().join("a"), dir.path().join("b")];
        // Its annotations are its creator's: no image is taken from them.
        bundle(
            &roots[1],
            "demo",
            "myapp",
            r#"{"linux":{"cgroupsPath":"/demo/myapp"},"annotations":{"io.kubernetes.cri.image-name":"busybox:1"}}"#,
        );
        bundle(
            &roots[0],
            "k8s",
            "x",
            r#"{"linux":{"cgroupsPath":"s.slice:cri:x"}}"#,
        );
        let t = task_at(&roots, "/demo/myapp").unwrap();
        assert_eq!((t.namespace.as_str(), t.id.as_str()), ("demo", "myapp"));
        let c = crate::container::ContainerRef::from(&t);
        assert_eq!(c.namespace.as_deref(), Some("demo"));
        // The bundle must name the cgroup; the shape of the path is not enough.
        assert!(task_at(&roots, "/other/demo/myapp").is_none());
        assert!(task_at(&roots, "/demo/other").is_none());
        assert!(task_at(&roots, "/k8s/x").is_none());
        assert!(task_at(&roots, "/../..").is_none());
        assert_eq!(tasks(&roots).len(), 2);
        assert!(is_namespace(&roots, "demo"));
        assert!(!is_namespace(&roots, ".."));
        assert!(!is_namespace(&roots, "nope"));
        assert!(task(&roots, "demo", "myapp").is_some());
        assert_eq!(
            find_bundle_config(&roots, "x"),
            Some(roots[0].join("k8s/x/config.json"))
        );
        assert_eq!(find_bundle_config(&roots, ".."), None);
        assert_eq!(find_bundle_config(&roots, "nope"), None);
        assert!(task(&roots, "demo", "../demo/myapp").is_none());
    }
}
