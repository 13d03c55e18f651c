//! Docker container names and images from the Docker Engine API at
//! `$DOCKER_HOST` (`unix://…` or `tcp://…`, plain HTTP; default
//! /var/run/docker.sock), through the bollard client, in the form of
//! docker's config on disk ([`DockerConfig`], which `names.rs` turns into a
//! `Container`).
//! Every call is bounded in time; without a reachable engine the answer is
//! `None` and ids alone still work.

use std::time::Duration;

use bollard::Docker;

use crate::names::{DockerConfig, DockerContainerConfig};

/// How long one Engine API call may take.
const TIMEOUT: Duration = Duration::from_secs(2);

/// What the engine says about a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspected {
    /// The full 64-hex id.
    pub id: String,
    /// Its name, image, image id and labels, as docker keeps them.
    pub config: DockerConfig,
    /// The value of its `seccomp=` security option (`HostConfig.SecurityOpt`):
    /// the profile's JSON as the CLI sent it, or `unconfined`; `None` under
    /// docker's default profile.
    pub seccomp: Option<String>,
}

/// The engine at `$DOCKER_HOST`, as bollard reads it. A host it cannot
/// use (an unknown scheme) is reported once, then ignored.
fn client() -> Option<Docker> {
    static REPORTED: std::sync::Once = std::sync::Once::new();
    match Docker::connect_with_defaults() {
        Ok(docker) => Some(docker.with_timeout(TIMEOUT)),
        Err(e) => {
            REPORTED.call_once(|| log::warn!("not asking the Docker engine for names: {e}"));
            None
        }
    }
}

/// Inspects the container `id_or_name` (the engine accepts either).
pub async fn inspect(id_or_name: &str) -> Option<Inspected> {
    inspect_with(&client()?, id_or_name).await
}

async fn inspect_with(docker: &Docker, id_or_name: &str) -> Option<Inspected> {
    let c = tokio::time::timeout(TIMEOUT, docker.inspect_container(id_or_name, None))
        .await
        .ok()?
        .ok()?;
    let config = c.config.unwrap_or_default();
    let seccomp = c
        .host_config
        .and_then(|h| h.security_opt)
        .unwrap_or_default()
        .iter()
        .find_map(|o| {
            o.strip_prefix("seccomp=")
                .or_else(|| o.strip_prefix("seccomp:"))
                .map(str::to_owned)
        });
    Some(Inspected {
        id: c.id?,
        seccomp,
        config: DockerConfig {
            name: c.name,
            image: c.image,
            config: Some(DockerContainerConfig {
                image: config.image,
                labels: config.labels.map(|l| l.into_iter().collect()),
            }),
        },
    })
}

#[cfg(test)]
mod tests {
    use std::{
        io::{BufRead as _, BufReader, Write as _},
        net::TcpListener,
        process::Command,
    };

    use super::*;

    /// Set only in the child process of `docker_host_tcp_is_honoured`.
    const CHILD: &str = "RECORDER_TEST_DOCKER_HOST_CHILD";

    /// A one-shot Engine API on 127.0.0.1: answers one inspect, and
    /// returns the request line it got.
    fn fake_engine() -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let served = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let body = format!(
                r#"{{"Id":"{}","Name":"/web","Config":{{"Image":"busybox:1"}}}}"#,
                "a".repeat(64)
            );
            write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            request
        });
        (addr, served)
    }

    /// `DOCKER_HOST=tcp://…` reaches that engine: run in a child process
    /// (the environment is process-wide) against a fake engine.
    #[test]
    fn docker_host_tcp_is_honoured() {
        let (addr, served) = fake_engine();
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "docker_api::tests::inspects_the_engine_of_docker_host",
                "--exact",
                "--nocapture",
            ])
            .env("DOCKER_HOST", format!("tcp://{addr}"))
            .env(CHILD, "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let request = served.join().unwrap();
        assert!(
            request.starts_with("GET ") && request.contains("/containers/web/json"),
            "{request}"
        );
    }

    /// The child of `docker_host_tcp_is_honoured`; does nothing otherwise.
    #[tokio::test]
    async fn inspects_the_engine_of_docker_host() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let inspected = inspect("web").await.expect("an answer from $DOCKER_HOST");
        assert_eq!(inspected.id, "a".repeat(64));
        assert_eq!(inspected.config.name.as_deref(), Some("/web"));
        let c = inspected
            .config
            .describe(crate::container::ContainerRef::default());
        assert_eq!(c.name.as_deref(), Some("web"));
        assert_eq!(c.image.as_deref(), Some("busybox:1"));
    }
}
