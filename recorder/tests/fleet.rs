//! Image profiles beyond one node (issue 28), against a real registry:
//! Debian's `docker-registry` (CNCF distribution), started here on a free
//! loopback port with its own config and storage. Two recorderd instances
//! stand for two nodes, each scoped by name to its own docker containers;
//! `publish` merges their contributions under the fleet-wide ready rule,
//! skopeo reads the artifact back, `pull` gives a profile docker enforces.
//! The registry stops mid-run and nothing is lost; 100 contributions merge
//! across pages of the tag list; a profile over 128 entries is refused; a
//! docker image under a contribution-like tag hides no image.

mod common;
mod support;

use std::{
    fs,
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use common::*;
use recorder::{
    profile::Profile,
    registry::{
        Registry, Repo,
        artifact::{self, Kind, Provenance},
        client::TAGS_PER_PAGE,
        tags,
    },
};
use support::*;

/// A docker-registry of the test's own on a loopback port.
struct TestRegistry {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl TestRegistry {
    fn start(name: &str) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("h28-registry-{name}"));
        _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("data")).unwrap();
        let mut r = Self {
            port: free_port(),
            dir,
            child: None,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let config = self.dir.join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{}\n  secret: h28-test\n",
                self.dir.join("data").display(),
                self.port
            ),
        )
        .unwrap();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("registry.log"))
            .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("docker-registry is not installed (cargo xtask setup installs it)");
        self.child = Some(child);
        let url = format!("http://127.0.0.1:{}/v2/", self.port);
        wait_for("the registry", 30, || {
            ureq::get(&url).call().ok().map(|_| ())
        });
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signals our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            _ = c.wait();
        }
    }

    /// `127.0.0.1:PORT/h28/<repo>`.
    fn repo(&self, repo: &str) -> String {
        format!("127.0.0.1:{}/h28/{repo}", self.port)
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback proxy in front of the registry that pages its tag list as
/// the distribution spec says (`n`, `last`, a `Link` header to the next
/// page): Debian's distribution 2.8 answers every tag at once, whatever
/// `n` asks. Every other request goes through as it is. Counts the pages
/// of more than one tag it served.
struct PagingProxy {
    port: u16,
    pages: Arc<AtomicUsize>,
}

impl PagingProxy {
    fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let pages = Arc::new(AtomicUsize::new(0));
        let counted = pages.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let pages = counted.clone();
                std::thread::spawn(move || proxy(conn, upstream, &pages));
            }
        });
        Self { port, pages }
    }
}

/// Serves one request on `conn` (`Connection: close`).
fn proxy(mut conn: TcpStream, upstream: u16, pages: &AtomicUsize) -> std::io::Result<()> {
    let mut req = Vec::new();
    let mut byte = [0u8; 1];
    while !req.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte)? == 0 {
            return Ok(());
        }
        req.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&req).into_owned();
    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
    let request_line = lines.next().unwrap_or_default().to_owned();
    let headers: Vec<&str> = lines
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    let length: usize = headers
        .iter()
        .find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body)?;
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if method == "GET" && path.ends_with("/tags/list") {
        let mut resp = ureq::get(&format!("http://127.0.0.1:{upstream}{path}"))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .map_err(std::io::Error::other)?;
        if resp.status() == 200 {
            let all: serde_json::Value = serde_json::from_str(
                &resp
                    .body_mut()
                    .read_to_string()
                    .map_err(std::io::Error::other)?,
            )
            .map_err(std::io::Error::other)?;
            let mut tags: Vec<String> = all["tags"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            tags.sort();
            let param = |k: &str| {
                query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                    .map(str::to_owned)
            };
            let n: usize = param("n")
                .and_then(|n| n.parse().ok())
                .unwrap_or(usize::MAX);
            let last = param("last");
            let after: Vec<String> = tags
                .into_iter()
                .filter(|t| last.as_ref().is_none_or(|l| t > l))
                .collect();
            let page: Vec<String> = after.iter().take(n).cloned().collect();
            let link = if after.len() > page.len() {
                format!(
                    "Link: <{path}?n={n}&last={}>; rel=\"next\"\r\n",
                    page.last().cloned().unwrap_or_default()
                )
            } else {
                String::new()
            };
            if page.len() > 1 {
                pages.fetch_add(1, Ordering::Relaxed);
            }
            let json = serde_json::json!({"name": all["name"], "tags": page}).to_string();
            write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{link}Connection: close\r\n\r\n{json}",
                json.len()
            )?;
            return Ok(());
        }
    }
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    let mut out = format!("{request_line}\r\n");
    for h in &headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    up.write_all(out.as_bytes())?;
    up.write_all(&body)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    conn.write_all(&answer)
}

