//! The two text formats a scraper may ask for. `prometheus-client` writes
//! OpenMetrics, which Prometheus asks for first and which carries exemplars; clients
//! that do not ask for it (curl, `promtool check metrics`, older scrapers) get the
//! classic text format (0.0.4), converted from it here.
//!
//! The two differ in a few lines: a counter family `x` is `x` in OpenMetrics'
//! `# HELP`/`# TYPE` and `x_total` in the classic format (whose parser would
//! otherwise see samples of an undeclared `x_total`); `info` families become gauges
//! named `x_info`, `unknown` ones `untyped`; `# UNIT` and `# EOF` are dropped, and
//! so are exemplars (`... # {trace_id="..."} 0.003`), which the classic format has
//! no place for.

/// The media type of OpenMetrics text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The media type of the classic text format.
pub const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics (Prometheus's does, first).
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|accept| accept.contains("application/openmetrics-text"))
}

/// OpenMetrics text as the classic text format.
pub fn to_classic(openmetrics: &str) -> String {
    // Family names by type, from the `# TYPE` lines (a `# HELP` comes first).
    let mut renamed: Vec<(&str, String, &str)> = Vec::new();
    for line in openmetrics.lines() {
        let Some((name, kind)) = line.strip_prefix("# TYPE ").and_then(|rest| rest.split_once(' ')) else {
            continue;
        };
        match kind {
            "counter" => renamed.push((name, format!("{name}_total"), "counter")),
            "info" => renamed.push((name, format!("{name}_info"), "gauge")),
            "unknown" => renamed.push((name, name.to_owned(), "untyped")),
            _ => {}
        }
    }
    let mut classic = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some((keyword, rest)) = line
            .strip_prefix("# HELP ")
            .map(|rest| ("HELP", rest))
            .or(line.strip_prefix("# TYPE ").map(|rest| ("TYPE", rest)))
        {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            match renamed.iter().find(|(family, _, _)| *family == name) {
                Some((_, classic_name, classic_type)) if keyword == "TYPE" => {
                    classic.push_str(&format!("# TYPE {classic_name} {classic_type}\n"));
                }
                Some((_, classic_name, _)) => classic.push_str(&format!("# HELP {classic_name} {text}\n")),
                None => {
                    classic.push_str(line);
                    classic.push('\n');
                }
            }
            continue;
        }
        classic.push_str(without_exemplar(line));
        classic.push('\n');
    }
    classic
}

/// A sample line without its exemplar: everything up to the value (and timestamp)
/// after the label set.
fn without_exemplar(line: &str) -> &str {
    // The label set ends at the first `}` outside a quoted value.
    let mut in_quotes = false;
    let mut escaped = false;
    let mut labels_end = 0;
    for (index, character) in line.char_indices() {
        match character {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => {
                labels_end = index;
                break;
            }
            _ => {}
        }
    }
    match line[labels_end..].find(" # ") {
        Some(at) => &line[..labels_end + at],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_becomes_the_classic_format() {
        let openmetrics = "# HELP http_requests HTTP requests.\n\
            # TYPE http_requests counter\n\
            http_requests_total{route=\"/a # b}\",status=\"200\"} 3\n\
            # HELP lat Latency.\n\
            # TYPE lat histogram\n\
            # UNIT lat seconds\n\
            lat_bucket{le=\"0.5\"} 1 # {trace_id=\"abc\"} 0.25\n\
            lat_bucket{le=\"+Inf\"} 1\n\
            lat_sum 0.25\n\
            lat_count 1\n\
            # HELP weaprous_build Build.\n\
            # TYPE weaprous_build info\n\
            weaprous_build_info{version=\"0.1.0\"} 1\n\
            # HELP up Up.\n\
            # TYPE up gauge\n\
            up 1\n\
            # EOF\n";
        let expected = "# HELP http_requests_total HTTP requests.\n\
            # TYPE http_requests_total counter\n\
            http_requests_total{route=\"/a # b}\",status=\"200\"} 3\n\
            # HELP lat Latency.\n\
            # TYPE lat histogram\n\
            lat_bucket{le=\"0.5\"} 1\n\
            lat_bucket{le=\"+Inf\"} 1\n\
            lat_sum 0.25\n\
            lat_count 1\n\
            # HELP weaprous_build_info Build.\n\
            # TYPE weaprous_build_info gauge\n\
            weaprous_build_info{version=\"0.1.0\"} 1\n\
            # HELP up Up.\n\
            # TYPE up gauge\n\
            up 1\n";
        assert_eq!(to_classic(openmetrics), expected);
    }

    #[test]
    fn only_an_accept_naming_openmetrics_gets_it() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(Some(prometheus)));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(None));
    }
}
