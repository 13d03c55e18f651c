//! recorderctl's commands that talk to recorderd (start, stop, profile,
//! list, profiles, status, drift) and their text or JSON output. Their command
//! line is [`crate::cli::client`].

use std::{
    io::{self, Write},
    path::{Path, PathBuf},
};

use crate::{
    cli::{
        client::{Conn, DaemonCommand},
        output::OutputFormat,
        profile::OutputArgs,
    },
    container::Container,
    control::{self, ClientError, DriftReport, RecordingInfo, Reply, Request, StatusInfo},
    profile::Profile,
    timefmt::format_time,
};

/// Errors of the daemon commands.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Profile(#[from] crate::profile::ProfileError),
    #[error(transparent)]
    Format(#[from] crate::profile::format::FormatError),
    #[error("cannot write {path}: {err}")]
    Write { path: PathBuf, err: String },
    #[error("unexpected reply from recorderd")]
    Unexpected,
    #[error("cannot write to standard output")]
    Stdout(#[source] io::Error),
}

/// Where recorderd is (`--socket`) and how long to wait for it
/// (`--timeout`): recorderctl's global options, before or after the
/// command.
#[derive(Clone, Copy, Debug)]
pub struct Link<'a> {
    pub socket: &'a Path,
    /// Seconds.
    pub timeout: f64,
}

impl Link<'_> {
    /// Sends one request to recorderd, within the timeout.
    async fn call(&self, request: &Request) -> Result<Reply, ClientError> {
        control::call_within(
            self.socket,
            request,
            std::time::Duration::from_secs_f64(self.timeout),
        )
        .await
    }
}

fn read_base(base: Option<&PathBuf>) -> Result<Option<Profile>, CtlError> {
    Ok(base.map(|p| Profile::read(p)).transpose()?)
}

/// Renders `profile` as asked; what the format cannot express goes to stderr.
fn render(profile: &Profile, out: &OutputArgs) -> Result<String, CtlError> {
    let rendered = crate::profile::format::render(profile, &out.options())?;
    for note in &rendered.notes {
        eprintln!("recorderctl: note: {note}");
    }
    Ok(rendered.text)
}

/// Where `stop --format F` puts the converted profile, beside the JSON.
fn converted_path(json: &Path, format: crate::profile::format::Format) -> PathBuf {
    use crate::profile::format::Format;
    let ext = match format {
        Format::Docker => "json",
        Format::Oci => "oci.json",
        Format::Spo => "yaml",
        Format::Kafel => "kafel",
    };
    json.with_extension(ext)
}

