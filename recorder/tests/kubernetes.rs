//! The Kubernetes DaemonSet (deploy/kubernetes/recorderd.yaml). Checked
//! without a cluster: host PID namespace, the kernel mounts, the systemd
//! unit's capabilities (not privileged), profiles where kubelet's
//! `localhostProfile` finds them, a metrics port, and arguments recorderd
//! accepts. And run: the image `cargo xtask image` builds with docker, run by
//! podman with the container spec the manifest gives, records a host docker
//! container and leaves nothing attached or pinned after SIGTERM.

mod common;
mod support;

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use clap::Parser as _;
use serde_json::Value;

use common::*;
use support::*;

fn manifest() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/kubernetes/recorderd.yaml"
    );
    let text = fs::read_to_string(path).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

/// The capabilities of the shipped unit, without the `CAP_` prefix.
fn unit_capabilities() -> BTreeSet<String> {
    let unit = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/recorderd.service"
    ))
    .unwrap();
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .unwrap();
    line.split_whitespace()
        .map(|c| c.strip_prefix("CAP_").unwrap().to_owned())
        .collect()
}

#[test]
fn daemonset_has_what_recorderd_needs() {
    let m = manifest();
    assert_eq!(m["kind"], "DaemonSet");
    let pod = &m["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], true);
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];

    // The unit's capabilities, everything else dropped; not privileged.
    let sc = &c["securityContext"];
    assert_ne!(sc["privileged"], true, "privileged: {sc}");
    let added: BTreeSet<String> = strs(&sc["capabilities"]["add"])
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(added, unit_capabilities());
    assert_eq!(strs(&sc["capabilities"]["drop"]), ["ALL"]);

    // The mounts: each name's host path, and where the container sees it.
    let host: Vec<(&str, &str)> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap(),
                v["hostPath"]["path"].as_str().unwrap(),
            )
        })
        .collect();
    let mounted = |path: &str| -> Option<&str> {
        let m = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"] == path)?;
        let name = m["name"].as_str().unwrap();
        host.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
    };
    for path in ["/sys/fs/bpf", "/sys/kernel/tracing", "/sys/fs/cgroup"] {
        assert_eq!(mounted(path), Some(path), "{path} from the host");
    }
    // The bundles that name a container's image, pod and namespace, where
    // recorderd looks for them: containerd's task root, CRI-O's run root.
    let runroot = recorder::policy::storage_roots_in::<&str>(&[])[0].clone();
    for path in [Path::new(recorder::containerd::TASK_ROOTS[0]), &runroot] {
        let m = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| path.starts_with(m["mountPath"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("{} is not mounted", path.display()));
        let at = m["mountPath"].as_str().unwrap();
        assert_eq!(mounted(at), Some(at), "{} from the host", path.display());
        assert_eq!(m["readOnly"], true, "{at}");
    }

    // The arguments parse, and say where profiles and metrics go.
    let mut argv = strs(&c["command"]);
    argv.extend(strs(&c["args"]));
    let cli = recorder::cli::recorderd::Cli::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let config = cli.config().unwrap();
    assert!(config.record_all);
    // Profiles land in kubelet's seccomp root, on the host.
    let profiles = config.profiles_dir.to_str().unwrap();
    let on_host = mounted(profiles).unwrap_or_else(|| panic!("{profiles} is not mounted"));
    assert!(
        on_host.starts_with("/var/lib/kubelet/seccomp/"),
        "{on_host}"
    );
    for dir in [&config.state_dir, &config.pin_dir] {
        let dir = dir.to_str().unwrap();
        assert!(
            mounted(dir).is_some() || dir.starts_with("/sys/fs/bpf/"),
            "{dir} does not outlive the pod"
        );
    }
    // The metrics port is exposed and is the one recorderd listens on.
    let addr = recorder::metrics::parse_addr(&config.metrics_addr)
        .unwrap()
        .expect("metrics on");
    assert!(addr.ip().is_unspecified(), "{addr}: not reachable");
    let ports = c["ports"].as_array().unwrap();
    assert!(
        ports
            .iter()
            .any(|p| p["name"] == "metrics" && p["containerPort"] == addr.port()),
        "{ports:?}"
    );
}

/// docker's managed containerd (docker 20.10), where the archive is imported.
const CONTAINERD: &str = "/var/run/docker/containerd/containerd.sock";

/// A command run when dropped (removes what a test made).
struct Cleanup(Command);

impl Drop for Cleanup {
    fn drop(&mut self) {
        _ = self.0.output();
    }
}

fn podman(args: &[&str]) -> Command {
    let mut c = Command::new("podman");
    c.args(args);
    c
}

/// A directory in bpffs of the test's own, removed (unpinning what is in
/// it) when dropped.
struct Unpin(PathBuf);

