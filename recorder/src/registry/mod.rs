//! Image profiles beyond one node, through an OCI registry: each node
//! pushes its contribution to an image's profile (one artifact per image
//! and node), `recorderctl publish` merges them into the image's fleet
//! artifact, `pull` brings it back as a file. The artifacts are KEP-6061's
//! (`artifact.rs`), under the tags of `tags.rs`, moved by `client.rs`
//! (oci-client) with credentials from `auth.rs`; the fleet's merge and
//! ready rule are `fleet.rs`'s; recorderd's pushes `pusher.rs`'s, and its
//! installs of the published profiles (`[registry] install`)
//! `install.rs`'s; the `[registry]` table `config.rs`'s.

pub mod artifact;
pub mod auth;
pub mod client;
mod config;
mod error;
pub mod fleet;
pub mod install;
pub mod pusher;
pub mod tags;

pub use client::{Registry, Repo};
pub use config::{RegistryConfig, check_node, hostname};
pub use error::RegistryError;
