//! Results at the end of a run: a table of medians (with the spread over rounds), the
//! WeApRous/NATS ratios and the targets, and one machine-readable line per
//! figure. The lines of each run as it comes are [`crate::lines`].
//!
//! Machine-readable lines start with `chatbench ` and are `key=value` pairs.

use std::fmt::Write;

use crate::fanout::FanoutResult;
use crate::ingest::IngestResult;
use crate::memory::MemoryResult;

/// Everything one round measured; a scenario not run is `None`.
#[derive(Debug, Clone, Default)]
pub struct Round {
    pub number: usize,
    /// The machine's 1-minute load average when the round started.
    pub load: f64,
    pub fanout_fixed: Option<FanoutResult>,
    pub fanout_saturated: Option<FanoutResult>,
    pub nats_fixed: Option<FanoutResult>,
    pub nats_saturated: Option<FanoutResult>,
    pub memory: Option<MemoryResult>,
    pub nats_memory: Option<MemoryResult>,
    pub ingest_peer: Option<IngestResult>,
    pub ingest_tracker: Option<IngestResult>,
    /// The PostgreSQL ingestion comparison (`--only pg-ingest`).
    pub pg: Option<crate::pgingest::PgRound>,
}

/// An issue 4 target.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    AtMost(f64),
    AtLeast(f64),
}

/// One figure of the summary.
struct Figure {
    key: &'static str,
    label: &'static str,
    weaprous: fn(&Round) -> Option<f64>,
    nats: Option<fn(&Round) -> Option<f64>>,
    target: Option<Target>,
}

/// The summary table and the median lines.
pub fn summary(rounds: &[Round]) -> String {
    let figures = figures();
    let mut text = String::new();
    let loads: Vec<f64> = rounds.iter().map(|round| round.load).collect();
    let _ = writeln!(
        text,
        "\n== chatbench summary: {} round(s), medians [min-max over rounds]; load average at round starts: {}",
        rounds.len(),
        loads.iter().map(|load| format!("{load:.2}")).collect::<Vec<_>>().join(", ")
    );
    let _ = writeln!(
        text,
        "{:<44} {:>26} {:>12} {:>10} {:>12} {:>6}",
        "figure", "WeApRous", "NATS", "ratio", "target", "met"
    );
    let mut lines = String::new();
    for figure in &figures {
        let Some(ours) = Spread::of(rounds.iter().filter_map(figure.weaprous)) else { continue };
        let nats = figure.nats.and_then(|nats| Spread::of(rounds.iter().filter_map(nats)));
        let ratio = nats.as_ref().filter(|nats| nats.median != 0.0).map(|nats| ours.median / nats.median);
        let met = figure.target.map(|target| target.met_by(ours.median));
        let _ = writeln!(
            text,
            "{:<44} {:>26} {:>12} {:>10} {:>12} {:>6}",
            figure.label,
            format!("{} [{}-{}]", number(ours.median), number(ours.min), number(ours.max)),
            nats.as_ref().map_or("-".to_owned(), |nats| number(nats.median)),
            ratio.map_or("-".to_owned(), |ratio| format!("{ratio:.3}")),
            figure.target.map_or("-".to_owned(), |target| target.to_string()),
            met.map_or("-", |met| if met { "yes" } else { "NO" }),
        );
        let _ = write!(
            lines,
            "chatbench median figure={} value={:.3} min={:.3} max={:.3} rounds={}",
            figure.key, ours.median, ours.min, ours.max, ours.count
        );
        if let Some(nats) = &nats {
            let _ = write!(lines, " nats={:.3}", nats.median);
        }
        if let Some(ratio) = ratio {
            let _ = write!(lines, " ratio={ratio:.4}");
        }
        if let (Some(target), Some(met)) = (figure.target, met) {
            let _ = write!(lines, " target={:?} met={met}", target.to_string());
        }
        lines.push('\n');
    }
    text.push('\n');
    text.push_str(&lines);
    text
}

impl Target {
    pub fn met_by(self, value: f64) -> bool {
        match self {
            Target::AtMost(limit) => value <= limit,
            Target::AtLeast(floor) => value >= floor,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::AtMost(limit) => write!(f, "<= {}", number(*limit)),
            Target::AtLeast(floor) => write!(f, ">= {}", number(*floor)),
        }
    }
}

/// Median, minimum and maximum of some values.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub count: usize,
}

impl Spread {
    pub fn of(values: impl Iterator<Item = f64>) -> Option<Self> {
        let mut values: Vec<f64> = values.filter(|value| value.is_finite()).collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let middle = values.len() / 2;
        let median = if values.len() % 2 == 1 { values[middle] } else { (values[middle - 1] + values[middle]) / 2.0 };
        Some(Self { median, min: values[0], max: values[values.len() - 1], count: values.len() })
    }
}