impl Drop for Unpin {
    fn drop(&mut self) {
        _ = fs::remove_dir_all(&self.0);
    }
}

/// One volume mount of the container spec, on the host and inside.
struct Mount {
    host: PathBuf,
    inside: String,
    read_only: bool,
}

/// The mounts of the container spec. Read-only mounts and the kernel's
/// tracefs are the host's own; what recorderd writes (its state, profiles,
/// socket, and bpffs, where it pins) is redirected to directories of this
/// test, so that the test never touches a real recorderd's files.
fn mounts(pod: &Value, c: &Value, own: &Path, own_bpffs: &Path) -> Vec<Mount> {
    let volumes = pod["volumes"].as_array().unwrap();
    c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let name = m["name"].as_str().unwrap();
            let v = volumes.iter().find(|v| v["name"] == name).unwrap();
            let path = v["hostPath"]["path"].as_str().unwrap();
            let read_only = m["readOnly"] == true;
            let host = if read_only || path == "/sys/kernel/tracing" {
                PathBuf::from(path)
            } else if path == "/sys/fs/bpf" {
                own_bpffs.to_owned()
            } else {
                own.join(path.trim_start_matches('/'))
            };
            match v["hostPath"]["type"].as_str() {
                // As kubelet does.
                Some("DirectoryOrCreate") => fs::create_dir_all(&host).unwrap(),
                Some("Directory") => assert!(host.is_dir(), "{}", host.display()),
                other => panic!("hostPath type {other:?} is not translated"),
            }
            Mount {
                host,
                inside: m["mountPath"].as_str().unwrap().to_owned(),
                read_only,
            }
        })
        .collect()
}

/// Where a path inside the container is on the host.
fn on_host(mounts: &[Mount], inside: &Path) -> PathBuf {
    let m = mounts
        .iter()
        .filter(|m| inside.starts_with(&m.inside))
        .max_by_key(|m| m.inside.len())
        .unwrap_or_else(|| panic!("{} is not on a mount", inside.display()));
    m.host.join(inside.strip_prefix(&m.inside).unwrap())
}

/// `podman run` of the container spec `c` of pod `pod`, as kubelet would
/// run it: host PID namespace, the security context, the env, the mounts,
/// the memory limit, the command and args. A field the test does not
/// translate fails it, so the manifest cannot drift from what runs.
///
/// podman rather than docker: Debian 12's dockerd (20.10) refuses the
/// capabilities BPF and PERFMON by name. runc and the ulimits are what
/// podman needs on this kind of host (tests/common); `--read-only-tmpfs=false`
/// keeps podman from mounting tmpfs on /run and /tmp of a read-only root,
/// which kubelet does not do either.
fn podman_run(pod: &Value, c: &Value, name: &str, image: &str, mounts: &[Mount]) -> Command {
    let known_pod: BTreeSet<&str> = [
        "hostPID",
        "priorityClassName",
        "tolerations",
        "terminationGracePeriodSeconds",
        "containers",
        "volumes",
    ]
    .into();
    for key in pod.as_object().unwrap().keys() {
        assert!(known_pod.contains(key.as_str()), "pod field {key}");
    }
    // Translated below, or checked by the test (image, ports, probe), or
    // scheduling only (requests).
    let known: BTreeSet<&str> = [
        "name",
        "image",
        "imagePullPolicy",
        "command",
        "args",
        "env",
        "ports",
        "livenessProbe",
        "resources",
        "securityContext",
        "volumeMounts",
    ]
    .into();
    for key in c.as_object().unwrap().keys() {
        assert!(known.contains(key.as_str()), "container field {key}");
    }
    let mut cmd = podman(&["--runtime", "runc", "run", "--detach", "--name", name]);
    cmd.args([
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "--read-only-tmpfs=false",
    ]);
    if pod["hostPID"] == true {
        cmd.arg("--pid=host");
    }
    let sc = &c["securityContext"];
    for (key, v) in sc.as_object().unwrap() {
        match key.as_str() {
            "privileged" => assert_eq!(v, false, "privileged"),
            "runAsUser" => {
                cmd.arg(format!("--user={v}"));
            }
            "allowPrivilegeEscalation" => {
                if v == false {
                    cmd.arg("--security-opt=no-new-privileges");
                }
            }
            "readOnlyRootFilesystem" => {
                if v == true {
                    cmd.arg("--read-only");
                }
            }
            "capabilities" => {
                for cap in strs(&v["drop"]) {
                    cmd.arg(format!("--cap-drop={cap}"));
                }
                for cap in strs(&v["add"]) {
                    cmd.arg(format!("--cap-add={cap}"));
                }
            }
            "seccompProfile" => {
                assert_eq!(v["type"], "Unconfined");
                cmd.arg("--security-opt=seccomp=unconfined");
            }
            "appArmorProfile" => {
                assert_eq!(v["type"], "Unconfined");
                cmd.arg("--security-opt=apparmor=unconfined");
            }
            other => panic!("securityContext.{other} is not translated"),
        }
    }
    for e in c["env"].as_array().into_iter().flatten() {
        let (k, v) = (e["name"].as_str().unwrap(), e["value"].as_str().unwrap());
        cmd.arg(format!("--env={k}={v}"));
    }
    if let Some(limit) = c["resources"]["limits"]["memory"].as_str() {
        let mib = limit.strip_suffix("Mi").expect("a memory limit in Mi");
        cmd.arg(format!("--memory={mib}m"));
    }
    for m in mounts {
        let ro = if m.read_only { ",readonly" } else { "" };
        cmd.arg(format!(
            "--mount=type=bind,source={},target={}{ro}",
            m.host.display(),
            m.inside
        ));
    }
    let command = strs(&c["command"]);
    cmd.arg(format!("--entrypoint={}", command[0]))
        .arg(image)
        .args(&command[1..])
        .args(strs(&c["args"]));
    cmd
}

