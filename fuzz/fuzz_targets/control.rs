//! `control::parse_request` on a request line, then what the daemon and the
//! client do next: a refusal becomes an error reply line, which the client
//! must read back as the same refusal; a request serialised again (as
//! recorderctl sends it) must parse to the same request. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recorder_api::{
    container::{ContainerRef, Runtime},
    control::{
        Envelope, PROTOCOL_VERSION, RecordingInfo, Reply, Request, Target, parse_request,
        reply_line,
    },
};
use recorder_fuzz::{same_json, text};

/// A reply line as the client reads it: one line, one envelope.
fn read_reply(line: &[u8]) -> Reply {
    assert_eq!(line.last(), Some(&b'\n'), "a reply line ends in a newline");
    assert!(
        !line[..line.len() - 1].contains(&b'\n'),
        "a reply line has one newline"
    );
    let envelope: Envelope<Reply> = serde_json::from_slice(line).unwrap_or_else(|e| {
        panic!(
            "the client cannot read the reply ({e}): {}",
            String::from_utf8_lossy(line)
        )
    });
    assert_eq!(envelope.version, PROTOCOL_VERSION);
    envelope.body
}

/// The line recorderctl sends for `request`.
fn request_value(request: &Request) -> serde_json::Value {
    serde_json::to_value(Envelope {
        version: PROTOCOL_VERSION,
        body: request,
    })
    .expect("a request serialises")
}

fn recording() -> RecordingInfo {
    RecordingInfo {
        container: ContainerRef {
            id: "fuzz".to_owned(),
            runtime: Runtime::Podman,
            ..ContainerRef::default()
        }
        .into(),
        cgroup: "/fuzz".to_owned(),
        cgroup_id: 1,
        syscalls: 0,
        started: 0,
        auto: false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(line) = text(data) else { return };
    match parse_request(line) {
        Err(refusal) => match read_reply(&reply_line(&refusal.clone().into())) {
            Reply::Error { kind, message } => {
                assert_eq!((kind, message), (refusal.kind, refusal.message));
            }
            other => panic!("a refusal came back as {other:?}"),
        },
        Ok(request) => {
            // A blank container id would be a prefix of every id.
            if let Some(Target::Container(c)) = request.target() {
                assert!(!c.trim().is_empty(), "a blank container id was accepted");
            }
            let sent = request_value(&request);
            let again = parse_request(&sent.to_string())
                .unwrap_or_else(|e| panic!("a serialised request is refused: {e:?}\n{sent}"));
            assert!(
                same_json(&sent, &request_value(&again)),
                "the request changed on a round trip:\n{sent}\n{}",
                request_value(&again)
            );
            // A base profile goes back to the client inside a reply.
            if let Request::Start {
                base: Some(base), ..
            }
            | Request::Stop {
                base: Some(base), ..
            }
            | Request::Profile {
                base: Some(base), ..
            } = request
            {
                let reply = Reply::Profile {
                    recording: recording(),
                    profile: base,
                };
                assert!(matches!(
                    read_reply(&reply_line(&reply)),
                    Reply::Profile { .. }
                ));
            }
        }
    }
});
