//! The Kubernetes DaemonSet (deploy/kubernetes/recorderd.yaml), checked
//! without a cluster: host PID namespace, the kernel mounts, the systemd
//! unit's capabilities (not privileged), profiles where kubelet's
//! `localhostProfile` finds them, a metrics port, and arguments recorderd
//! accepts.

use std::{collections::BTreeSet, fs};

use clap::Parser as _;
use serde_json::Value;

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
    for path in [
        std::path::Path::new(recorder::containerd::TASK_ROOTS[0]),
        &runroot,
    ] {
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