fn figures() -> Vec<Figure> {
    vec![
        Figure {
            key: "fanout_fixed_p50_ms",
            label: "fan-out at fixed rate: p50 latency (ms)",
            weaprous: |round| Some(round.fanout_fixed.as_ref()?.latency.p50_ms),
            nats: Some(|round| Some(round.nats_fixed.as_ref()?.latency.p50_ms)),
            target: None,
        },
        Figure {
            key: "fanout_fixed_p99_ms",
            label: "fan-out at fixed rate: p99 latency (ms)",
            weaprous: |round| Some(round.fanout_fixed.as_ref()?.latency.p99_ms),
            nats: Some(|round| Some(round.nats_fixed.as_ref()?.latency.p99_ms)),
            target: Some(Target::AtMost(20.0)),
        },
        Figure {
            key: "fanout_fixed_max_ms",
            label: "fan-out at fixed rate: max latency (ms)",
            weaprous: |round| Some(round.fanout_fixed.as_ref()?.latency.max_ms),
            nats: Some(|round| Some(round.nats_fixed.as_ref()?.latency.max_ms)),
            target: None,
        },
        Figure {
            key: "fanout_fixed_deliveries_per_s",
            label: "fan-out at fixed rate: deliveries/s achieved",
            weaprous: |round| Some(round.fanout_fixed.as_ref()?.deliveries_per_s),
            nats: Some(|round| Some(round.nats_fixed.as_ref()?.deliveries_per_s)),
            target: None,
        },
        Figure {
            key: "fanout_saturated_deliveries_per_s",
            label: "fan-out saturated: deliveries/s",
            weaprous: |round| Some(round.fanout_saturated.as_ref()?.deliveries_per_s),
            nats: Some(|round| Some(round.nats_saturated.as_ref()?.deliveries_per_s)),
            target: Some(Target::AtLeast(50_000.0)),
        },
        Figure {
            key: "fanout_saturated_posts_per_s",
            label: "fan-out saturated: messages sent/s",
            weaprous: |round| Some(round.fanout_saturated.as_ref()?.posts_per_s),
            nats: Some(|round| Some(round.nats_saturated.as_ref()?.posts_per_s)),
            target: None,
        },
        Figure {
            key: "fanout_saturated_p99_ms",
            label: "fan-out saturated: p99 latency (ms)",
            weaprous: |round| Some(round.fanout_saturated.as_ref()?.latency.p99_ms),
            nats: Some(|round| Some(round.nats_saturated.as_ref()?.latency.p99_ms)),
            target: None,
        },
        Figure {
            key: "idle_stream_rss_bytes",
            label: "memory per idle stream: RSS (bytes)",
            weaprous: |round| Some(round.memory.as_ref()?.rss_per_stream()),
            nats: Some(|round| Some(round.nats_memory.as_ref()?.rss_per_stream())),
            target: Some(Target::AtMost(10_000.0)),
        },
        Figure {
            key: "idle_stream_pss_bytes",
            label: "memory per idle stream: PSS (bytes)",
            weaprous: |round| Some(round.memory.as_ref()?.pss_per_stream()),
            nats: Some(|round| Some(round.nats_memory.as_ref()?.pss_per_stream())),
            target: None,
        },
        Figure {
            key: "idle_stream_tcp_kernel_bytes",
            label: "memory per idle stream: kernel TCP (bytes)",
            weaprous: |round| Some(round.memory.as_ref()?.tcp_kernel_per_stream()),
            nats: Some(|round| Some(round.nats_memory.as_ref()?.tcp_kernel_per_stream())),
            target: None,
        },
        Figure {
            key: "ingest_via_peer_msgs_per_s",
            label: "durable ingestion via a peer (msgs/s)",
            weaprous: |round| Some(round.ingest_peer.as_ref()?.messages_per_s),
            nats: None,
            target: Some(Target::AtLeast(20_000.0)),
        },
        Figure {
            key: "ingest_via_peer_ack_p99_ms",
            label: "durable ingestion via a peer: ack p99 (ms)",
            weaprous: |round| Some(round.ingest_peer.as_ref()?.ack_latency.p99_ms),
            nats: None,
            target: None,
        },
        Figure {
            key: "ingest_tracker_msgs_per_s",
            label: "durable ingestion at the tracker (msgs/s)",
            weaprous: |round| Some(round.ingest_tracker.as_ref()?.messages_per_s),
            nats: None,
            target: Some(Target::AtLeast(20_000.0)),
        },
        Figure {
            key: "ingest_tracker_ack_p99_ms",
            label: "durable ingestion at the tracker: ack p99 (ms)",
            weaprous: |round| Some(round.ingest_tracker.as_ref()?.ack_latency.p99_ms),
            nats: None,
            target: None,
        },
    ]
}

/// A figure for the table: thousands separated, decimals only for small values.
pub(crate) fn number(value: f64) -> String {
    if value.abs() >= 1000.0 {
        let rounded = value.round() as i64;
        let digits = rounded.abs().to_string();
        let mut grouped = String::new();
        for (index, digit) in digits.chars().enumerate() {
            if index > 0 && (digits.len() - index).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        if rounded < 0 { format!("-{grouped}") } else { grouped }
    } else if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts_and_the_spread() {
        let spread = Spread::of([3.0, 1.0, 2.0].into_iter()).unwrap();
        assert_eq!(spread, Spread { median: 2.0, min: 1.0, max: 3.0, count: 3 });
        assert_eq!(Spread::of([4.0, 1.0].into_iter()).unwrap().median, 2.5);
        assert_eq!(Spread::of(std::iter::empty()), None);
    }

    #[test]
    fn numbers_are_grouped_and_targets_checked() {
        assert_eq!(number(51234.6), "51,235");
        assert_eq!(number(1000.0), "1,000");
        assert_eq!(number(4.256), "4.26");
        assert!(Target::AtMost(20.0).met_by(19.9) && !Target::AtLeast(50_000.0).met_by(49_999.0));
        assert_eq!(Target::AtLeast(50_000.0).to_string(), ">= 50,000");
    }

    #[test]
    fn the_summary_has_a_median_line_per_figure_measured() {
        let round = Round {
            number: 1,
            load: 0.5,
            ingest_tracker: Some(IngestResult { messages_per_s: 25_000.0, ..IngestResult::default() }),
            ..Round::default()
        };
        let text = summary(&[round]);
        assert!(text.contains("chatbench median figure=ingest_tracker_msgs_per_s value=25000.000"), "{text}");
        assert!(text.contains("met=true"), "{text}");
        assert!(!text.contains("figure=ingest_via_peer_msgs_per_s"), "{text}");
    }
}
