//! Reading the Prometheus text the city's processes serve on `/metrics`:
//! samples by name and labels, and quantiles of histograms.

use std::collections::BTreeMap;

/// One sample: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Label name → value.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// The samples of one `/metrics` page, by metric name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    samples: BTreeMap<String, Vec<Sample>>,
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(match escaped {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(name.trim_start_matches(',').trim().to_owned(), value);
        rest = &after[end..];
    }
    labels
}

impl Page {
    /// Parses a page; lines that are not samples are skipped.
    pub fn parse(text: &str) -> Self {
        let mut samples: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (name_and_labels, value) = match line.rfind('}') {
                Some(close) => (&line[..=close], line[close + 1..].trim()),
                None => match line.split_once(' ') {
                    Some((name, value)) => (name, value.trim()),
                    None => continue,
                },
            };
            let value = value.split_whitespace().next().unwrap_or_default();
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match name_and_labels.split_once('{') {
                Some((name, labels)) => (name, parse_labels(labels.trim_end_matches('}'))),
                None => (name_and_labels, BTreeMap::new()),
            };
            samples
                .entry(name.to_owned())
                .or_default()
                .push(Sample { labels, value });
        }
        Page { samples }
    }

    /// The samples of `name` whose labels include every `(label, value)` of `wanted`.
    pub fn matching<'a>(
        &'a self,
        name: &str,
        wanted: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples
            .get(name)
            .into_iter()
            .flatten()
            .filter(move |s| {
                wanted
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
            })
    }

    /// Whether the page has no sample (its scrape failed).
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The sum of the samples of `name` matching `wanted`.
    pub fn sum(&self, name: &str, wanted: &[(&str, &str)]) -> f64 {
        // Folded from +0.0: an empty `sum()` of floats is -0.0.
        self.matching(name, wanted)
            .fold(0.0, |total, s| total + s.value)
    }

    /// Sums of `name` by the value of `label`.
    pub fn by_label(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for sample in self.matching(name, &[]) {
            *out.entry(sample.labels.get(label).cloned().unwrap_or_default())
                .or_insert(0.0) += sample.value;
        }
        out
    }

    /// The cumulative buckets `(le, count)` of histogram `name` matching
    /// `wanted` (several series are added up), sorted by `le`.
    pub fn buckets(&self, name: &str, wanted: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for sample in self.matching(&format!("{name}_bucket"), wanted) {
            let Some(le) = sample.labels.get("le") else {
                continue;
            };
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            };
            let entry = by_le.entry(le.to_bits()).or_insert((le, 0.0));
            entry.1 += sample.value;
        }
        let mut buckets: Vec<(f64, f64)> = by_le.into_values().collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        buckets
    }
}

/// Merges `other` into `page` (pages of several replicas of one function).
pub fn merge(page: &mut Page, other: Page) {
    for (name, samples) in other.samples {
        page.samples.entry(name).or_default().extend(samples);
    }
}

/// The `q` quantile of cumulative `buckets` (linear within a bucket, as
/// Prometheus' `histogram_quantile`); `None` when empty.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower_bound = 0.0;
    let mut lower_count = 0.0;
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower_bound);
            }
            let in_bucket = count - lower_count;
            let fraction = if in_bucket > 0.0 {
                (rank - lower_count) / in_bucket
            } else {
                0.0
            };
            return Some(lower_bound + (le - lower_bound) * fraction);
        }
        lower_bound = le;
        lower_count = count;
    }
    Some(lower_bound)
}

/// Bucket counts of `now` minus those of `before` (a histogram over an interval).
pub fn delta(now: &[(f64, f64)], before: &[(f64, f64)]) -> Vec<(f64, f64)> {
    now.iter()
        .map(|&(le, count)| {
            let earlier = before
                .iter()
                .find(|(b, _)| b.to_bits() == le.to_bits())
                .map_or(0.0, |(_, c)| *c);
            (le, (count - earlier).max(0.0))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# HELP x
safecity_events_succeeded_total{function="map-pin",event_type="accident"} 3
safecity_events_succeeded_total{function="map-pin",event_type="invalid"} 1
safecity_handle_duration_seconds_bucket{function="map-pin",event_type="accident",le="0.01"} 1
safecity_handle_duration_seconds_bucket{function="map-pin",event_type="accident",le="0.1"} 3
safecity_handle_duration_seconds_bucket{function="map-pin",event_type="accident",le="+Inf"} 4
safecity_consuming{function="map-pin"} 1
plain 2.5
# EOF
"#;

    #[test]
    fn samples_sums_and_quantiles() {
        let page = Page::parse(PAGE);
        assert_eq!(page.sum("safecity_events_succeeded_total", &[]), 4.0);
        assert_eq!(
            page.sum(
                "safecity_events_succeeded_total",
                &[("event_type", "accident")]
            ),
            3.0
        );
        assert_eq!(page.sum("plain", &[]), 2.5);
        let buckets = page.buckets("safecity_handle_duration_seconds", &[]);
        assert_eq!(buckets.len(), 3);
        // Median: rank 2 of 4, halfway through the (0.01, 0.1] bucket.
        let p50 = quantile(&buckets, 0.5).expect("some");
        assert!((p50 - 0.055).abs() < 1e-9, "{p50}");
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(
            page.by_label("safecity_events_succeeded_total", "event_type")
                .len(),
            2
        );
    }
}
