//! Printing an error with its causes on one line, the one way every edge of the product (the
//! binary's `error: …` line, API messages, logs) shows them.
//!
//! Error types in this workspace hold their cause as a `#[source]`; some also show it in their
//! own message (`#[error("cannot read checkpoint {path}: {source}")]`), most do not
//! (`#[error("cannot write the dataset version")]`). [`error_chain`] appends each cause whose
//! text the line does not already hold, so both kinds read the same: `a: b: c`, each part once.

/// `e` and each of its sources, joined by `: `; a source whose text the line already holds (as
/// with `#[error("...: {source}")]`) is not repeated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Shows(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Hides(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("top")]
    struct Top(#[source] Shows);

    fn io() -> std::io::Error {
        std::io::Error::other("disk on fire")
    }

    #[test]
    fn each_cause_appears_once() {
        assert_eq!(error_chain(&io()), "disk on fire");
        assert_eq!(error_chain(&Shows(io())), "outer: disk on fire");
        assert_eq!(error_chain(&Hides(io())), "outer: disk on fire");
        assert_eq!(error_chain(&Top(Shows(io()))), "top: outer: disk on fire");
    }
}
