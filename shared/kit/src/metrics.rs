//! Prometheus metrics: `GET /metrics` on every service, and the metrics every service
//! records: requests by route, method and status, their latency (with the trace id
//! of a recent request of each bucket as an exemplar, when traces are exported),
//! requests in flight, the `process_*` metrics and `weaprous_build_info`.
//!
//! Each service owns its registry (no global one), so services running in one process
//! (the all-in-one runner, tests) keep their numbers apart. `GET /metrics` answers in
//! OpenMetrics when asked for it (Prometheus does), else in the classic text format
//! ([`exposition`]).

pub mod exposition;
pub mod process;
mod registry;
#[cfg(feature = "service")]
mod requests;

pub use registry::Metrics;
#[cfg(feature = "service")]
pub use requests::{HttpMetrics, router};

use std::collections::BTreeMap;

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Latency buckets from 0.5 ms to about 16 s.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// What is wrong with the histograms of an exposition `text`, one sentence each; empty
/// when nothing is. Every series of a `histogram` family must have buckets that never
/// decrease and end at `+Inf`, a `+Inf` bucket equal to its `_count`, and a `_sum`
/// that its buckets allow (each observation lies above the bound of the bucket before
/// its own; none is negative, as every histogram here measures a duration). For tests
/// of every service and of the proxy, which build their histograms differently.
pub fn histogram_violations(text: &str) -> Vec<String> {
    #[derive(Default)]
    struct Series {
        buckets: Vec<(f64, f64)>,
        count: Option<f64>,
        sum: Option<f64>,
    }
    let families: Vec<&str> =
        text.lines().filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" histogram")).collect();
    let mut violations = Vec::new();
    let mut all: BTreeMap<(String, Labels), Series> = BTreeMap::new();
    for line in text.lines().filter(|line| !line.starts_with('#') && !line.trim().is_empty()) {
        let Some((name, mut labels, value)) = parse_sample(line) else {
            violations.push(format!("cannot parse the sample line {line:?}"));
            continue;
        };
        let Some((family, suffix)) = families.iter().find_map(|family| {
            let suffix = name.strip_prefix(family)?.strip_prefix('_')?;
            ["bucket", "count", "sum"].contains(&suffix).then_some((*family, suffix))
        }) else {
            continue;
        };
        let le = labels.iter().position(|(label, _)| label == "le").map(|index| labels.remove(index).1);
        labels.sort();
        let series = all.entry((family.to_owned(), labels)).or_default();
        match (suffix, le) {
            ("bucket", Some(le)) => match le.parse::<f64>() {
                Ok(bound) => series.buckets.push((bound, value)),
                Err(_) => violations.push(format!("{line:?}: le is not a number")),
            },
            ("bucket", None) => violations.push(format!("{line:?}: a bucket without le")),
            ("count", _) => series.count = Some(value),
            _ => series.sum = Some(value),
        }
    }
    for ((family, labels), series) in all {
        let name = format!("{family}{labels:?}");
        let (Some(count), Some(sum)) = (series.count, series.sum) else {
            violations.push(format!("{name}: no _count or no _sum"));
            continue;
        };
        if series.buckets.last().is_none_or(|(bound, _)| *bound != f64::INFINITY) {
            violations.push(format!("{name}: the last bucket is not +Inf"));
            continue;
        }
        // The least and the most the observations can add up to, bucket by bucket.
        let (mut least, mut most, mut below, mut total) = (0.0, 0.0, 0.0, 0.0);
        for (index, &(bound, cumulative)) in series.buckets.iter().enumerate() {
            if cumulative < total || (index > 0 && bound <= below) {
                violations.push(format!("{name}: bucket le={bound} holds {cumulative}, after le={below} with {total}"));
            }
            let here = cumulative - total;
            least += here * below;
            most += if here > 0.0 { here * bound } else { 0.0 };
            (below, total) = (bound, cumulative);
        }
        if total != count {
            violations.push(format!("{name}: the +Inf bucket is {total} but _count is {count}"));
        }
        let slack = 1e-6 * least.max(1e-9);
        if !(sum >= 0.0 && sum + slack >= least && sum <= most + 1e-6 * most.max(1e-9)) {
            violations.push(format!("{name}: _sum {sum} is outside what the buckets allow, [{least}, {most}]"));
        }
    }
    violations
}

/// A sample's labels, as name and value.
type Labels = Vec<(String, String)>;

/// A sample line: its name, its labels, and its value (a timestamp or exemplar after
/// the value is ignored).
fn parse_sample(line: &str) -> Option<(&str, Labels, f64)> {
    let name_end = line.find(['{', ' '])?;
    let (name, mut rest) = line.split_at(name_end);
    let mut labels = Vec::new();
    if let Some(inside) = rest.strip_prefix('{') {
        rest = inside;
        loop {
            rest = rest.trim_start_matches(',');
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (label, after) = rest.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next()? {
                    (index, '"') => break index,
                    (_, '\\') => value.push(match chars.next()?.1 {
                        'n' => '\n',
                        other => other,
                    }),
                    (_, other) => value.push(other),
                }
            };
            labels.push((label.to_owned(), value));
            rest = &after[end + 1..];
        }
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some((name, labels, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_check_catches_buckets_counted_twice() {
        // Issue 12's scrape: buckets made cumulative twice, so `+Inf` is far above `_count`.
        let text = "# TYPE lat histogram\n\
            lat_sum{backend=\"b\"} 0.33\n\
            lat_count{backend=\"b\"} 61\n\
            lat_bucket{le=\"0.001\",backend=\"b\"} 0\n\
            lat_bucket{le=\"0.002\",backend=\"b\"} 0\n\
            lat_bucket{le=\"0.004\",backend=\"b\"} 30\n\
            lat_bucket{le=\"0.008\",backend=\"b\"} 91\n\
            lat_bucket{le=\"+Inf\",backend=\"b\"} 856\n\
            # EOF\n";
        let violations = histogram_violations(text);
        assert!(violations.iter().any(|v| v.contains("+Inf bucket is 856 but _count is 61")), "{violations:#?}");
        let right = text.replace("} 91", "} 61").replace("} 856", "} 61");
        assert_eq!(histogram_violations(&right), Vec::<String>::new());
        let decreasing = right.replace("\"0.004\",backend=\"b\"} 30", "\"0.004\",backend=\"b\"} 70");
        assert!(histogram_violations(&decreasing).iter().any(|v| v.contains("holds 61")), "{decreasing}");
        let too_small_sum = right.replace("0.33", "0.01");
        assert!(histogram_violations(&too_small_sum).iter().any(|v| v.contains("_sum 0.01")), "{too_small_sum}");
    }
}
