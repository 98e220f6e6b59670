//! TOML parse errors in one line: the toml crate's own text spans several lines (a source
//! excerpt and a caret), which an editor's one-line message cannot show.

/// `line N: what is wrong` for an error from parsing `text`.
pub fn one_line(text: &str, e: &toml::de::Error) -> String {
    let what = e.message().trim().replace('\n', " ").replace('`', "'");
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].lines().count().max(1);
            format!("line {line}: {what}")
        }
        None => what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parse_error_becomes_one_line_naming_its_line() {
        let text = "a = 1\nb = [1, 2\nc = 3\n";
        let e = toml::from_str::<toml::Table>(text).unwrap_err();
        let line = one_line(text, &e);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.starts_with("line "), "{line}");
        assert!(
            e.to_string().contains('\n'),
            "the crate's own text is several lines"
        );
    }
}