/// The BPF links pinned under `dir` (bpftool scans bpffs): (link id,
/// program id).
fn pinned_links(dir: &Path) -> BTreeSet<(u64, u64)> {
    bpftool(&["link", "show"])
        .iter()
        .filter(|l| {
            l["pinned"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| Path::new(p.as_str().unwrap_or_default()).starts_with(dir))
        })
        .map(|l| (l["id"].as_u64().unwrap(), l["prog_id"].as_u64().unwrap()))
        .collect()
}

/// `bpftool --json --bpffs OBJECT show`.
fn bpftool(args: &[&str]) -> Vec<Value> {
    let out = run_ok(
        Command::new("bpftool")
            .args(["--json", "--bpffs"])
            .args(args),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Ids in a `bpftool ... show` listing.
fn ids(list: &[Value]) -> BTreeSet<u64> {
    list.iter().filter_map(|o| o["id"].as_u64()).collect()
}

/// The files of the image's layers, from its archive (docker-archive:
/// manifest.json names the layer tarballs).
fn image_files(archive: &Path) -> BTreeSet<String> {
    let tar = |args: &[&str]| stdout_of(Command::new("tar").arg("--file").arg(archive).args(args));
    let manifest: Value =
        serde_json::from_str(&tar(&["--extract", "--to-stdout", "manifest.json"])).unwrap();
    let mut files = BTreeSet::new();
    for layer in strs(&manifest[0]["Layers"]) {
        let list = run_ok(Command::new("sh").arg("-c").arg(format!(
            "tar --file '{}' --extract --to-stdout '{layer}' | tar --list",
            archive.display()
        )));
        files.extend(
            String::from_utf8_lossy(&list.stdout)
                .lines()
                .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_owned()),
        );
    }
    files.remove("");
    files
}

#[test]
fn daemonset_container_records_a_host_container_and_detaches() {
    require_root();
    // Built before any test thread forks (a copy being written cannot be exec'd).
    busybox_rootfs();
    let m = manifest();
    let pod = &m["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    // The manifest runs the image `cargo xtask image` builds.
    assert_eq!(
        c["image"],
        format!("localhost/recorder:{}", env!("CARGO_PKG_VERSION"))
    );
    let dir = scratch("daemonset");
    let _dockerd = Dockerd::start(&dir);

    // The image, under a tag of this test's own (dockerd is shared).
    let id = std::process::id();
    let tag = format!("localhost/recorder:test-daemonset-{id}");
    let archive = dir.join("recorder.tar");
    run_ok(&mut xtask(&[
        "image",
        "--tool",
        "docker",
        "--tag",
        &tag,
        "--archive",
        archive.to_str().unwrap(),
    ]));
    let _image = Cleanup(docker(&["rmi", "--force", &tag]));
    let labels: Value = serde_json::from_str(&stdout_of(&mut docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        &tag,
    ])))
    .unwrap();
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        labels["org.opencontainers.image.licenses"],
        env!("CARGO_PKG_LICENSE")
    );
    for key in ["revision", "source"] {
        let v = labels[format!("org.opencontainers.image.{key}")].as_str();
        assert!(v.is_some_and(|v| !v.is_empty()), "{key}: {labels}");
    }
    // FROM scratch and the three binaries, nothing else.
    let want: BTreeSet<String> = [
        "usr",
        "usr/local",
        "usr/local/bin",
        "usr/local/bin/recorderd",
        "usr/local/bin/recorderctl",
        "usr/local/bin/recorder-oci-hook",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(image_files(&archive), want);
    // The archive imports into containerd as it would on a node.
    let ns = format!("recorder-test-image-{id}");
    let ctr = |args: &[&str]| {
        let mut c = Command::new("ctr");
        c.args(["--address", CONTAINERD, "--namespace", &ns])
            .args(args);
        c
    };
    run_ok(&mut ctr(&["images", "import", archive.to_str().unwrap()]));
    let listed = stdout_of(&mut ctr(&["images", "list", "--quiet"]));
    _ = run(&mut ctr(&["images", "remove", &tag]));
    _ = run(Command::new("ctr").args(["--address", CONTAINERD, "namespaces", "remove", &ns]));
    assert!(listed.lines().any(|l| l == tag), "{listed}");

    // recorderd as the DaemonSet runs it.
    let own_bpffs = PathBuf::from(format!("/sys/fs/bpf/recorder-test-daemonset-{id}"));
    _ = fs::remove_dir_all(&own_bpffs);
    fs::create_dir_all(&own_bpffs).unwrap();
    // Dropped after the container: whatever a failed run left pinned goes.
    let _unpin = Unpin(own_bpffs.clone());
    let mounts = mounts(pod, c, &dir.join("host"), &own_bpffs);
    let mut argv = strs(&c["command"]);
    argv.extend(strs(&c["args"]));
    let config = recorder::cli::recorderd::Cli::try_parse_from(&argv)
        .unwrap()
        .config()
        .unwrap();
    let socket = on_host(&mounts, &config.socket);
    let profiles = on_host(&mounts, &config.profiles_dir);
    let pin_dir = on_host(&mounts, &config.pin_dir);
    // The archive docker saved, loaded by podman, which runs recorderd.
    run_ok(&mut podman(&["load", "--input", archive.to_str().unwrap()]));
    let _loaded = Cleanup(podman(&["rmi", "--force", &tag]));
    let name = format!("recorder-test-daemonset-{id}");
    let _daemon = Cleanup(podman(&["rm", "--force", &name]));
    run_ok(&mut podman_run(pod, c, &name, &tag, &mounts));
    let logs = || {
        let out = run(&mut podman(&["logs", &name]));
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let ctl = |args: &[&str]| {
        let mut c = recorderctl();
        c.args(args).env("RECORDER_SOCKET", &socket);
        c
    };
    wait_for("recorderd in its container to answer", 60, || {
        run(&mut ctl(&["status"])).status.success().then_some(())
    });
    // The liveness probe answers, on the port the manifest names.
    let probe = &c["livenessProbe"]["httpGet"];
    let port = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == probe["port"])
        .unwrap()["containerPort"]
        .as_u64()
        .unwrap();
    let ip = stdout_of(&mut podman(&[
        "inspect",
        "--format",
        "{{.NetworkSettings.IPAddress}}",
        &name,
    ]));
    let url = format!("http://{ip}:{port}{}", probe["path"].as_str().unwrap());
    let health = ureq::get(&url).call();
    assert!(health.is_ok_and(|r| r.status() == 200), "{url}\n{}", logs());

    // A host docker container, recorded from its first syscall.
    let cidfile = dir.join("cid");
    let workload = format!("recorder-test-daemonset-workload-{id}");
    let cid = docker_workload(&workload, &cidfile);
    let path = profiles.join(format!("{cid}.json"));
    let text = wait_for(&format!("{} ({})", path.display(), logs()), 60, || {
        fs::read_to_string(&path).ok().filter(|t| !t.is_empty())
    });
    assert_recorded(&text);
    // Enforced: the workload runs under it, and not without chmod.
    assert_docker_enforces(&text, &dir);

    // SIGTERM (podman stop, as kubelet stops a pod): recorderd exits 0,
    // detaches and unpins.
    let links = pinned_links(&pin_dir);
    assert!(
        !links.is_empty(),
        "nothing pinned under {}",
        pin_dir.display()
    );
    let grace = pod["terminationGracePeriodSeconds"].to_string();
    run_ok(&mut podman(&["stop", "--time", &grace, &name]));
    let code = stdout_of(&mut podman(&[
        "inspect",
        "--format",
        "{{.State.ExitCode}}",
        &name,
    ]));
    assert_eq!(code, "0", "{}", logs());
    let live_links = ids(&bpftool(&["link", "show"]));
    let live_progs = ids(&bpftool(&["prog", "show"]));
    for (link, prog) in &links {
        assert!(!live_links.contains(link), "link {link} still attached");
        assert!(!live_progs.contains(prog), "program {prog} still loaded");
    }
    let left: Vec<PathBuf> = fs::read_dir(&own_bpffs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "still pinned: {left:?}");
}
