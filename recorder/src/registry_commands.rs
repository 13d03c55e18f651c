//! The bodies of `recorderctl publish`, `pull` and `images --registry`:
//! image profiles through an OCI registry (docs/fleet.md). Their command
//! lines are [`crate::cli::registry`]; the registry side is
//! [`crate::registry`]. recorderd is asked (over `--socket`) only for what
//! the command line leaves out: the ready rule and the repository.

use std::{
    collections::BTreeMap,
    io::{self, Write as _},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use oci_client::Reference;
use serde::Serialize;

use crate::{
    atomic_file,
    cli::{
        client::TableArgs,
        output::OutputFormat,
        registry::{FleetArgs, InsecureArgs, RegistryCommand, RuleArgs},
    },
    control::{self, ClientError, Reply, Request, StatusInfo},
    images::{ImagesConfig, is_id_prefix, normalise},
    registry::{
        Registry, RegistryError, Repo,
        artifact::{self, Kind, Provenance},
        fleet::{self, Contribution},
        install, tags,
    },
    timefmt::now_secs,
};

/// Errors of the registry commands.
#[derive(Debug, thiserror::Error)]
pub enum RegistryCmdError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Client(#[from] ClientError),
    /// recorderd was asked for what the command line left out, and could
    /// not answer: the error, and the flags that do without it.
    #[error("{err}; or give {flags}")]
    NoDaemon { err: ClientError, flags: String },
    #[error("{0}")]
    Usage(String),
    #[error("{image} is not ready fleet-wide: {why}; --force publishes it all the same")]
    NotReady { image: String, why: String },
    #[error("cannot write {path}: {err}")]
    Write { path: PathBuf, err: String },
    #[error("cannot write to standard output")]
    Stdout(#[source] io::Error),
    #[error("unexpected reply from recorderd")]
    Unexpected,
}

/// Where recorderd is, for what the command line leaves out.
#[derive(Clone, Copy, Debug)]
pub struct Daemon<'a> {
    pub socket: &'a Path,
    pub timeout: f64,
}

impl Daemon<'_> {
    /// recorderd's status, asked for what the command line left out
    /// (`flags`: what would have made asking needless).
    async fn status(&self, flags: &[&str]) -> Result<StatusInfo, RegistryCmdError> {
        let timeout = Duration::from_secs_f64(self.timeout);
        match control::call_within(self.socket, &Request::Status, timeout).await {
            Ok(Reply::Status { status }) => Ok(status),
            Ok(_) => Err(RegistryCmdError::Unexpected),
            Err(err) => Err(RegistryCmdError::NoDaemon {
                err,
                flags: flags.join(", "),
            }),
        }
    }
}

/// The flags that spare asking recorderd: `--registry` (when `registry`)
/// and the ready rule's thresholds not given.
fn missing_flags(registry: bool, rule: &RuleArgs) -> Vec<&'static str> {
    let mut flags = Vec::new();
    if registry {
        flags.push("--registry");
    }
    for (given, flag) in [
        (rule.ready_min_runs.is_some(), "--ready-min-runs"),
        (rule.ready_quiet_runs.is_some(), "--ready-quiet-runs"),
        (rule.ready_quiet_secs.is_some(), "--ready-quiet-secs"),
    ] {
        if !given {
            flags.push(flag);
        }
    }
    flags
}

/// The rule: the flags, the rest from recorderd.
async fn rule_of(
    args: &RuleArgs,
    status: Option<&StatusInfo>,
) -> Result<ImagesConfig, RegistryCmdError> {
    let daemon = status.and_then(|s| s.ready_rule);
    if !args.complete() && daemon.is_none() {
        return Err(RegistryCmdError::Usage(
            "recorderd did not tell its ready rule; give --ready-min-runs, --ready-quiet-runs and --ready-quiet-secs".to_owned(),
        ));
    }
    let pick = |flag: Option<u64>, d: fn(&crate::images::ReadyRule) -> u64| {
        flag.or(daemon.as_ref().map(d)).unwrap_or_default()
    };
    Ok(ImagesConfig {
        ready_min_runs: pick(args.ready_min_runs, |r| r.min_runs),
        ready_quiet_runs: pick(args.ready_quiet_runs, |r| r.quiet_runs),
        ready_quiet_secs: pick(args.ready_quiet_secs, |r| r.quiet_secs),
        ..ImagesConfig::default()
    })
}

