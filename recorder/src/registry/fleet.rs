//! The fleet's view of an image, host-free: its nodes' contributions
//! merged (a union, runs summed) and the fleet-wide ready rule: the rule
//! of one node ([`ImagesConfig`]'s thresholds) with runs summed over the
//! nodes, and every contributing node quiet by that rule on its own.

use super::artifact::{Kind, Provenance};
use crate::{
    images::{ImageKey, ImageRow, ImagesConfig, KeyedBy},
    profile::Profile,
};

/// One node's contribution as read from the registry.
#[derive(Clone, Debug)]
pub struct Contribution {
    pub tag: String,
    /// Its manifest's digest.
    pub digest: String,
    pub prov: Provenance,
    pub profile: Profile,
}

/// A node's own quiet part of the rule: what it still waits for (empty:
/// quiet). Its runs count in the fleet's sum, not here.
pub fn node_waits(p: &Provenance, rule: &ImagesConfig, now: u64) -> Vec<String> {
    let quiet_only = ImagesConfig {
        ready_min_runs: 0,
        ..rule.clone()
    };
    row_of(p).not_ready(&quiet_only, now)
}

/// An image row standing for a provenance, to apply the rule of one node.
fn row_of(p: &Provenance) -> ImageRow {
    let key = ImageKey {
        key: p.key.clone(),
        keyed_by: if p.id.is_some() {
            KeyedBy::Id
        } else {
            KeyedBy::Reference
        },
        reference: None,
    };
    let mut row = ImageRow::new(&key, p.first_seen);
    row.runs = p.runs;
    row.last_seen = p.last_seen;
    row.last_new = p.last_new;
    row.runs_since_last_new = p.runs_since_last_new;
    row
}

/// What the fleet still waits for before its image is ready (empty:
/// ready): the summed runs that did not fail (with how many failed and
/// the last reason, when that is short), then each node not yet quiet, by
/// name.
pub fn fleet_waits(contribs: &[Contribution], rule: &ImagesConfig, now: u64) -> Vec<String> {
    let mut why = Vec::new();
    let runs: u64 = contribs.iter().map(|c| c.prov.runs).sum();
    let failed: u64 = contribs
        .iter()
        .map(|c| c.prov.failed_runs.min(c.prov.runs))
        .sum();
    let good = runs - failed;
    if good < rule.ready_min_runs {
        if failed > 0 {
            let last = contribs
                .iter()
                .filter(|c| c.prov.failed_runs > 0 && !c.prov.last_failure.is_empty())
                .max_by_key(|c| c.prov.last_seen)
                .map(|c| format!(" ({})", c.prov.last_failure.escape_debug()))
                .unwrap_or_default();
            why.push(format!("{failed} of {runs} runs failed{last}"));
        }
        why.push(format!(
            "{good}/{} runs over {} node{}",
            rule.ready_min_runs,
            contribs.len(),
            if contribs.len() == 1 { "" } else { "s" }
        ));
    }
    for c in contribs {
        let waits = node_waits(&c.prov, rule, now);
        if !waits.is_empty() {
            why.push(format!(
                "node {} not quiet: {}",
                c.prov.node.escape_debug(),
                waits.join(", ")
            ));
        }
    }
    why
}