/// Prints to stdout with `print`; a closed stdout is an error, not a panic.
fn out(print: impl FnOnce(&mut io::StdoutLock<'_>) -> io::Result<()>) -> Result<u8, CtlError> {
    let mut w = io::stdout().lock();
    print(&mut w)
        .and_then(|()| w.flush())
        .map_err(CtlError::Stdout)?;
    Ok(0)
}

fn out_text(text: &str) -> Result<u8, CtlError> {
    out(|w| w.write_all(text.as_bytes()))
}

/// Prints `v` as JSON or, for people, with `text`; returns exit code 0.
fn show<T: serde::Serialize>(
    output: OutputFormat,
    v: &T,
    text: impl FnOnce(&mut io::StdoutLock<'_>, &T) -> io::Result<()>,
) -> Result<u8, CtlError> {
    out(|w| match output {
        OutputFormat::Json => print_json(w, v),
        OutputFormat::Text => text(w, v),
    })
}

fn print_json<T: serde::Serialize>(w: &mut impl Write, v: &T) -> io::Result<()> {
    writeln!(w, "{}", serde_json::to_string_pretty(v).unwrap_or_default())
}

/// `namespace/pod` of a Kubernetes container, for the POD column.
fn pod_column(namespace: Option<&str>, pod: Option<&str>) -> String {
    match (namespace, pod) {
        (Some(ns), Some(pod)) => format!("{ns}/{pod}"),
        (None, Some(pod)) => pod.to_owned(),
        (Some(ns), None) => format!("{ns}/-"),
        (None, None) => "-".to_owned(),
    }
}

/// A container key as the CONTAINER column shows it: a 64-hex id (alone
/// or after containerd's `namespace/`) cut to 12, as the runtimes show
/// ids; any other key (a containerd id its user chose, `cgroup-<inode>`)
/// whole.
fn short_key(key: &str) -> String {
    let (ns, id) = match key.rsplit_once('/') {
        Some((ns, id)) => (Some(ns), id),
        None => (None, key),
    };
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        match ns {
            Some(ns) => format!("{ns}/{}", &id[..12]),
            None => id[..12].to_owned(),
        }
    } else {
        key.to_owned()
    }
}

/// An image as the listings of containers show it: normalised as
/// `images` shows it and `profile --image` takes it (an id prefix as is).
fn image_cell(image: Option<&str>) -> String {
    match image {
        Some(i) if i.len() >= 4 && i.bytes().all(|b| b.is_ascii_hexdigit()) => i.to_owned(),
        Some(i) => crate::images::normalise(i),
        None => "-".to_owned(),
    }
}

/// The CONTAINER, RUNTIME, NAME, IMAGE and POD columns ([`container_cells`]).
const CONTAINER_COLUMNS: [crate::table::Column; 5] = {
    use crate::table::left;
    [
        left("CONTAINER"),
        left("RUNTIME"),
        left("NAME"),
        left("IMAGE"),
        left("POD"),
    ]
};

/// The CONTAINER, RUNTIME, NAME, IMAGE and POD cells of `c`.
fn container_cells(c: &Container) -> Vec<String> {
    vec![
        short_key(&c.key()),
        c.runtime().to_string(),
        c.name.clone().unwrap_or_else(|| "-".to_owned()),
        image_cell(c.image.as_deref()),
        pod_column(c.pod_namespace.as_deref(), c.pod.as_deref()),
    ]
}

fn print_recordings(w: &mut impl Write, list: &[RecordingInfo], wide: bool) -> io::Result<()> {
    use crate::table::{left, right};
    let columns: Vec<_> = CONTAINER_COLUMNS
        .into_iter()
        .chain([right("SYSCALLS"), left("STARTED"), left("CGROUP")])
        .collect();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            let mut row = container_cells(&r.container);
            row.extend([
                r.syscalls.to_string(),
                format_time(r.started),
                r.cgroup.clone(),
            ]);
            row
        })
        .collect();
    crate::table::write(w, &columns, &rows, wide)
}

fn print_profiles(w: &mut impl Write, list: &[crate::index::Entry], wide: bool) -> io::Result<()> {
    use crate::table::left;
    let columns: Vec<_> = CONTAINER_COLUMNS
        .into_iter()
        .chain([left("WRITTEN"), left("PATH")])
        .collect();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|e| {
            let mut row = container_cells(&e.container);
            row.extend([format_time(e.written), e.path.display().to_string()]);
            row
        })
        .collect();
    crate::table::write(w, &columns, &rows, wide)
}

fn print_images(
    w: &mut impl Write,
    list: &[crate::images::ImageInfo],
    wide: bool,
) -> io::Result<()> {
    use crate::table::{left, right};
    let columns = [
        left("IMAGE"),
        left("ID"),
        right("RUNS"),
        right("SYSCALLS"),
        left("FIRST SEEN"),
        left("LAST SEEN"),
        left("LAST NEW"),
        right("QUIET"),
        left("READY"),
    ];
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|i| {
            let ready = if i.ready {
                "yes".to_owned()
            } else if i.not_ready.is_empty() {
                "no".to_owned()
            } else {
                format!("no: {}", i.not_ready.join(", "))
            };
            vec![
                crate::images::shown(i.keyed_by, &i.image),
                i.id.as_deref()
                    .map_or_else(|| "-".to_owned(), crate::images::short_id),
                i.runs.to_string(),
                i.syscalls.to_string(),
                format_time(i.first_seen),
                format_time(i.last_seen),
                format_time(i.last_new),
                format!("{} runs", i.runs_since_last_new),
                ready,
            ]
        })
        .collect();
    crate::table::write(w, &columns, &rows, wide)
}