/// The tags of the repository, contributions grouped by fleet tag, and
/// the fleet tags published.
struct Listing {
    groups: BTreeMap<String, Vec<String>>,
    published: Vec<String>,
}

async fn listing(reg: &Registry) -> Result<Listing, RegistryError> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut published = Vec::new();
    for tag in reg.tags().await? {
        match tags::fleet_of(&tag) {
            Some(fleet) => groups.entry(fleet.to_owned()).or_default().push(tag),
            None => published.push(tag),
        }
    }
    Ok(Listing { groups, published })
}

/// A contribution's provenance (its manifest only).
async fn provenance(reg: &Registry, tag: &str) -> Result<(Provenance, String), RegistryError> {
    let r = reg.repo.tagged(tag);
    let (m, digest) = reg.manifest(&r).await?;
    let prov = Provenance::from_annotations(&m.annotations)
        .map_err(|e| RegistryError::Artifact(format!("{r}: {e}")))?;
    Ok((prov, digest))
}

/// The provenance of the first member of a fleet tag that reads as a
/// contribution. A tag that is not one (anyone may push to the
/// repository, and a tag with `__` looks like a contribution) is named on
/// stderr and skipped, so that it hides no image.
async fn first_provenance(reg: &Registry, members: &[String]) -> Option<Provenance> {
    for tag in members {
        match provenance(reg, tag).await {
            Ok((prov, _)) => return Some(prov),
            Err(e) => skipped(tag, &e),
        }
    }
    None
}

fn skipped(tag: &str, e: &RegistryError) {
    eprintln!(
        "recorderctl: skipping {}: {}",
        crate::table::escape(tag),
        crate::table::escape(&e.to_string())
    );
}

/// Whether `spec` names the image of `p`: its key, id (or a prefix), a
/// reference it ran as, or as it is shown.
fn names(spec: &str, p: &Provenance) -> bool {
    let n = normalise(spec);
    p.key == spec
        || p.image == spec
        || normalise(&p.image) == n
        || p.references.iter().any(|r| normalise(r) == n)
        || p.id.as_deref().is_some_and(|id| is_id_prefix(spec, id))
}

