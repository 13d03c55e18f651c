//! The control server: a Unix socket (0660, root:`socket_group`). Each
//! connection is checked with SO_PEERCRED, reads one request line (bounded,
//! with a timeout), hands it to the manager and gets one reply. This is the
//! one place where the manager's results become wire [`Reply`]s.

use std::{os::unix::fs::PermissionsExt as _, path::Path, time::Duration};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
};

use super::{
    DaemonError,
    manager::ManagerMsg,
    outcome::{ManagerError, Outcome},
    setup_err,
};
use crate::{
    cgroup::CgroupError,
    conn_slots::{Slot, Slots},
    container::ContainerError,
    control::{self, ErrorKind, Reply, Request},
    ebpf::KernelError,
    errfmt::chain,
    images::ImagesError,
    index::IndexError,
};

/// How long an evicted connection's error reply may take to write.
const EVICTED_WRITE_TIMEOUT: Duration = Duration::from_millis(100);

fn error(kind: ErrorKind, message: impl Into<String>) -> Reply {
    Reply::Error {
        kind,
        message: message.into(),
    }
}

/// The class of a manager error, as the protocol names it.
pub fn kind(e: &ManagerError) -> ErrorKind {
    match e {
        ManagerError::NotRecording(_) | ManagerError::NotRecordingHint { .. } => {
            ErrorKind::NotRecording
        }
        ManagerError::Ambiguous { .. }
        | ManagerError::Container(ContainerError::Ambiguous { .. })
        | ManagerError::Index(IndexError::Ambiguous { .. })
        | ManagerError::Images(ImagesError::Ambiguous { .. }) => ErrorKind::Ambiguous,
        ManagerError::Container(ContainerError::NoMatch(_))
        | ManagerError::Index(IndexError::NotFound(_))
        | ManagerError::Images(ImagesError::NotFound(_))
        | ManagerError::NoCgroup(_)
        | ManagerError::UnknownContainer(_)
        | ManagerError::StoredProfile(_) => ErrorKind::NotFound,
        ManagerError::Cgroup(CgroupError::InvalidPath(_))
        | ManagerError::Container(ContainerError::BadId(_))
        | ManagerError::Index(IndexError::BadSpec(_))
        | ManagerError::BadTarget(_)
        | ManagerError::NotWatched { .. }
        | ManagerError::BadOutput(_) => ErrorKind::BadRequest,
        ManagerError::Cgroup(_) => ErrorKind::NotFound,
        ManagerError::AlreadyRecording { .. } => ErrorKind::AlreadyRecording,
        ManagerError::MapFull { .. }
        | ManagerError::Daemon(DaemonError::Kernel(KernelError::MapFull { .. })) => {
            ErrorKind::MapFull
        }
        ManagerError::Container(_)
        | ManagerError::Write { .. }
        | ManagerError::Index(_)
        | ManagerError::Images(_)
        | ManagerError::Daemon(_) => ErrorKind::Internal,
    }
}

/// The reply to a request, from what the manager made of it.
pub fn reply(result: Result<Outcome, ManagerError>) -> Reply {
    match result {
        Ok(Outcome::Started(recording)) => Reply::Started { recording },
        Ok(Outcome::Stopped { recording, path }) => Reply::Stopped { recording, path },
        Ok(Outcome::Profile { recording, profile }) => Reply::Profile { recording, profile },
        Ok(Outcome::Stored { entry, profile }) => Reply::StoredProfile { entry, profile },
        Ok(Outcome::Profiles(profiles)) => Reply::Profiles { profiles },
        Ok(Outcome::Images(images)) => Reply::Images { images },
        Ok(Outcome::ImageProfile { image, profile }) => Reply::ImageProfile { image, profile },
        Ok(Outcome::List(recordings)) => Reply::List { recordings },
        Ok(Outcome::Status(status)) => Reply::Status { status },
        Ok(Outcome::Drift(reports)) => Reply::Drift { reports },
        Err(e) => error(kind(&e), chain(&e)),
    }
}

/// Passes `req` to the manager and waits for its answer.
async fn ask_manager(manager: &mpsc::Sender<ManagerMsg>, req: Request) -> Reply {
    let (tx, rx) = oneshot::channel();
    let gone = || error(ErrorKind::Internal, "recorderd is shutting down");
    if manager
        .send(ManagerMsg::Request(Box::new(req), tx))
        .await
        .is_err()
    {
        return gone();
    }
    rx.await.map_or_else(|_| gone(), reply)
}

