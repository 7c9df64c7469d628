//! Full-text search shared by the services that store messages: the caller's query
//! made safe for each storage engine, and snippets with the matching words marked.
//!
//! A query is user text. It is never handed to an engine's query syntax as it is:
//! it is cut into terms, the runs of letters and digits (so `AND`, `*`, `"`, `:`, `^`,
//! `NEAR(` are plain words or punctuation), and a message matches when it holds every
//! term. For SQLite FTS5 each term becomes a quoted string; for PostgreSQL the terms go
//! through `plainto_tsquery`, which has no syntax. Both indexes cut text into words the
//! same way (FTS5's `unicode61`; PostgreSQL after ASCII punctuation is made space),
//! fold case and keep accents, so both backends agree on what matches.

use wire::api::{DEFAULT_SEARCH_LIMIT, MAX_QUERY_CHARS, MAX_SEARCH_LIMIT, Segment};
use wire::names::InvalidInput;

/// The most terms (words) a query may have: each is one more list for the engine to
/// walk.
pub const MAX_QUERY_TERMS: usize = 12;
/// How much of a message a snippet shows around its first match, in characters.
const SNIPPET_CHARS: usize = 200;
/// How much of that comes before the first match.
const SNIPPET_LEAD_CHARS: usize = 60;

/// A parsed search query: the words a message must all contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// The runs of letters and digits of the query, lower-cased, each once.
    terms: Vec<String>,
}

impl SearchQuery {
    /// Reads the query `q`: at most [`MAX_QUERY_CHARS`] characters, with at least one
    /// word (letters or digits) and at most [`MAX_QUERY_TERMS`].
    pub fn parse(q: &str) -> Result<Self, InvalidInput> {
        let chars = q.chars().count();
        if chars > MAX_QUERY_CHARS {
            return Err(InvalidInput(format!("q is {chars} characters long; the limit is {MAX_QUERY_CHARS}")));
        }
        let mut terms: Vec<String> = Vec::new();
        for (start, end) in word_spans(q) {
            let term = q[start..end].to_lowercase();
            if !terms.contains(&term) {
                terms.push(term);
            }
        }
        if terms.is_empty() {
            return Err(InvalidInput("q must contain a word (letters or digits) to search for".to_owned()));
        }
        if terms.len() > MAX_QUERY_TERMS {
            return Err(InvalidInput(format!("q has {} words; the limit is {MAX_QUERY_TERMS}", terms.len())));
        }
        Ok(Self { terms })
    }

    /// The query as an SQLite FTS5 expression over the column `column`: every term a
    /// quoted string, all required.
    pub fn fts5(&self, column: &str) -> String {
        let terms: Vec<String> = self.terms.iter().map(|term| fts5_string(term)).collect();
        format!("{column} : ({})", terms.join(" AND "))
    }

    /// The query as text for PostgreSQL's `plainto_tsquery`: the terms, space-separated.
    pub fn plain_text(&self) -> String {
        self.terms.join(" ")
    }

    /// A snippet of `text` around its first match: segments of plain text, the words
    /// of the query marked as hits; "…" where the message was cut.
    pub fn snippet(&self, text: &str) -> Vec<Segment> {
        let hits: Vec<(usize, usize)> = word_spans(text)
            .filter(|&(start, end)| self.terms.iter().any(|term| text[start..end].to_lowercase() == *term))
            .collect();
        let first = hits.first().map_or(0, |&(start, _)| start);
        let (start, end) = window(text, first);
        let mut segments = Vec::new();
        let mut at = start;
        for &(hit_start, hit_end) in hits.iter().filter(|&&(s, e)| s >= start && e <= end) {
            push_segment(&mut segments, &text[at..hit_start], false);
            push_segment(&mut segments, &text[hit_start..hit_end], true);
            at = hit_end;
        }
        push_segment(&mut segments, &text[at..end], false);
        if start > 0 {
            prepend_ellipsis(&mut segments);
        }
        if end < text.len() {
            push_segment(&mut segments, "…", false);
        }
        segments
    }
}

/// The number of results to return: `requested`, or the default; 1 to
/// [`MAX_SEARCH_LIMIT`].
pub fn limit(requested: Option<u64>) -> Result<u64, InvalidInput> {
    match requested.unwrap_or(DEFAULT_SEARCH_LIMIT) {
        limit @ 1..=MAX_SEARCH_LIMIT => Ok(limit),
        limit => Err(InvalidInput(format!("limit {limit} is out of range: 1 to {MAX_SEARCH_LIMIT}"))),
    }
}

/// `value` as one FTS5 token: its bytes in hexadecimal, as SQLite's `hex()` writes
/// them. Indexing a name this way (a channel, a mailbox's owner) lets a search ask for
/// it exactly, however the name is punctuated.
pub fn fts5_key(value: &str) -> String {
    hex::encode_upper(value.as_bytes())
}