/// The fleet tag of the image `spec` names.
async fn find_image(
    reg: &Registry,
    listing: &Listing,
    spec: &str,
) -> Result<String, RegistryCmdError> {
    let mut found = Vec::new();
    for (fleet, members) in &listing.groups {
        let Some(prov) = first_provenance(reg, members).await else {
            continue;
        };
        if names(spec, &prov) {
            found.push((fleet.clone(), prov.image));
        }
    }
    match found.as_slice() {
        [] => Err(RegistryError::NotFound(format!(
            "no node contributed a profile of {} to {}",
            spec.escape_debug(),
            reg.repo.name()
        ))
        .into()),
        [(fleet, _)] => Ok(fleet.clone()),
        many => Err(RegistryCmdError::Usage(format!(
            "{} names several images: {}",
            spec.escape_debug(),
            many.iter()
                .map(|(_, i)| i.escape_debug().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Every contribution of the fleet tag, profiles included.
async fn contributions(
    reg: &Registry,
    members: &[String],
) -> Result<Vec<Contribution>, RegistryError> {
    let mut all = Vec::with_capacity(members.len());
    for tag in members {
        let r = reg.repo.tagged(tag);
        let (m, digest) = reg.manifest(&r).await?;
        let prov = Provenance::from_annotations(&m.annotations)
            .map_err(|e| RegistryError::Artifact(format!("{r}: {e}")))?;
        if prov.kind != Kind::Contribution {
            return Err(RegistryError::Artifact(format!("{r}: not a contribution")));
        }
        let layer = reg.layer(&r, &m).await?;
        let profile = artifact::read_layer(&layer)?;
        all.push(Contribution {
            tag: tag.clone(),
            digest,
            prov,
            profile,
        });
    }
    Ok(all)
}

/// What `publish -o json` prints.
#[derive(Serialize)]
struct Published {
    reference: String,
    tag: String,
    digest: String,
    image: String,
    nodes: Vec<String>,
    /// Runs summed over the nodes, failed ones included.
    runs: u64,
    /// Of `runs`, those that failed.
    failed_runs: u64,
    ready: bool,
    not_ready: Vec<String>,
    contributions: usize,
}

/// `recorderctl publish`.
async fn publish(
    daemon: Daemon<'_>,
    image: &str,
    registry: Option<String>,
    force: bool,
    rule: &RuleArgs,
    insecure: &InsecureArgs,
    output: OutputFormat,
) -> Result<u8, RegistryCmdError> {
    let status = if registry.is_none() || !rule.complete() {
        Some(
            daemon
                .status(&missing_flags(registry.is_none(), rule))
                .await?,
        )
    } else {
        None
    };
    let repo = match registry.or_else(|| status.as_ref().and_then(|s| s.registry.clone())) {
        Some(r) => r,
        None => {
            return Err(RegistryCmdError::Usage(
                "no --registry, and recorderd pushes to none ([registry] repository)".to_owned(),
            ));
        }
    };
    let rule = rule_of(rule, status.as_ref()).await?;
    let started = Instant::now();
    let reg = Registry::new(Repo::parse(&repo)?, &insecure.insecure_registry)?;
    let listing = listing(&reg).await?;
    let fleet_tag = find_image(&reg, &listing, image).await?;
    let members = listing.groups.get(&fleet_tag).cloned().unwrap_or_default();
    let contribs = contributions(&reg, &members).await?;
    let waits = fleet::fleet_waits(&contribs, &rule, now_secs());
    if !waits.is_empty() && !force {
        return Err(RegistryCmdError::NotReady {
            image: image.escape_debug().to_string(),
            why: waits.join("; "),
        });
    }
    let Some((profile, prov)) = fleet::merge(&contribs) else {
        return Err(RegistryError::NotFound(format!("no contribution of {image}")).into());
    };
    let a = artifact::build(&profile, &prov)?;
    let digest = reg.push(&fleet_tag, &a).await?;
    let reference = format!("{}@{digest}", reg.repo.name());
    log::info!(
        "merged {} contributions and pushed in {:.2}s",
        contribs.len(),
        started.elapsed().as_secs_f64()
    );
    if !waits.is_empty() {
        eprintln!(
            "recorderctl: published although not ready fleet-wide (--force): {}",
            waits.join("; ")
        );
    }
    let shown = Published {
        reference: reference.clone(),
        tag: fleet_tag,
        digest,
        image: prov.image.clone(),
        nodes: contribs.iter().map(|c| c.prov.node.clone()).collect(),
        runs: prov.runs,
        failed_runs: prov.failed_runs,
        ready: waits.is_empty(),
        not_ready: waits,
        contributions: contribs.len(),
    };
    let mut w = io::stdout().lock();
    match output {
        OutputFormat::Json => writeln!(
            w,
            "{}",
            serde_json::to_string_pretty(&shown).unwrap_or_default()
        ),
        OutputFormat::Text => writeln!(w, "{reference}"),
    }
    .and_then(|()| w.flush())
    .map_err(RegistryCmdError::Stdout)?;
    Ok(0)
}

/// `recorderctl pull`.
async fn pull(
    reference: &str,
    out: Option<PathBuf>,
    install_dir: Option<PathBuf>,
    insecure: &InsecureArgs,
) -> Result<u8, RegistryCmdError> {
    let r: Reference = reference
        .parse()
        .map_err(|e| RegistryError::BadReference(reference.to_owned(), format!("{e}")))?;
    let repo = Repo {
        registry: r.registry().to_owned(),
        repository: r.repository().to_owned(),
    };
    let reg = Registry::new(repo, &insecure.insecure_registry)?;
    let pulled = reg.pull(&r).await?;
    let (m, layer) = (pulled.manifest, pulled.layer);
    let path = match (out, install_dir) {
        (Some(p), _) => Some(p),
        (None, Some(dir)) => {
            let prov = Provenance::from_annotations(&m.annotations).ok();
            let name = match (&prov, r.tag()) {
                (Some(p), _) => tags::fleet_tag(&p.key, &p.image),
                (None, Some(t)) => t.to_owned(),
                (None, None) => r.digest().unwrap_or("profile").replace(':', "-"),
            };
            let path = install::path_of(&dir, &name);
            if let Some(sub) = path.parent() {
                std::fs::create_dir_all(sub).map_err(|e| RegistryCmdError::Write {
                    path: sub.to_owned(),
                    err: e.to_string(),
                })?;
            }
            Some(path)
        }
        (None, None) => None,
    };
    match path {
        Some(p) => {
            atomic_file::write(&p, &layer).map_err(|e| RegistryCmdError::Write {
                path: p.clone(),
                err: e.to_string(),
            })?;
            eprintln!("recorderctl: wrote {}", p.display());
        }
        None => {
            let mut w = io::stdout().lock();
            w.write_all(&layer)
                .and_then(|()| w.flush())
                .map_err(RegistryCmdError::Stdout)?;
        }
    }
    Ok(0)
}

/// One row of `images --registry`.
#[derive(Serialize)]
struct FleetImage {
    image: String,
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    tag: String,
    nodes: Vec<String>,
    /// Runs summed over the nodes, failed ones included.
    runs: u64,
    /// Of `runs`, those that failed (they count toward no rule).
    failed_runs: u64,
    ready: bool,
    not_ready: Vec<String>,
    /// The fleet artifact's reference, when published.
    #[serde(skip_serializing_if = "Option::is_none")]
    published: Option<String>,
}

/// `recorderctl images --registry`.
async fn images(
    daemon: Daemon<'_>,
    fleet_args: &FleetArgs,
    repo: &str,
    output: OutputFormat,
    table: TableArgs,
) -> Result<u8, RegistryCmdError> {
    let status = if fleet_args.rule.complete() {
        None
    } else {
        Some(
            daemon
                .status(&missing_flags(false, &fleet_args.rule))
                .await?,
        )
    };
    let rule = rule_of(&fleet_args.rule, status.as_ref()).await?;
    let reg = Registry::new(Repo::parse(repo)?, &fleet_args.insecure.insecure_registry)?;
    let listing = listing(&reg).await?;
    let now = now_secs();
    let mut rows = Vec::new();
    for (fleet_tag, members) in &listing.groups {
        let mut contribs = Vec::new();
        for tag in members {
            let (prov, digest) = match provenance(&reg, tag).await {
                Ok(p) => p,
                Err(e) => {
                    skipped(tag, &e);
                    continue;
                }
            };
            contribs.push(Contribution {
                tag: tag.clone(),
                digest,
                prov,
                profile: crate::profile::Profile::default(),
            });
        }
        let Some(first) = contribs.first() else {
            continue;
        };
        let published = if listing.published.contains(fleet_tag) {
            let r = reg.repo.tagged(fleet_tag);
            reg.manifest(&r)
                .await
                .ok()
                .map(|(_, d)| format!("{}@{d}", reg.repo.name()))
        } else {
            None
        };
        let not_ready = fleet::fleet_waits(&contribs, &rule, now);
        rows.push(FleetImage {
            image: first.prov.image.clone(),
            key: first.prov.key.clone(),
            id: first.prov.id.clone(),
            tag: fleet_tag.clone(),
            nodes: contribs.iter().map(|c| c.prov.node.clone()).collect(),
            runs: contribs.iter().map(|c| c.prov.runs).sum(),
            failed_runs: contribs.iter().map(|c| c.prov.failed_runs).sum(),
            ready: not_ready.is_empty(),
            not_ready,
            published,
        });
    }
    rows.sort_by(|a, b| (&a.image, &a.key).cmp(&(&b.image, &b.key)));
    let mut w = io::stdout().lock();
    match output {
        OutputFormat::Json => writeln!(
            w,
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        ),
        OutputFormat::Text => print_fleet(&mut w, &rows, table.wide),
    }
    .and_then(|()| w.flush())
    .map_err(RegistryCmdError::Stdout)?;
    Ok(0)
}

/// The fleet table. READY's reasons are joined with `; ` (as `publish`
/// says them): a node's own reasons are joined with `, `.
fn print_fleet(w: &mut impl io::Write, rows: &[FleetImage], wide: bool) -> io::Result<()> {
    use crate::table::{left, right};
    let columns = [
        left("IMAGE"),
        right("NODES"),
        right("RUNS"),
        left("PUBLISHED"),
        left("READY"),
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.image.clone(),
                r.nodes.len().to_string(),
                r.runs.to_string(),
                r.published
                    .as_deref()
                    .and_then(|p| p.rsplit_once('@'))
                    .map_or_else(|| "-".to_owned(), |(_, d)| d.chars().take(19).collect()),
                if r.ready {
                    "yes".to_owned()
                } else {
                    format!("no: {}", r.not_ready.join("; "))
                },
            ]
        })
        .collect();
    crate::table::write(w, &columns, &cells, wide)
}

/// Runs `publish` or `pull`.
pub async fn run(cmd: RegistryCommand, daemon: Daemon<'_>) -> Result<u8, RegistryCmdError> {
    match cmd {
        RegistryCommand::Publish {
            image,
            registry,
            force,
            rule,
            insecure,
            output,
        } => publish(daemon, &image, registry, force, &rule, &insecure, output).await,
        RegistryCommand::Pull {
            reference,
            out_file,
            install_dir,
            insecure,
        } => pull(&reference, out_file, install_dir, &insecure).await,
    }
}

/// Runs `images --registry REPO`.
pub async fn fleet_images(
    daemon: Daemon<'_>,
    fleet_args: &FleetArgs,
    output: OutputFormat,
    table: TableArgs,
) -> Result<u8, RegistryCmdError> {
    let Some(repo) = &fleet_args.registry else {
        return Err(RegistryCmdError::Usage("no --registry".to_owned()));
    };
    images(daemon, fleet_args, repo, output, table).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_reasons_part_at_semicolons_and_cells_are_escaped() {
        let row = FleetImage {
            image: "app:1\x1b[2J".into(),
            key: "k".into(),
            id: None,
            tag: "t".into(),
            nodes: vec!["a".into(), "b".into()],
            runs: 4,
            failed_runs: 0,
            ready: false,
            not_ready: vec![
                "node a not quiet: 1/3 runs quiet, 2m/1h quiet".into(),
                "node b not quiet: 0/3 runs quiet".into(),
            ],
            published: None,
        };
        let mut out = Vec::new();
        print_fleet(&mut out, &[row], true).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(
                "no: node a not quiet: 1/3 runs quiet, 2m/1h quiet; node b not quiet: 0/3 runs quiet"
            ),
            "{text}"
        );
        assert!(text.contains("app:1\\u{1b}[2J"), "{text}");
    }

    #[test]
    fn a_missing_daemon_names_the_flags_that_do_without_it() {
        let rule = RuleArgs {
            ready_min_runs: Some(3),
            ..RuleArgs::default()
        };
        let flags = missing_flags(true, &rule);
        assert_eq!(
            flags,
            ["--registry", "--ready-quiet-runs", "--ready-quiet-secs"]
        );
        let e = RegistryCmdError::NoDaemon {
            err: ClientError::NoReply,
            flags: flags.join(", "),
        };
        assert_eq!(
            e.to_string(),
            "recorderd closed the connection without replying; or give --registry, --ready-quiet-runs, --ready-quiet-secs"
        );
    }
}