fn print_status(w: &mut impl Write, s: &StatusInfo) -> io::Result<()> {
    let mut rows = vec![
        (
            "version",
            format!("{} (protocol {})", s.version, s.protocol),
        ),
        ("uptime", format!("{}s", s.uptime_secs)),
        ("attached", s.attached.to_string()),
        ("record all", s.record_all.to_string()),
        ("recordings", s.recordings.to_string()),
        ("map usage", format!("{}/{}", s.map_entries, s.map_capacity)),
        ("enrol failures", s.enrol_failures.to_string()),
        ("profiles written", s.profiles_written.to_string()),
        ("pending writes", s.pending_writes.to_string()),
        ("pending images", s.pending_image_writes.to_string()),
        ("socket", s.socket.display().to_string()),
        ("profiles dir", s.profiles_dir.display().to_string()),
        ("state dir", s.state_dir.display().to_string()),
        ("pin dir", s.pin_dir.display().to_string()),
        ("metrics", s.metrics_addr.clone()),
        ("scope", s.scope.clone()),
    ];
    if let Some(repo) = &s.registry {
        // Where `publish` reads from by default; two nodes' daemons told
        // apart by it too.
        rows.push(("registry", repo.clone()));
    }
    if let Some(why) = &s.unhealthy {
        rows.push(("unhealthy", why.clone()));
    }
    if let Some(e) = &s.last_error {
        let at = s.last_error_at.map(|at| format!("{} ", format_time(at)));
        rows.push(("last error", format!("{}{e}", at.unwrap_or_default())));
    }
    // One column for the values: the longest label, its colon, a space.
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 2;
    for (k, v) in rows {
        // Errors and the scope name containers and paths: escaped.
        writeln!(w, "{:<width$}{}", format!("{k}:"), crate::table::escape(&v))?;
    }
    Ok(())
}

fn print_drift(w: &mut impl Write, reports: &[DriftReport]) -> io::Result<()> {
    if reports.is_empty() {
        // `drift --all`: silence would look like a hang or a failure.
        return writeln!(
            w,
            "no drift: no watched container made a syscall outside its profile"
        );
    }
    for (i, d) in reports.iter().enumerate() {
        if i > 0 {
            writeln!(w)?;
        }
        writeln!(
            w,
            "{} {} ({}){}",
            crate::table::escape(&short_key(&d.id)),
            crate::table::escape(d.name.as_deref().unwrap_or("-")),
            crate::table::escape(d.image.as_deref().unwrap_or("-")),
            if d.running { "" } else { ", exited" }
        )?;
        writeln!(
            w,
            "profile: {} ({})",
            crate::table::escape(&d.profile),
            crate::table::escape(&d.default_action)
        )?;
        // What the profile broke first: the denials.
        if d.enforcing || !d.denied.is_empty() {
            print_denied(w, d)?;
        }
        if d.outside.is_empty() {
            writeln!(w, "outside the profile: nothing so far")?;
        } else {
            writeln!(w, "outside the profile (first seen):")?;
            for (name, at) in &d.outside_since {
                writeln!(w, "  {name:<24} {}", format_time(*at))?;
            }
        }
        if let Some(note) = &d.note {
            writeln!(w, "note: {}", crate::table::escape(note))?;
        }
    }
    Ok(())
}

/// The `denied` lines of a drift report.
fn print_denied(w: &mut impl Write, d: &DriftReport) -> io::Result<()> {
    if d.denied.is_empty() {
        return writeln!(w, "denied by the profile: nothing so far");
    }
    writeln!(w, "denied by the profile (count, first seen):")?;
    for x in &d.denied {
        let what = if x.killed {
            format!("{} (killed the task)", x.name)
        } else {
            x.name.clone()
        };
        writeln!(
            w,
            "  {:<24} {:<7} {:>6}  {}",
            crate::table::escape(&what),
            x.abi.filter_arch(),
            x.count,
            format_time(x.first_seen)
        )?;
    }
    Ok(())
}

/// Writes `text` to `path` atomically.
fn write_file(path: &Path, text: &str) -> Result<(), CtlError> {
    crate::profile::write(path, text).map_err(|e| CtlError::Write {
        path: path.to_owned(),
        err: e.to_string(),
    })
}

/// `drift`: the report (one object for a container, a list for `--all`),
/// or with `widen` the widened profile.
async fn drift(
    conn: &Conn,
    to: Link<'_>,
    request: Request,
    out_file: Option<&Path>,
    format: &OutputArgs,
) -> Result<u8, CtlError> {
    let (one, widen) = match &request {
        Request::Drift { container, widen } => (container.is_some(), *widen),
        _ => (false, false),
    };
    let Reply::Drift { mut reports } = to.call(&request).await? else {
        return Err(CtlError::Unexpected);
    };
    if !widen {
        return match (one, conn.output) {
            (true, OutputFormat::Json) => {
                let d = reports.pop().ok_or(CtlError::Unexpected)?;
                out(|w| print_json(w, &d))
            }
            _ => show(conn.output, &reports, |w, r| print_drift(w, r)),
        };
    }
    let Some(d) = reports.pop() else {
        return Err(CtlError::Unexpected);
    };
    if let Some(note) = &d.note {
        eprintln!("recorderctl: note: {}", crate::table::escape(note));
    }
    let text = render(d.widened.as_ref().ok_or(CtlError::Unexpected)?, format)?;
    match out_file {
        Some(path) => {
            write_file(path, &text)?;
            // The drift and the denied names (a kill at an unknown
            // syscall adds none).
            let mut more: std::collections::BTreeSet<&str> =
                d.outside.iter().map(String::as_str).collect();
            more.extend(
                d.denied
                    .iter()
                    .filter(|x| !(x.killed && x.name == "unknown"))
                    .map(|x| x.name.as_str()),
            );
            eprintln!(
                "recorderctl: {} with {} more syscall(s) written to {}",
                crate::table::escape(&d.profile),
                more.len(),
                path.display()
            );
            Ok(0)
        }
        None => out_text(&text),
    }
}