/// `text` as an FTS5 string: in double quotes, which double inside it. Whatever it
/// holds is then text, never syntax.
pub fn fts5_string(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// The byte spans of the words of `text`: runs of letters and digits.
fn word_spans(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut chars = text.char_indices().peekable();
    std::iter::from_fn(move || {
        let (start, _) = chars.find(|(_, c)| c.is_alphanumeric())?;
        let mut end = text.len();
        while let Some(&(at, c)) = chars.peek() {
            if !c.is_alphanumeric() {
                end = at;
                break;
            }
            chars.next();
        }
        Some((start, end))
    })
}

/// The byte range of `text` a snippet shows: up to [`SNIPPET_CHARS`] characters,
/// starting a little before byte `first` (the first match), cut at white space where
/// it can be.
fn window(text: &str, first: usize) -> (usize, usize) {
    let before: Vec<usize> = text[..first].char_indices().map(|(at, _)| at).collect();
    let mut start = before.len().checked_sub(SNIPPET_LEAD_CHARS).map_or(0, |from| before[from]);
    if start > 0 {
        // Begin at a word: after the first white space in the lead, if there is one.
        if let Some(space) = text[start..first].find(char::is_whitespace) {
            start += space + text[start + space..].chars().next().map_or(0, char::len_utf8);
        }
    }
    let mut end = text[start..].char_indices().nth(SNIPPET_CHARS).map_or(text.len(), |(at, _)| start + at);
    if end < text.len() {
        // End after a whole word, when that leaves the first match in.
        if let Some(space) = text[start..end].rfind(char::is_whitespace).map(|at| start + at)
            && space > first
        {
            end = space;
        }
    }
    (start, end)
}

fn push_segment(segments: &mut Vec<Segment>, text: &str, hit: bool) {
    if text.is_empty() {
        return;
    }
    match segments.last_mut() {
        Some(last) if !last.hit && !hit => last.text.push_str(text),
        _ => segments.push(Segment { text: text.to_owned(), hit }),
    }
}

fn prepend_ellipsis(segments: &mut Vec<Segment>) {
    match segments.first_mut() {
        Some(first) if !first.hit => first.text.insert(0, '…'),
        _ => segments.insert(0, Segment { text: "…".to_owned(), hit: false }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(segments: &[Segment]) -> String {
        segments.iter().map(|s| if s.hit { format!("[{}]", s.text) } else { s.text.clone() }).collect()
    }

    #[test]
    fn terms_are_quoted_so_no_query_is_fts5_syntax() {
        let query = SearchQuery::parse(r#"deploy AND "x NEAR( col:um* ^a -b foo-bar"#).unwrap();
        assert_eq!(
            query.fts5("text"),
            r#"text : ("deploy" AND "and" AND "x" AND "near" AND "col" AND "um" AND "a" AND "b" AND "foo" AND "bar")"#
        );
        assert_eq!(query.plain_text(), "deploy and x near col um a b foo bar");
        assert_eq!(SearchQuery::parse("Chào bob@example.com").unwrap().plain_text(), "chào bob example com");
    }

    #[test]
    fn a_query_needs_a_word_and_has_bounds() {
        assert!(SearchQuery::parse("").is_err());
        assert!(SearchQuery::parse("  \" * ( ) - ").is_err(), "no letter or digit");
        assert!(SearchQuery::parse(&"a".repeat(MAX_QUERY_CHARS + 1)).is_err());
        assert!(SearchQuery::parse(&"a".repeat(MAX_QUERY_CHARS)).is_ok());
        let many: Vec<String> = (0..=MAX_QUERY_TERMS).map(|n| format!("w{n}")).collect();
        assert!(SearchQuery::parse(&many.join(" ")).is_err());
        assert!(SearchQuery::parse(&many.join("-")).is_err(), "terms, not white-space words, count");
        assert_eq!(SearchQuery::parse("hi hi HI").unwrap().terms, ["hi"]);
    }

    #[test]
    fn limits_default_and_stay_in_range() {
        assert_eq!(limit(None).unwrap(), DEFAULT_SEARCH_LIMIT);
        assert_eq!(limit(Some(100)).unwrap(), 100);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(101)).is_err());
    }

    #[test]
    fn snippets_mark_every_match_and_keep_markup_as_text() {
        let query = SearchQuery::parse("Deploy <b>").unwrap();
        let snippet = query.snippet("we DEPLOY today; <b>deploy</b>-ing again");
        assert_eq!(marked(&snippet), "we [DEPLOY] today; <[b]>[deploy]</[b]>-ing again");
        assert_eq!(snippet[0], Segment { text: "we ".into(), hit: false });
        let vietnamese = SearchQuery::parse("chào").unwrap();
        assert_eq!(marked(&vietnamese.snippet("Xin Chào các bạn")), "Xin [Chào] các bạn");
    }

    #[test]
    fn long_messages_are_cut_around_the_first_match() {
        let text = format!("{} needle {}", "word ".repeat(200), "tail ".repeat(200));
        let snippet = SearchQuery::parse("needle").unwrap().snippet(&text);
        let shown = marked(&snippet);
        assert!(shown.starts_with("…word"), "{shown}");
        assert!(shown.ends_with('…'), "{shown}");
        assert!(shown.contains("[needle]"));
        assert!(shown.chars().count() <= SNIPPET_CHARS + 4, "{}", shown.chars().count());
        let unmatched = SearchQuery::parse("absent").unwrap().snippet(&text);
        assert!(!unmatched.iter().any(|segment| segment.hit));
        assert!(marked(&unmatched).starts_with("word word"));
    }

    #[test]
    fn keys_are_one_token_of_hex() {
        assert_eq!(fts5_key("rust-vn"), "727573742D766E");
        assert_eq!(fts5_string(r#"a"b"#), r#""a""b""#);
    }
}
