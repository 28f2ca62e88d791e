//! Building Prometheus metric families by hand, for values read at scrape time: a counter or
//! gauge per label set, and histograms whose buckets come already counted.

use prometheus::core::Desc;
use prometheus::proto::{Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType};

/// One family's name, help, type and label names.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricType,
    pub labels: &'static [&'static str],
}

impl Spec {
    pub const fn counter(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Self { name, help, kind: MetricType::COUNTER, labels }
    }

    pub const fn gauge(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Self { name, help, kind: MetricType::GAUGE, labels }
    }

    pub const fn histogram(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Self { name, help, kind: MetricType::HISTOGRAM, labels }
    }

    pub fn desc(&self) -> prometheus::Result<Desc> {
        Desc::new(self.name.into(), self.help.into(), self.labels.iter().map(|l| l.to_string()).collect(), Default::default())
    }

    /// An empty family of this spec, to be filled with [`Family::value`] or [`Family::histogram`].
    pub fn family(&self) -> Family {
        let mut family = MetricFamily::default();
        family.set_name(self.name.into());
        family.set_help(self.help.into());
        family.set_field_type(self.kind);
        Family { spec: *self, family }
    }
}

#[derive(Debug)]
pub struct Family {
    spec: Spec,
    family: MetricFamily,
}

impl Family {
    /// A counter or gauge sample; `labels` are the values of the spec's labels, in order.
    pub fn value(&mut self, labels: &[&str], value: f64) -> &mut Self {
        let mut metric = self.metric(labels);
        match self.spec.kind {
            MetricType::GAUGE => {
                let mut gauge = Gauge::default();
                gauge.set_value(value);
                metric.set_gauge(gauge);
            }
            _ => {
                let mut counter = Counter::default();
                counter.set_value(value);
                metric.set_counter(counter);
            }
        }
        self.family.mut_metric().push(metric);
        self
    }

    /// A histogram sample: `(upper bound, cumulative count)` per bucket, without `+Inf`.
    pub fn histogram(&mut self, labels: &[&str], buckets: &[(f64, u64)], count: u64, sum: f64) -> &mut Self {
        let mut metric = self.metric(labels);
        let mut histogram = Histogram::default();
        histogram.set_sample_count(count);
        histogram.set_sample_sum(sum);
        histogram.set_bucket(
            buckets
                .iter()
                .map(|(le, cumulative)| {
                    let mut bucket = Bucket::default();
                    bucket.set_upper_bound(*le);
                    bucket.set_cumulative_count(*cumulative);
                    bucket
                })
                .collect(),
        );
        metric.set_histogram(histogram);
        self.family.mut_metric().push(metric);
        self
    }

    pub fn done(self) -> MetricFamily {
        self.family
    }

    fn metric(&self, values: &[&str]) -> Metric {
        debug_assert_eq!(values.len(), self.spec.labels.len(), "{}: label values match label names", self.spec.name);
        let pairs = self
            .spec
            .labels
            .iter()
            .zip(values)
            .map(|(name, value)| {
                let mut pair = LabelPair::default();
                pair.set_name(name.to_string());
                pair.set_value(value.to_string());
                pair
            })
            .collect();
        Metric::from_label(pairs)
    }
}

/// Cumulative counts at each bound from per-bucket counts (the last one, above every bound,
/// only reaches the total).
pub fn cumulative(bounds: impl IntoIterator<Item = f64>, counts: &[u64]) -> Vec<(f64, u64)> {
    let mut running = 0;
    bounds
        .into_iter()
        .zip(counts)
        .map(|(le, count)| {
            running += count;
            (le, running)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_counts_add_up_bucket_by_bucket() {
        assert_eq!(cumulative([1.0, 2.0, 4.0], &[3, 0, 2, 7]), vec![(1.0, 3), (2.0, 3), (4.0, 5)]);
    }
}