/// Runs a daemon command against recorderd; returns the exit code.
pub async fn run(cmd: DaemonCommand, to: Link<'_>) -> Result<u8, CtlError> {
    match cmd {
        DaemonCommand::Start { conn, target, base } => {
            let req = Request::Start {
                target: target.target(),
                base: read_base(base.as_ref())?,
                output: None,
                prestart: None,
            };
            match to.call(&req).await? {
                Reply::Started { recording } => show(conn.output, &recording, |w, r| {
                    let (key, cgroup) = (r.container.key(), &r.cgroup);
                    let (key, cgroup) = (crate::table::escape(&key), crate::table::escape(cgroup));
                    writeln!(w, "recording {key} ({cgroup})")
                }),
                _ => Err(CtlError::Unexpected),
            }
        }
        DaemonCommand::Stop {
            conn,
            target,
            base,
            out,
        } => {
            let req = Request::Stop {
                target: target.target(),
                base: read_base(base.as_ref())?,
            };
            match to.call(&req).await? {
                Reply::Stopped { recording, path } => {
                    if recording.syscalls == 0 {
                        eprintln!(
                            "recorderctl: warning: no syscall was recorded for {}: nothing in it ran since `start` (a sleeping process makes none), so {} allows none of its syscalls and a container cannot start under it; record while the workload runs, or merge a base profile (--base)",
                            crate::table::escape(&recording.container.key()),
                            path.display()
                        );
                    }
                    let converted = out.format != crate::profile::format::Format::Docker
                        || out.default_action.is_some();
                    let path = if converted {
                        let text = render(&Profile::read(&path)?, &out)?;
                        let to = converted_path(&path, out.format);
                        write_file(&to, &text)?;
                        to
                    } else {
                        path
                    };
                    let v = serde_json::json!({"recording": recording, "path": path});
                    show(conn.output, &v, |w, _| writeln!(w, "{}", path.display()))
                }
                _ => Err(CtlError::Unexpected),
            }
        }
        DaemonCommand::Profile {
            target,
            base,
            out_file,
            out,
            ..
        } => {
            // It prints a profile, not a report: no -o (cli::output).
            let base = read_base(base.as_ref())?;
            let req = match target.target() {
                Ok(target) => Request::Profile { target, base },
                Err(image) => Request::ImageProfile { image, base },
            };
            let (profile, image) = match to.call(&req).await? {
                Reply::Profile { profile, .. } | Reply::StoredProfile { profile, .. } => {
                    (profile, None)
                }
                Reply::ImageProfile { profile, image } => (profile, Some(image.image)),
                _ => return Err(CtlError::Unexpected),
            };
            // An image's spo resource (kafel policy) is named after it.
            let mut out = out;
            if out.name.is_none() {
                out.name = image.map(|i| crate::profile::format::name_from(&i));
            }
            let text = render(&profile, &out)?;
            match out_file {
                Some(path) => write_file(&path, &text).map(|()| 0),
                None => out_text(&text),
            }
        }
        DaemonCommand::List { conn, table } => match to.call(&Request::List).await? {
            Reply::List { recordings } => show(conn.output, &recordings, |w, r| {
                print_recordings(w, r, table.wide)
            }),
            _ => Err(CtlError::Unexpected),
        },
        DaemonCommand::Profiles { conn, table } => match to.call(&Request::Profiles).await? {
            Reply::Profiles { profiles } => show(conn.output, &profiles, |w, p| {
                print_profiles(w, p, table.wide)
            }),
            _ => Err(CtlError::Unexpected),
        },
        DaemonCommand::Images { conn, table, .. } => match to.call(&Request::Images).await? {
            Reply::Images { images } => {
                show(conn.output, &images, |w, i| print_images(w, i, table.wide))
            }
            _ => Err(CtlError::Unexpected),
        },
        DaemonCommand::Status { conn } => match to.call(&Request::Status).await? {
            Reply::Status { status } => show(conn.output, &status, |w, s| print_status(w, s)),
            _ => Err(CtlError::Unexpected),
        },
        DaemonCommand::Drift {
            conn,
            container,
            all: _,
            widen,
            out,
            profile,
        } => {
            let req = Request::Drift { container, widen };
            drift(&conn, to, req, out.as_deref(), &profile).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_text_names_each_syscall_with_its_time_and_the_note() {
        let report = DriftReport {
            id: "a".repeat(64),
            name: Some("web".into()),
            image: Some("shop/web:2".into()),
            profile: "/etc/p/web.json".into(),
            default_action: "SCMP_ACT_ERRNO".into(),
            outside: vec!["chmod".into()],
            outside_since: [("chmod".to_owned(), 0)].into(),
            outside_by_abi: std::collections::BTreeMap::new(),
            running: false,
            enforcing: true,
            note: Some("an enforcing profile hides its denials".into()),
            denied: vec![crate::index::Denial {
                name: "mkdir".into(),
                abi: crate::syscalls::Abi::native(),
                count: 3,
                first_seen: 0,
                killed: false,
            }],
            widened: None,
        };
        let mut quiet = report.clone();
        quiet.outside.clear();
        quiet.outside_since.clear();
        quiet.note = None;
        let mut text = Vec::new();
        print_drift(&mut text, &[report, quiet]).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.starts_with("aaaaaaaaaaaa web (shop/web:2), exited\n"),
            "{text}"
        );
        assert!(text.contains("profile: /etc/p/web.json (SCMP_ACT_ERRNO)\n"));
        assert!(
            text.contains(&format!("  chmod{:19} {}\n", "", format_time(0))),
            "{text}"
        );
        assert!(text.contains("note: an enforcing profile hides its denials\n"));
        // The denials come first, with their counts.
        let denied = text.find("denied by the profile (count, first seen):\n  mkdir");
        let outside = text.find("outside the profile (first seen)");
        assert!(
            denied.is_some_and(|d| outside.is_some_and(|o| d < o)),
            "{text}"
        );
        assert!(
            text.contains("outside the profile: nothing so far\n"),
            "{text}"
        );
        let mut text = Vec::new();
        print_drift(&mut text, &[]).unwrap();
        assert!(String::from_utf8(text).unwrap().starts_with("no drift"));
    }

    #[test]
    fn images_text_marks_names_and_says_why_not_ready() {
        use crate::images::{ImageRow, key};
        let rule = crate::images::ImagesConfig::default();
        let mut pweb = ImageRow::new(&key(None, None, Some("pweb")).unwrap(), 100);
        pweb.add_run(None, &Profile::default(), 100);
        let mut app = ImageRow::new(
            &key(Some("app"), Some("sha256:0123456789abcdef"), None).unwrap(),
            0,
        );
        app.add_run(Some("app:latest"), &Profile::default(), 0);
        let list = [pweb.info(&rule, 100 + 3 * 3600), app.info(&rule, 10)];
        let mut text = Vec::new();
        print_images(&mut text, &list, false).unwrap();
        let text = String::from_utf8(text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].contains("FIRST SEEN") && lines[0].ends_with("READY"),
            "{text}"
        );
        assert!(lines[1].starts_with("(name) pweb -  "), "{text}");
        assert!(lines[1].contains(&format_time(100)), "{text}");
        assert!(
            lines[1].ends_with("no: 1/5 runs, 0/3 runs quiet, 3h/24h quiet"),
            "{text}"
        );
        assert!(lines[2].starts_with("app:latest  0123456789ab"), "{text}");
        assert!(lines[2].ends_with(", 10s/24h quiet"), "{text}");
    }

    #[test]
    fn images_text_cuts_long_references_and_marks_rootfs_rows() {
        use crate::images::{ImageRow, key};
        let rule = crate::images::ImagesConfig::default();
        let long = format!("registry.example/{}:1", "team/".repeat(25));
        let mut app = ImageRow::new(&key(Some(&long), Some("sha256:0123"), None).unwrap(), 0);
        app.add_run(Some(&long), &Profile::default(), 0);
        let rootfs = ImageRow::new(&key(None, None, Some("/srv/root\x1b")).unwrap(), 0);
        let list = [app.info(&rule, 10), rootfs.info(&rule, 10)];
        let mut text = Vec::new();
        print_images(&mut text, &list, false).unwrap();
        let text = String::from_utf8(text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let width = crate::table::MAX_CELL;
        assert!(lines.iter().all(|l| !l.contains(&long)), "{text}");
        assert_eq!(lines[1].split(' ').next().unwrap().chars().count(), width);
        assert!(lines[1].contains("… 0123 "), "{text}");
        assert!(lines[2].starts_with("(rootfs) /srv/root\\u{1b} "), "{text}");
        let mut wide = Vec::new();
        print_images(&mut wide, &list, true).unwrap();
        assert!(String::from_utf8(wide).unwrap().contains(&long));
    }

    #[test]
    fn only_hex_ids_are_cut() {
        let hex = "0123456789abcdef".repeat(4);
        assert_eq!(short_key(&hex), "0123456789ab");
        assert_eq!(short_key(&format!("k8s.io/{hex}")), "k8s.io/0123456789ab");
        for whole in ["default/ux-my-app", "cgroup-123456789012345", "default/abc"] {
            assert_eq!(short_key(whole), whole);
        }
        let info = |key: &str, name: &str| RecordingInfo {
            container: Container {
                name: Some(name.to_owned()),
                image: Some("docker.io/library/busybox".to_owned()),
                ..crate::container::ContainerRef {
                    id: key.rsplit('/').next().unwrap_or(key).to_owned(),
                    runtime: crate::container::Runtime::Containerd,
                    namespace: key.split_once('/').map(|(ns, _)| ns.to_owned()),
                    ..Default::default()
                }
                .into()
            },
            cgroup: "/default/ux-my-app".to_owned(),
            cgroup_id: 1,
            syscalls: 3,
            started: 0,
            auto: true,
        };
        let mut text = Vec::new();
        let list = [info("default/ux-my-app", "ux-my-app\u{1b}[2J")];
        print_recordings(&mut text, &list, false).unwrap();
        let text = String::from_utf8(text).unwrap();
        let row = text.lines().nth(1).unwrap();
        assert!(row.starts_with("default/ux-my-app containerd"), "{text}");
        // The name escaped, the image as `images` shows it.
        assert!(row.contains("ux-my-app\\u{1b}[2J busybox:latest"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
    }

    #[test]
    fn status_values_share_one_column() {
        let s = StatusInfo {
            version: "1.0".into(),
            protocol: 3,
            uptime_secs: 5,
            attached: true,
            record_all: false,
            recordings: 1,
            map_entries: 1,
            map_capacity: 1024,
            filter_count: 1,
            cached: 0,
            enrol_failures: 0,
            profiles_written: 2,
            pending_writes: 0,
            pending_image_writes: 0,
            unhealthy: None,
            last_error: Some("disk full".into()),
            last_error_at: Some(0),
            socket: "/run/r.sock".into(),
            profiles_dir: "/var/lib/r/profiles".into(),
            state_dir: "/var/lib/r".into(),
            pin_dir: "/sys/fs/bpf/r".into(),
            metrics_addr: "127.0.0.1:9977".into(),
            scope: "every container".into(),
            ready_rule: None,
            registry: None,
        };
        let mut text = Vec::new();
        print_status(&mut text, &s).unwrap();
        let text = String::from_utf8(text).unwrap();
        let columns: Vec<usize> = text
            .lines()
            .map(|l| {
                let after = l.find(':').unwrap() + 1;
                after + l[after..].len() - l[after..].trim_start().len()
            })
            .collect();
        assert_eq!(columns.len(), 17, "{text}");
        assert!(
            text.contains("profiles dir:     /var/lib/r/profiles\n"),
            "{text}"
        );
        assert!(
            text.contains("scope:            every container\n"),
            "{text}"
        );
        assert!(columns.iter().all(|&c| c == columns[0]), "{text}");
        assert!(text.contains("profiles written: 2\n"), "{text}");
        assert!(!text.contains("registry:"), "{text}");
        let pushing = StatusInfo {
            registry: Some("registry.lan:5000/profiles".into()),
            ..s.clone()
        };
        let mut text = Vec::new();
        print_status(&mut text, &pushing).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("registry:         registry.lan:5000/profiles\n"),
            "{text}"
        );
        assert!(
            text.contains(&format!("last error:       {} disk full\n", format_time(0))),
            "{text}"
        );
    }
}