/// `skopeo inspect --raw` of `reference`: the manifest as JSON.
fn skopeo_raw(reference: &str) -> serde_json::Value {
    let out = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ctl(args: &[&str]) -> std::process::Output {
    run(recorderctl().args(args))
}

/// A profile allowing `names`.
fn profile_of(names: &[&str]) -> Profile {
    let names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    Profile::from_json(
        Path::new("t"),
        &format!(
            r#"{{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"syscalls":[{{"names":[{}],"action":"SCMP_ACT_ALLOW"}}]}}"#,
            names.join(",")
        ),
    )
    .unwrap()
}

/// 100 nodes' contributions to one image, pushed by the test (through the
/// library's client): `publish` refuses one run short of the rule, then
/// merges all 100 across the tag list's pages; the artifact skopeo reads
/// names them all, and `pull` gives their union.
#[test]
fn hundred_contributions_merge_across_pages() {
    let reg = TestRegistry::start("hundred");
    let proxy = PagingProxy::start(reg.port);
    // Pushed straight to the registry, read through the paging proxy.
    let repo = reg.repo("hundred");
    let paged = format!("127.0.0.1:{}/h28/hundred", proxy.port);
    let abi = recorder::syscalls::Abi::native();
    let extra: Vec<&str> = (0..400u32)
        .filter_map(|nr| abi.name(nr))
        .filter(|n| *n != "read")
        .take(100)
        .collect();
    assert_eq!(extra.len(), 100);
    const { assert!(TAGS_PER_PAGE < 100, "the tag list must take several pages") };
    let key = "sha256:h28fleetimage0000000000000000000000000000000000000000000000000";
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = Registry::new(Repo::parse(&repo).unwrap(), &[]).unwrap();
        let fleet = tags::fleet_tag(key, "h28-test/app:latest");
        for (i, name) in extra.iter().enumerate() {
            let node = format!("h28-node-{i:03}");
            let prov = Provenance {
                kind: Kind::Contribution,
                node: node.clone(),
                image: "h28-test/app:latest".into(),
                key: key.into(),
                id: Some(key.into()),
                references: vec!["h28-test/app:latest".into()],
                runs: 1,
                failed_runs: 0,
                last_failure: String::new(),
                first_seen: 1_700_000_000,
                last_seen: 1_700_000_100,
                last_new: 1_700_000_000,
                runs_since_last_new: 1,
                version: "test".into(),
                kernel: "test".into(),
                contributions: Vec::new(),
            };
            let a = artifact::build(&profile_of(&["read", name]), &prov).unwrap();
            r.push(&tags::contribution_tag(&fleet, &node), &a)
                .await
                .unwrap();
        }
    });
    let rule = [
        "--ready-quiet-runs",
        "1",
        "--ready-quiet-secs",
        "0",
        "--registry",
        &paged,
    ];
    // One run short: refused, in one line, saying why.
    let out = run(recorderctl().args(
        [
            &[
                "publish",
                "--image",
                "h28-test/app",
                "--ready-min-runs",
                "101",
            ][..],
            &rule,
        ]
        .concat(),
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{err} {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("100/101 runs over 100 nodes"), "{err}");

    let started = Instant::now();
    let out = run_ok(
        recorderctl().args(
            [
                &[
                    "publish",
                    "--image",
                    "h28-test/app",
                    "--ready-min-runs",
                    "100",
                ][..],
                &rule,
            ]
            .concat(),
        ),
    );
    let took = started.elapsed();
    eprintln!(
        "publish of 100 contributions took {:.2}s",
        took.as_secs_f64()
    );
    fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("h28-publish-100.txt"),
        format!("{:.3}\n", took.as_secs_f64()),
    )
    .unwrap();
    let reference = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        reference.starts_with(&format!("{paged}@sha256:")),
        "{reference}"
    );
    // 100 contributions in pages of 50: each listing took several pages.
    assert!(
        proxy.pages.load(Ordering::Relaxed) >= 4,
        "the tag list was not paged"
    );

    let m = skopeo_raw(&reference);
    let a = &m["annotations"];
    assert_eq!(a["dev.recorder.kind"], "fleet", "{m}");
    assert_eq!(a["dev.recorder.runs"], "100", "{m}");
    let contributions = a["dev.recorder.contributions"].as_str().unwrap();
    assert_eq!(contributions.split(',').count(), 100, "{m}");

    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("h28-hundred.json");
    run_ok(recorderctl().args(["pull", &reference, "--out", file.to_str().unwrap()]));
    let names = allowed_names(&fs::read_to_string(&file).unwrap());
    for n in extra.iter().chain(&["read"]) {
        assert!(names.contains(*n), "{n} missing from the merge");
    }

    // The fleet view: one image, 100 nodes, published.
    let out = run_ok(
        recorderctl().args(
            [
                &["images", "-o", "json", "--ready-min-runs", "100"][..],
                &rule,
            ]
            .concat(),
        ),
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["nodes"].as_array().unwrap().len(), 100);
    assert_eq!(rows[0]["runs"], 100);
    assert_eq!(rows[0]["ready"], true);
    assert_eq!(rows[0]["published"], reference.as_str());
}

