//! Per-vhost path rules: the `allow PATH ...;` and `deny PATH ...;` statements of a
//! `host` block, which keep routes off a public door (a service's `/metrics`, the
//! signed routes services call on each other).
//!
//! A rule's path is a prefix that matches whole segments: `/metrics` matches
//! `/metrics`, `/metrics/x` and `/metrics?x`, not `/metricsfoo`; `/` matches every
//! path. The longest matching rule decides, `deny` winning a tie. A path that no rule
//! matches is allowed, unless the block has an `allow` rule: then the allow rules are
//! a list, and what they do not name is denied.
//!
//! Paths are compared the way a backend might read them, so that spelling a path
//! differently does not slip past a rule: percent-escapes are decoded, `.` and `..`
//! segments resolved, repeated slashes merged, and letters compared without regard to
//! case. A request is denied when either its path as sent or that reading of it is
//! denied.

use serde::{Deserialize, Serialize};

/// The path rules of one vhost, in the order written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PathRules(Vec<PathRule>);

/// One path of an `allow` or `deny` statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathRule {
    /// Lowercase, starting with `/`.
    pub path: String,
    pub allow: bool,
}

impl PathRules {
    pub fn new(rules: Vec<PathRule>) -> Self {
        Self(rules)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn rules(&self) -> &[PathRule] {
        &self.0
    }

    /// Whether a request target (origin form, query included) may pass.
    pub fn allows(&self, target: &str) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let path = target.split(['?', '#']).next().unwrap_or_default();
        let as_sent = path.to_ascii_lowercase();
        if !self.decide(&as_sent) {
            return false;
        }
        let normalized = normalize(path);
        normalized == as_sent || self.decide(&normalized)
    }

    fn decide(&self, path: &str) -> bool {
        let mut best: Option<&PathRule> = None;
        for rule in &self.0 {
            if !matches_prefix(path, &rule.path) {
                continue;
            }
            best = match best {
                Some(current) if current.path.len() > rule.path.len() => Some(current),
                Some(current) if current.path.len() == rule.path.len() && !current.allow => Some(current),
                _ => Some(rule),
            };
        }
        match best {
            Some(rule) => rule.allow,
            None => !self.0.iter().any(|rule| rule.allow),
        }
    }
}

/// Checks and lowercases the path of a rule.
pub fn validate_rule_path(raw: &str) -> Result<String, String> {
    if !raw.starts_with('/') {
        return Err(format!("`{raw}` is not a path: expected one starting with `/`, such as `/metrics`"));
    }
    if raw.contains(['?', '#', '%']) || raw.chars().any(|character| character.is_whitespace() || character.is_control())
    {
        return Err(format!("`{raw}`: a rule's path is a plain path, without a query, fragment or escapes"));
    }
    let lowered = raw.to_ascii_lowercase();
    if normalize(&lowered) != lowered {
        return Err(format!("`{raw}`: write the path without `.`/`..` segments or repeated slashes"));
    }
    Ok(lowered)
}

/// Whether `path` starts with `prefix` at a segment boundary.
fn matches_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The path as a lenient backend would read it: escapes decoded, dot segments
/// resolved, slashes merged, lowercase.
fn normalize(path: &str) -> String {
    let decoded = percent_decode(path);
    // An escaped `?` or `#` ends the path for a backend that decodes before routing.
    let decoded = decoded.split(['?', '#']).next().unwrap_or_default();
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    let mut normalized = String::with_capacity(decoded.len());
    for segment in &segments {
        normalized.push('/');
        normalized.push_str(segment);
    }
    if normalized.is_empty() || (decoded.ends_with('/') && !segments.is_empty()) {
        normalized.push('/');
    }
    normalized.make_ascii_lowercase();
    normalized
}

/// Decodes `%XX` escapes (twice over, so `%252e` is `.` too); invalid ones stay.
fn percent_decode(path: &str) -> String {
    let mut text = path.to_owned();
    for _ in 0..2 {
        if !text.contains('%') {
            break;
        }
        text = String::from_utf8_lossy(&decode_once(text.as_bytes())).into_owned();
    }
    text
}

fn decode_once(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let Some(high) = bytes.get(index + 1).and_then(|byte| (*byte as char).to_digit(16))
            && let Some(low) = bytes.get(index + 2).and_then(|byte| (*byte as char).to_digit(16))
        {
            out.push((high * 16 + low) as u8);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[(&str, bool)]) -> PathRules {
        PathRules::new(list.iter().map(|(path, allow)| PathRule { path: (*path).to_owned(), allow: *allow }).collect())
    }

    #[test]
    fn deny_rules_match_whole_segments_and_the_rest_passes() {
        let rules = rules(&[("/metrics", false), ("/receive-message", false)]);
        for denied in ["/metrics", "/metrics/", "/metrics?x=1", "/metrics/x", "/receive-message"] {
            assert!(!rules.allows(denied), "{denied}");
        }
        for allowed in ["/", "/metricsfoo", "/get-list", "/send-peer?x", "/me"] {
            assert!(rules.allows(allowed), "{allowed}");
        }
    }

    #[test]
    fn other_spellings_of_a_denied_path_are_denied() {
        let rules = rules(&[("/metrics", false)]);
        for spelling in [
            "/METRICS",
            "/Metrics/",
            "//metrics",
            "/./metrics",
            "/x/../metrics",
            "/%6detrics",
            "/%6Detrics",
            "/%2e/metrics",
            "/%252e%252e/metrics",
            "/x%2f..%2fmetrics",
            "/metrics%3fx",
        ] {
            assert!(!rules.allows(spelling), "{spelling}");
        }
    }

    #[test]
    fn the_longest_rule_wins_and_allow_lists_deny_the_rest() {
        let rules = rules(&[("/", true), ("/admin", false), ("/admin/public", true)]);
        assert!(rules.allows("/index.html"));
        assert!(!rules.allows("/admin"));
        assert!(!rules.allows("/admin/users"));
        assert!(rules.allows("/admin/public/logo.png"));

        let list = self::rules(&[("/api", true), ("/js/", true)]);
        assert!(list.allows("/api/x"));
        assert!(list.allows("/js/app.js"));
        assert!(!list.allows("/"));
        assert!(!list.allows("/metrics"));
        assert!(!list.allows("/js"), "`/js/` names what is under /js/ only");
        assert!(!list.allows("/api/../metrics"));
        assert!(!list.allows("*"));
    }

    #[test]
    fn deny_wins_a_tie() {
        let rules = rules(&[("/x", true), ("/x", false)]);
        assert!(!rules.allows("/x"));
    }

    #[test]
    fn no_rules_allow_everything() {
        assert!(PathRules::default().allows("/anything/../at/all"));
        assert!(PathRules::default().allows("*"));
    }

    #[test]
    fn rule_paths_are_checked() {
        assert_eq!(validate_rule_path("/Metrics").unwrap(), "/metrics");
        assert_eq!(validate_rule_path("/").unwrap(), "/");
        assert_eq!(validate_rule_path("/js/").unwrap(), "/js/");
        for bad in ["metrics", "/a?b", "/a#b", "/%6d", "/a//b", "/a/../b", "/a b"] {
            assert!(validate_rule_path(bad).is_err(), "{bad}");
        }
    }
}
