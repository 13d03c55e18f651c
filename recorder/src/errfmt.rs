//! Readable errors: an error and its sources on one line, as recorderd's
//! replies and log lines and the OCI hook's report show them.

/// An error and its sources, "a: b: c".
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot write {0}")]
    struct Outer(&'static str, #[source] std::io::Error);

    #[test]
    fn sources_follow_the_error() {
        let e = Outer("x.json", std::io::Error::other("disk full"));
        assert_eq!(chain(&e), "cannot write x.json: disk full");
    }
}
