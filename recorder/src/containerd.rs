//! containerd's own record of its containers: the task state directories
//! `<root>/<namespace>/<id>/` of the standalone containerd and of dockerd's,
//! whose `config.json` (the OCI bundle) gives the container's cgroup. A
//! cgroup is a containerd container because a task directory says so,
//! never because of the shape of its id. Read without containerd's socket.

use std::{
    fs,
    path::{Path, PathBuf},
};

/// Where containerd keeps its tasks' state: the standalone daemon's, then
/// dockerd's own containerd's.
pub const TASK_ROOTS: &[&str] = &[
    "/run/containerd/io.containerd.runtime.v2.task",
    "/run/docker/containerd/daemon/io.containerd.runtime.v2.task",
];

/// Bundle annotations that name the container's image (CRI's, then the OCI
/// image spec's).
const IMAGE_ANNOTATIONS: &[&str] = &[
    "io.kubernetes.cri.image-name",
    "org.opencontainers.image.ref.name",
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
    /// The image its bundle's annotations name.
    pub image: Option<String>,
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
    let image = IMAGE_ANNOTATIONS
        .iter()
        .find_map(|a| spec["annotations"][a].as_str())
        .map(str::to_owned);
    Some(Task {
        namespace: namespace.to_owned(),
        id: id.to_owned(),
        cgroup,
        image,
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
    fn finds_tasks_by_their_bundles() {
        let dir = tempfile::tempdir().unwrap();
        let roots = vec![dir.path().join("a"), dir.path().join("b")];
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
        assert_eq!(t.image.as_deref(), Some("busybox:1"));
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