/// The merge of `contribs` (at least one; sorted by node for a stable
/// result): the union of their profiles, runs summed, the earliest first
/// seen, the latest last seen and last new, the fewest runs since.
pub fn merge(contribs: &[Contribution]) -> Option<(Profile, Provenance)> {
    let mut sorted: Vec<&Contribution> = contribs.iter().collect();
    sorted.sort_by(|a, b| a.prov.node.cmp(&b.prov.node).then(a.tag.cmp(&b.tag)));
    let first = sorted.first()?;
    let mut profile = first.profile.clone();
    let mut prov = Provenance {
        kind: Kind::Fleet,
        contributions: Vec::new(),
        kernel: String::new(),
        node: String::new(),
        version: crate::VERSION.to_owned(),
        ..first.prov.clone()
    };
    prov.runs = 0;
    prov.failed_runs = 0;
    prov.last_failure = String::new();
    let mut latest_failure = 0;
    let mut nodes = Vec::new();
    for c in &sorted {
        if !std::ptr::eq(*c, *first) {
            for note in profile.merge(&c.profile) {
                log::debug!("merging {}: {note}", c.tag);
            }
        }
        prov.runs += c.prov.runs;
        prov.failed_runs += c.prov.failed_runs;
        if c.prov.failed_runs > 0 && c.prov.last_seen >= latest_failure {
            latest_failure = c.prov.last_seen;
            prov.last_failure.clone_from(&c.prov.last_failure);
        }
        prov.first_seen = prov.first_seen.min(c.prov.first_seen);
        prov.last_seen = prov.last_seen.max(c.prov.last_seen);
        prov.last_new = prov.last_new.max(c.prov.last_new);
        prov.runs_since_last_new = prov.runs_since_last_new.min(c.prov.runs_since_last_new);
        if prov.id.is_none() {
            prov.id.clone_from(&c.prov.id);
        }
        for r in &c.prov.references {
            if !prov.references.contains(r) {
                prov.references.push(r.clone());
            }
        }
        nodes.push(c.prov.node.clone());
        prov.contributions.push(format!("{}@{}", c.tag, c.digest));
    }
    prov.node = nodes.join(",");
    Some((profile, prov))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contribution(node: &str, names: &[&str], runs: u64, quiet_runs: u64) -> Contribution {
        let names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
        let profile = Profile::from_json(
            std::path::Path::new("t"),
            &format!(
                r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{{"names":[{}],"action":"SCMP_ACT_ALLOW"}}]}}"#,
                names.join(",")
            ),
        )
        .unwrap();
        Contribution {
            tag: format!("img__{node}"),
            digest: format!("sha256:{node}"),
            prov: Provenance {
                node: node.into(),
                image: "busybox".into(),
                key: "sha256:abc".into(),
                id: Some("sha256:abc".into()),
                runs,
                first_seen: 100,
                last_seen: 200,
                last_new: 150,
                runs_since_last_new: quiet_runs,
                ..Provenance::default()
            },
            profile,
        }
    }

    fn rule(min: u64, quiet: u64) -> ImagesConfig {
        ImagesConfig {
            ready_min_runs: min,
            ready_quiet_runs: quiet,
            ready_quiet_secs: 0,
            ..ImagesConfig::default()
        }
    }

    #[test]
    fn runs_are_summed_and_every_node_must_be_quiet() {
        let a = contribution("a", &["read"], 2, 1);
        let b = contribution("b", &["write"], 2, 0);
        // 4 runs: enough for 4, not 5.
        let both = [a.clone(), b];
        let why = fleet_waits(&both, &rule(5, 0), 1000);
        assert_eq!(why, ["4/5 runs over 2 nodes"]);
        assert!(fleet_waits(&both, &rule(4, 0), 1000).is_empty());
        // b had a new syscall in its last run: not quiet, named.
        let why = fleet_waits(&both, &rule(4, 1), 1000);
        assert_eq!(why, ["node b not quiet: 0/1 runs quiet"]);
        // Quiet by time, too.
        let slow = ImagesConfig {
            ready_quiet_secs: 10_000,
            ..rule(1, 0)
        };
        assert_eq!(fleet_waits(&[a], &slow, 1000).len(), 1);
    }

    #[test]
    fn failed_runs_count_toward_no_fleet_rule() {
        // Node a: 7 runs that failed and 3 good, quiet ones; node b: 1.
        // 11 runs, but only 4 that count: not 5 (issue 30's rule, fleet-wide).
        let mut a = contribution("a", &["read"], 10, 2);
        a.prov.failed_runs = 7;
        a.prov.last_failure = "exit 3 within 10 s\x1b[2J".into();
        let b = contribution("b", &["write"], 1, 1);
        let both = [a, b];
        let why = fleet_waits(&both, &rule(5, 1), 1000);
        assert_eq!(
            why,
            [
                "7 of 11 runs failed (exit 3 within 10 s\\u{1b}[2J)",
                "4/5 runs over 2 nodes"
            ]
        );
        assert!(fleet_waits(&both, &rule(4, 1), 1000).is_empty());
        let (_, prov) = merge(&both).unwrap();
        assert_eq!((prov.runs, prov.failed_runs), (11, 7));
        assert_eq!(prov.last_failure, "exit 3 within 10 s\x1b[2J");
    }

    #[test]
    fn merge_is_the_union_with_runs_summed() {
        let (p, prov) = merge(&[
            contribution("b", &["write"], 3, 1),
            contribution("a", &["read"], 2, 2),
        ])
        .unwrap();
        let names: Vec<&str> = p.syscalls.iter().flat_map(|r| r.all_names()).collect();
        assert!(
            names.contains(&"read") && names.contains(&"write"),
            "{names:?}"
        );
        assert_eq!(prov.runs, 5);
        assert_eq!(prov.kind, Kind::Fleet);
        assert_eq!(prov.node, "a,b");
        assert_eq!(prov.runs_since_last_new, 1);
        assert_eq!(prov.contributions, ["img__a@sha256:a", "img__b@sha256:b"]);
        assert!(merge(&[]).is_none());
    }
}
