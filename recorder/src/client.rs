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

impl Conn {
    /// Sends one request to recorderd at `socket`, within `--timeout`.
    async fn call(&self, socket: &Path, request: &Request) -> Result<Reply, ClientError> {
        control::call_within(
            socket,
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

fn print_recordings(w: &mut impl Write, list: &[RecordingInfo]) -> io::Result<()> {
    writeln!(
        w,
        "{:<14} {:<10} {:<20} {:<24} {:<24} {:>8} {:<20} CGROUP",
        "CONTAINER", "RUNTIME", "NAME", "IMAGE", "POD", "SYSCALLS", "STARTED"
    )?;
    for r in list {
        let short: String = r.key.chars().take(12).collect();
        writeln!(
            w,
            "{:<14} {:<10} {:<20} {:<24} {:<24} {:>8} {:<20} {}",
            short,
            r.runtime.to_string(),
            r.name.as_deref().unwrap_or("-"),
            r.image.as_deref().unwrap_or("-"),
            pod_column(r.namespace.as_deref(), r.pod.as_deref()),
            r.syscalls,
            format_time(r.started),
            r.cgroup
        )?;
    }
    Ok(())
}

fn print_profiles(w: &mut impl Write, list: &[crate::index::Entry]) -> io::Result<()> {
    writeln!(
        w,
        "{:<14} {:<10} {:<20} {:<24} {:<24} {:<20} PATH",
        "CONTAINER", "RUNTIME", "NAME", "IMAGE", "POD", "WRITTEN"
    )?;
    for e in list {
        let short: String = e.key.chars().take(12).collect();
        writeln!(
            w,
            "{:<14} {:<10} {:<20} {:<24} {:<24} {:<20} {}",
            short,
            e.runtime.to_string(),
            e.name.as_deref().unwrap_or("-"),
            e.image.as_deref().unwrap_or("-"),
            pod_column(e.namespace.as_deref(), e.pod.as_deref()),
            format_time(e.written),
            e.path.display()
        )?;
    }
    Ok(())
}

/// The IMAGE column: a row keyed by a container's name says so.
fn image_column(i: &crate::images::ImageInfo) -> String {
    match i.keyed_by {
        crate::images::KeyedBy::Name => format!("(name) {}", i.image),
        _ => i.image.clone(),
    }
}

fn print_images(w: &mut impl Write, list: &[crate::images::ImageInfo]) -> io::Result<()> {
    let width = list
        .iter()
        .map(|i| image_column(i).chars().count())
        .chain([5])
        .max()
        .unwrap_or(5);
    writeln!(
        w,
        "{:<width$} {:<12} {:>5} {:>8} {:<20} {:<20} {:<20} {:>9} READY",
        "IMAGE", "ID", "RUNS", "SYSCALLS", "FIRST SEEN", "LAST SEEN", "LAST NEW", "QUIET"
    )?;
    for i in list {
        let id =
            i.id.as_deref()
                .map_or_else(|| "-".to_owned(), crate::images::short_id);
        let ready = if i.ready {
            "yes".to_owned()
        } else if i.not_ready.is_empty() {
            "no".to_owned()
        } else {
            format!("no: {}", i.not_ready.join(", "))
        };
        writeln!(
            w,
            "{:<width$} {:<12} {:>5} {:>8} {:<20} {:<20} {:<20} {:>9} {}",
            image_column(i),
            id,
            i.runs,
            i.syscalls,
            format_time(i.first_seen),
            format_time(i.last_seen),
            format_time(i.last_new),
            format!("{} runs", i.runs_since_last_new),
            ready
        )?;
    }
    Ok(())
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
    ];
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
        writeln!(w, "{:<width$}{v}", format!("{k}:"))?;
    }
    Ok(())
}

fn print_drift(w: &mut impl Write, reports: &[DriftReport]) -> io::Result<()> {
    for (i, d) in reports.iter().enumerate() {
        if i > 0 {
            writeln!(w)?;
        }
        let short: String = d.id.chars().take(12).collect();
        writeln!(
            w,
            "{short} {} ({}){}",
            d.name.as_deref().unwrap_or("-"),
            d.image.as_deref().unwrap_or("-"),
            if d.running { "" } else { ", exited" }
        )?;
        writeln!(w, "profile: {} ({})", d.profile, d.default_action)?;
        if d.outside.is_empty() {
            writeln!(w, "outside the profile: nothing so far")?;
        } else {
            writeln!(w, "outside the profile (first seen):")?;
            for (name, at) in &d.outside_since {
                writeln!(w, "  {name:<24} {}", format_time(*at))?;
            }
        }
        if let Some(note) = &d.note {
            writeln!(w, "note: {note}")?;
        }
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
    socket: &Path,
    request: Request,
    out_file: Option<&Path>,
    format: &OutputArgs,
) -> Result<u8, CtlError> {
    let (one, widen) = match &request {
        Request::Drift { container, widen } => (container.is_some(), *widen),
        _ => (false, false),
    };
    let Reply::Drift { mut reports } = conn.call(socket, &request).await? else {
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
        eprintln!("recorderctl: note: {note}");
    }
    let text = render(d.widened.as_ref().ok_or(CtlError::Unexpected)?, format)?;
    match out_file {
        Some(path) => {
            write_file(path, &text)?;
            eprintln!(
                "recorderctl: {} with {} more syscall(s) written to {}",
                d.profile,
                d.outside.len(),
                path.display()
            );
            Ok(0)
        }
        None => out_text(&text),
    }
}

/// Runs a daemon command against recorderd at `socket`; returns the exit
/// code.
pub async fn run(cmd: DaemonCommand, socket: &Path) -> Result<u8, CtlError> {
    match cmd {
        DaemonCommand::Start { conn, target, base } => {
            let req = Request::Start {
                target: target.target(),
                base: read_base(base.as_ref())?,
                output: None,
                prestart: None,
            };
            match conn.call(socket, &req).await? {
                Reply::Started { recording } => show(conn.output, &recording, |w, r| {
                    writeln!(w, "recording {} ({})", r.key, r.cgroup)
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
            match conn.call(socket, &req).await? {
                Reply::Stopped { recording, path } => {
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
            timeout,
            target,
            base,
            out_file,
            out,
            ..
        } => {
            // It prints a profile, not a report: no -o (cli::output).
            let conn = Conn {
                timeout,
                output: OutputFormat::Text,
            };
            let base = read_base(base.as_ref())?;
            let req = match target.target() {
                Ok(target) => Request::Profile { target, base },
                Err(image) => Request::ImageProfile { image, base },
            };
            let (profile, image) = match conn.call(socket, &req).await? {
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
        DaemonCommand::List { conn } => match conn.call(socket, &Request::List).await? {
            Reply::List { recordings } => {
                show(conn.output, &recordings, |w, r| print_recordings(w, r))
            }
            _ => Err(CtlError::Unexpected),
        },
        DaemonCommand::Profiles { conn } => match conn.call(socket, &Request::Profiles).await? {
            Reply::Profiles { profiles } => {
                show(conn.output, &profiles, |w, p| print_profiles(w, p))
            }
            _ => Err(CtlError::Unexpected),
        },
        DaemonCommand::Images { conn } => match conn.call(socket, &Request::Images).await? {
            Reply::Images { images } => show(conn.output, &images, |w, i| print_images(w, i)),
            _ => Err(CtlError::Unexpected),
        },
        DaemonCommand::Status { conn } => match conn.call(socket, &Request::Status).await? {
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
            drift(&conn, socket, req, out.as_deref(), &profile).await
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
        assert!(
            text.contains("outside the profile: nothing so far\n"),
            "{text}"
        );
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
        print_images(&mut text, &list).unwrap();
        let text = String::from_utf8(text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].contains("FIRST SEEN") && lines[0].ends_with("READY"),
            "{text}"
        );
        assert!(lines[1].starts_with("(name) pweb -  "), "{text}");
        assert!(lines[1].contains(&format_time(100)), "{text}");
        assert!(
            lines[1].ends_with("no: 1/5 runs, new in the last run, new 3h ago"),
            "{text}"
        );
        assert!(lines[2].starts_with("app:latest  0123456789ab"), "{text}");
        assert!(lines[2].ends_with(", new 10s ago"), "{text}");
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
        assert_eq!(columns.len(), 11, "{text}");
        assert!(columns.iter().all(|&c| c == columns[0]), "{text}");
        assert!(text.contains("profiles written: 2\n"), "{text}");
        assert!(
            text.contains(&format!("last error:       {} disk full\n", format_time(0))),
            "{text}"
        );
    }
}