/// A profile over the runtimes' 128 entries: `check` warns in one line,
/// pushing it is refused in one line, and `pull` refuses an artifact
/// holding one (pushed around the check) in one line.
#[test]
fn over_128_entries_is_refused_in_one_line() {
    // 129 rules of one name each: nothing else wrong with it.
    let abi = recorder::syscalls::Abi::native();
    let rules: Vec<String> = (0..400u32)
        .filter_map(|nr| abi.name(nr))
        .take(129)
        .map(|n| format!(r#"{{"names":["{n}"],"action":"SCMP_ACT_ALLOW"}}"#))
        .collect();
    assert_eq!(rules.len(), 129);
    // ENOSYS by default: libc falls back from clone3, statx...
    let text = format!(
        r#"{{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,"syscalls":[{}]}}"#,
        rules.join(",")
    );
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("h28-129.json");
    fs::write(&file, &text).unwrap();
    let out = ctl(&["check", file.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a warning, not a problem: {said}"
    );
    assert!(said.ends_with(": ok\n"), "{said}");
    let warnings: Vec<&str> = said.lines().filter(|l| l.contains("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{said}");
    assert!(warnings[0].contains("129 syscall entries"), "{said}");

    let profile = Profile::from_json(&file, &text).unwrap();
    let e = artifact::build(&profile, &Provenance::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("129 syscall entries, over the 128"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");

    // The same profile pushed as an artifact without the check.
    let reg = TestRegistry::start("limits");
    let repo = reg.repo("limits");
    let layer = text.into_bytes();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": artifact::MANIFEST_TYPE,
        "artifactType": artifact::MEDIA_TYPE,
        "config": {"mediaType": artifact::MEDIA_TYPE, "digest": artifact::digest_of(artifact::CONFIG), "size": 2},
        "layers": [{"mediaType": artifact::MEDIA_TYPE, "digest": artifact::digest_of(&layer), "size": layer.len()}],
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let a = artifact::Artifact {
        layer_digest: artifact::digest_of(&layer),
        layer,
        digest: artifact::digest_of(&manifest),
        manifest,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let digest = rt.block_on(async {
        let r = Registry::new(Repo::parse(&repo).unwrap(), &[]).unwrap();
        r.push("too-long", &a).await.unwrap()
    });
    let out_file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("h28-129-pulled.json");
    _ = fs::remove_file(&out_file);
    let out = ctl(&[
        "pull",
        &format!("{repo}@{digest}"),
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("129 syscall entries"), "{err}");
    assert!(!out_file.exists(), "a refused profile was written");
}

const MKDIR: &str = "mkdir /tmp/d && echo DONE";
const SYMLINK: &str = "ln -s /tmp/x /tmp/l && echo DONE";

/// A scrape of a recorderd's /metrics.
fn scrape(addr: &str) -> String {
    let mut resp = ureq::get(&format!("http://{addr}/metrics"))
        .call()
        .expect("/metrics answers");
    resp.body_mut().read_to_string().unwrap()
}

/// The fleet's row of `image` (as `images --registry -o json` shows it)
/// once `runs` runs are in the registry.
fn fleet_row(repo: &str, socket: &Path, runs: u64) -> serde_json::Value {
    wait_for("the contributions in the registry", 60, || {
        let out = run(recorderctl().args([
            "images",
            "--registry",
            repo,
            "-o",
            "json",
            "--socket",
            socket.to_str().unwrap(),
        ]));
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
        rows.into_iter().find(|r| r["runs"].as_u64() == Some(runs))
    })
}

/// A node: recorderd in auto mode, scoped to the containers named
/// `h28-<node>-*`, pushing to `repo` as node `h28-<node>`, with `config`
/// (recorderd.toml) for the rest.
fn node(node: &str, repo: &str, metrics: &str, config: &Path) -> Daemon {
    let include = format!("h28-{node}-*");
    let name = format!("h28-{node}");
    Daemon(daemon::Daemon::start(
        &format!("h28-fleet-{node}"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--all",
            "--include-name",
            &include,
            "--registry",
            repo,
            "--node",
            &name,
            "--ready-min-runs",
            "4",
            "--ready-quiet-runs",
            "0",
            "--ready-quiet-secs",
            "0",
            "--metrics-addr",
            metrics,
        ],
    ))
}

/// `sh -c script` in a container named `name` of `image`, recorded by
/// `daemon` (its profile waited for).
fn workload(daemon: &Daemon, dir: &Path, image: &str, name: &str, script: &str) {
    run_container(daemon, dir, &["--name", name], image, script);
}

/// Two nodes record different workloads of one image and push their
/// contributions; `publish` (with the rule of the recorderd it asks)
/// refuses at 2 of 4 runs, then prints a digest-pinned reference; skopeo
/// sees KEP-6061's media types and one layer; the pulled profile runs both
/// nodes' workloads in docker, and node b (`[registry] install`) installs
/// the same file by itself. Then the registry stops: recording goes on,
/// the push fails and is retried, and lands once the registry is back.
#[test]
fn two_nodes_publish_pull_and_survive_a_registry_outage() {
    require_root();
    busybox_rootfs();
    let _serial = serial();
    let dir = scratch("h28-fleet");
    let _dockerd = Dockerd::start(&dir);
    let image = "h28-fleet/busybox";
    let id = import_image(image);
    let mut reg = TestRegistry::start("fleet");
    let repo = reg.repo("profiles");
    let metrics_a = format!("127.0.0.1:{}", free_port());
    let metrics_b = format!("127.0.0.1:{}", free_port());
    // Node b installs the published profiles for localhostProfile.
    let kubelet_b = dir.join("kubelet-b");
    let config_a = dir.join("a.toml");
    let config_b = dir.join("b.toml");
    fs::write(&config_a, "").unwrap();
    fs::write(
        &config_b,
        format!(
            "[registry]\ninstall = true\ninstall_dir = \"{}\"\n",
            kubelet_b.display()
        ),
    )
    .unwrap();
    let a = node("a", &repo, &metrics_a, &config_a);
    let b = node("b", &repo, &metrics_b, &config_b);
    let socket = a.socket.to_str().unwrap().to_owned();

    workload(&a, &dir, image, "h28-a-1", MKDIR);
    workload(&b, &dir, image, "h28-b-1", SYMLINK);
    let row = fleet_row(&repo, &a.socket, 2);
    assert_eq!(row["nodes"].as_array().unwrap().len(), 2, "{row}");
    assert_eq!(row["id"], id.as_str(), "{row}");
    let publish = ["publish", "--image", image, "--socket", &socket];
    let out = run(recorderctl().args(publish));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("2/4 runs over 2 nodes"), "{err}");

    workload(&a, &dir, image, "h28-a-2", MKDIR);
    workload(&b, &dir, image, "h28-b-2", SYMLINK);
    fleet_row(&repo, &a.socket, 4);
    let out = run_ok(recorderctl().args(publish));
    let reference = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        reference.starts_with(&format!("{repo}@sha256:")),
        "{reference}"
    );

    let m = skopeo_raw(&reference);
    assert_eq!(m["artifactType"], artifact::MEDIA_TYPE, "{m}");
    assert_eq!(m["config"]["mediaType"], artifact::MEDIA_TYPE, "{m}");
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{m}");
    assert_eq!(layers[0]["mediaType"], artifact::MEDIA_TYPE, "{m}");
    assert_eq!(m["annotations"]["dev.recorder.node"], "h28-a,h28-b", "{m}");
    assert_eq!(m["annotations"]["dev.recorder.runs"], "4", "{m}");

    // Pulled into a kubelet-like seccomp dir: both nodes' workloads run.
    let kubelet = dir.join("seccomp");
    let out = run_ok(recorderctl().args([
        "pull",
        &reference,
        "--install-dir",
        kubelet.to_str().unwrap(),
    ]));
    let said = String::from_utf8_lossy(&out.stderr);
    let path = said
        .split_whitespace()
        .last()
        .map(PathBuf::from)
        .unwrap_or_default();
    assert!(path.starts_with(kubelet.join("recorder")), "{said}");
    let names = allowed_names(&fs::read_to_string(&path).unwrap());
    assert!(
        names.contains("mkdir") && names.contains("symlink"),
        "{names:?}"
    );
    for script in [MKDIR, SYMLINK] {
        assert!(
            docker_runs_under(&path, image, script),
            "{script} failed under the pulled profile"
        );
    }

    // Node b's next push round installs the published profile, the same
    // file `pull --install-dir` wrote.
    workload(&b, &dir, image, "h28-b-3", SYMLINK);
    let installed = kubelet_b.join(path.strip_prefix(&kubelet).unwrap());
    let text = wait_for("the profile installed on node b", 60, || {
        fs::read_to_string(&installed).ok()
    });
    assert_eq!(text, fs::read_to_string(&path).unwrap());

    // The registry goes away: recording goes on, the push is retried.
    reg.stop();
    workload(&a, &dir, image, "h28-a-3", MKDIR);
    wait_for("a failed push on /metrics", 60, || {
        let text = scrape(&metrics_a);
        let failed = text
            .lines()
            .find(|l| l.starts_with("recorder_registry_pushes_total{result=\"failed\"}"))?;
        (failed.split_whitespace().last()? != "0").then_some(())
    });
    assert!(
        scrape(&metrics_a).contains("recorder_registry_pending 1"),
        "the contribution waits"
    );
    reg.spawn();
    let row = fleet_row(&repo, &a.socket, 6);
    assert_eq!(row["nodes"].as_array().unwrap().len(), 2, "{row}");
    // The snapshot scrapes read is refreshed every tick.
    wait_for("no push pending on /metrics", 10, || {
        let text = scrape(&metrics_a);
        (text.contains("recorder_registry_pending 0")
            && !text.contains("recorder_registry_last_success_time_seconds 0\n"))
        .then_some(())
    });
    drop(b);
}

/// A docker image pushed into the repository under a tag that looks like
/// a contribution (`<x>__<y>`): `images --registry` and `publish` skip it,
/// naming it on stderr, instead of failing for every image; `pull` of it
/// says it is no seccomp profile artifact (distribution 2.8, asked only
/// for OCI manifests, used to rewrite it to schema 1 and fail with
/// "Invalid digest").
#[test]
fn a_foreign_tag_hides_no_image_and_pull_says_what_it_is() {
    require_root();
    busybox_rootfs();
    let dir = scratch("rev28-foreign");
    let _dockerd = Dockerd::start(&dir);
    import_image("rev28-foreign");
    let reg = TestRegistry::start("foreign");
    let repo = reg.repo("foreign");
    let foreign = format!("{repo}:rev28-foreign__not-ours");
    run_ok(Command::new("skopeo").args([
        "copy",
        "-q",
        "--dest-tls-verify=false",
        "docker-daemon:rev28-foreign:latest",
        &format!("docker://{foreign}"),
    ]));
    let key = "sha256:rev28foreign00000000000000000000000000000000000000000000000000000";
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = Registry::new(Repo::parse(&repo).unwrap(), &[]).unwrap();
        let fleet = tags::fleet_tag(key, "rev28-test/app:latest");
        let prov = Provenance {
            kind: Kind::Contribution,
            node: "rev28-node".into(),
            image: "rev28-test/app:latest".into(),
            key: key.into(),
            id: Some(key.into()),
            runs: 2,
            ..Provenance::default()
        };
        let a = artifact::build(&profile_of(&["read"]), &prov).unwrap();
        r.push(&tags::contribution_tag(&fleet, "rev28-node"), &a)
            .await
            .unwrap();
    });
    let rule = [
        "--registry",
        &repo,
        "--ready-min-runs",
        "1",
        "--ready-quiet-runs",
        "0",
        "--ready-quiet-secs",
        "0",
    ];
    let out = run_ok(recorderctl().args([&["images", "-o", "json"][..], &rule].concat()));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("skipping rev28-foreign__not-ours") && err.contains("not a seccomp profile"),
        "{err}"
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["image"], "rev28-test/app:latest");
    let out =
        run_ok(recorderctl().args([&["publish", "--image", "rev28-test/app"][..], &rule].concat()));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with(&format!("{repo}@sha256:")),
        "{out:?}"
    );

    let out = ctl(&["pull", &foreign]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("not a seccomp profile artifact") && !err.contains("Invalid digest"),
        "{err}"
    );
}