async fn serve_conn(stream: UnixStream, group: u32, manager: mpsc::Sender<ManagerMsg>, slot: Slot) {
    let cred = stream.peer_cred().ok();
    let (uid, pid) = cred.map_or((u32::MAX, None), |c| (c.uid(), c.pid()));
    let allowed = uid == 0
        || cred.is_some_and(|c| c.gid() == group)
        || pid.is_some_and(|p| control::groups_of(p).contains(&group));
    let (read, mut write) = stream.into_split();
    if !allowed {
        log::warn!(
            "refused control connection from uid {uid} (pid {pid:?}): not root and not in the socket group"
        );
        let reply = error(
            ErrorKind::PermissionDenied,
            "permission denied: recorderd serves root and members of its socket group only",
        );
        // The peer may be gone already; nothing more to tell it.
        _ = write.write_all(&control::reply_line(&reply)).await;
        return;
    }
    let mut reader = BufReader::new(read).take(control::MAX_REQUEST as u64 + 1);
    let mut line = String::new();
    let read = tokio::select! {
        read = tokio::time::timeout(control::READ_TIMEOUT, reader.read_line(&mut line)) => read,
        () = slot.evicted() => {
            let reply = error(
                ErrorKind::BadRequest,
                format!(
                    "closed without a request: more than {} connections were open and this one had waited longest",
                    control::MAX_CONNECTIONS
                ),
            );
            // A short try: the peer sent nothing and may read nothing.
            _ = tokio::time::timeout(
                EVICTED_WRITE_TIMEOUT,
                write.write_all(&control::reply_line(&reply)),
            )
            .await;
            return;
        }
    };
    slot.busy();
    let reply = match read {
        Err(_) => error(
            ErrorKind::BadRequest,
            "timed out waiting for a request line",
        ),
        Ok(Err(e)) => error(ErrorKind::BadRequest, format!("unreadable request: {e}")),
        Ok(Ok(_)) if line.len() > control::MAX_REQUEST => error(
            ErrorKind::BadRequest,
            format!("request larger than {} bytes", control::MAX_REQUEST),
        ),
        Ok(Ok(_)) if !line.ends_with('\n') => {
            error(ErrorKind::BadRequest, "incomplete request line")
        }
        Ok(Ok(_)) => match control::parse_request(&line) {
            // recorderd writes as root: a socket-group member choosing the
            // path could overwrite any file on the host.
            Ok(Request::Start {
                output: Some(out), ..
            }) if uid != 0 => {
                log::warn!(
                    "refused output path {} from uid {uid} (pid {pid:?}): only root may choose where a profile is written",
                    out.display()
                );
                error(
                    ErrorKind::PermissionDenied,
                    "permission denied: only root may choose the output path of a profile",
                )
            }
            Ok(req) => ask_manager(&manager, req).await,
            Err(refusal) => refusal.into(),
        },
    };
    // A client that never reads its reply does not hold the slot forever;
    // one that left gets nothing.
    _ = tokio::time::timeout(
        control::READ_TIMEOUT,
        write.write_all(&control::reply_line(&reply)),
    )
    .await;
}

/// Binds the control socket, replacing a stale socket file; refuses when
/// another daemon answers on it.
pub fn bind(path: &Path, group: u32) -> Result<UnixListener, DaemonError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(setup_err(dir))?;
    }
    if path.exists() {
        // A live daemon answers; a stale socket file is replaced.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(DaemonError::Setup {
                path: path.to_owned(),
                source: std::io::Error::other("another recorderd is serving this socket"),
            });
        }
        std::fs::remove_file(path).map_err(setup_err(path))?;
    }
    let listener = UnixListener::bind(path).map_err(setup_err(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(setup_err(path))?;
    std::os::unix::fs::chown(path, Some(0), Some(group)).map_err(setup_err(path))?;
    Ok(listener)
}

/// Accepts connections until the manager is gone. At most
/// `control::MAX_CONNECTIONS` are open at once: when all are taken, the
/// oldest one still waiting for its request line is closed to make room
/// (with an error reply), so idle clients cannot lock out a `status`;
/// when all are being served, new ones wait. A client that never finishes
/// its line holds its slot for up to READ_TIMEOUT.
pub async fn serve(listener: UnixListener, group: u32, manager: mpsc::Sender<ManagerMsg>) {
    let slots = Slots::new(control::MAX_CONNECTIONS);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let slot = slots.take().await;
                let manager = manager.clone();
                tokio::spawn(serve_conn(stream, group, manager, slot));
            }
            Err(e) => {
                log::error!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
