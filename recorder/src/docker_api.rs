//! Docker container names and images from the Docker Engine API on
//! /var/run/docker.sock (or $DOCKER_HOST), through the bollard client.
//! Every call is bounded in time; without a reachable engine the answer is
//! `None` and ids alone still work.

use std::time::Duration;

use bollard::{API_DEFAULT_VERSION, Docker};

/// How long one Engine API call may take.
const TIMEOUT: Duration = Duration::from_secs(2);

/// What the engine says about a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspected {
    /// The full 64-hex id.
    pub id: String,
    /// Its name, without docker's leading '/', sanitised.
    pub name: Option<String>,
    /// The image it was created from, sanitised.
    pub image: Option<String>,
}

fn client() -> Option<Docker> {
    let socket = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_owned))
        .unwrap_or_else(|| "/var/run/docker.sock".to_owned());
    if !std::path::Path::new(&socket).exists() {
        return None;
    }
    Docker::connect_with_unix(&socket, TIMEOUT.as_secs(), API_DEFAULT_VERSION).ok()
}

/// Inspects the container `id_or_name` (the engine accepts either).
pub async fn inspect(id_or_name: &str) -> Option<Inspected> {
    let docker = client()?;
    let c = tokio::time::timeout(TIMEOUT, docker.inspect_container(id_or_name, None))
        .await
        .ok()?
        .ok()?;
    let clean = |s: &str| {
        let s = crate::names::sanitize(s.trim_start_matches('/'));
        (!s.is_empty()).then_some(s)
    };
    Some(Inspected {
        id: c.id?,
        name: c.name.as_deref().and_then(clean),
        image: c
            .config
            .and_then(|cfg| cfg.image)
            .as_deref()
            .and_then(clean),
    })
}
