//! `RegistryError`: what can go wrong with artifacts and the registry.

/// What can go wrong with an artifact or the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A profile runtimes would refuse from a registry.
    #[error("refused: runtimes would not take this profile from a registry: {0}")]
    OverLimits(String),
    /// An artifact that is not what we write.
    #[error("{0}")]
    Artifact(String),
    #[error("{0:?} is no registry reference: {1}")]
    BadReference(String, String),
    /// The registry client could not be made.
    #[error("cannot make the registry client: {0}")]
    Client(String),
    /// The registry refused or could not be reached.
    #[error("{0}")]
    Registry(String),
    /// Nothing in the registry for an image.
    #[error("{0}")]
    NotFound(String),
}
