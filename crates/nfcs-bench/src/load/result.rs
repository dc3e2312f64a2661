//! What a load run measured: merged HDR histograms, counts, and the timeline.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::stats::{LatencySummary, latency_histogram};

/// Successes and failures of one operation of the mix.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationCounts {
    /// The operation's name.
    pub name: String,
    /// Requests that succeeded.
    pub ok: u64,
    /// Requests that failed (unfinished ones included).
    pub errors: u64,
}

/// One bucket of the timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimelinePoint {
    /// The bucket's start, in seconds since the run's start.
    pub t_s: f64,
    /// Responses completed in the bucket, per second.
    pub throughput: f64,
    /// Failed responses in the bucket.
    pub errors: u64,
    /// Arrivals dropped in the bucket (by intended time).
    pub dropped: u64,
    /// The corrected p95 of the responses completed in the bucket, in seconds (NaN when none
    /// completed).
    pub p95_s: f64,
    /// Closed model: the users running at the bucket's middle (by the stages). Open model:
    /// the mean number of requests in flight (their summed service time over the width).
    pub users: f64,
    /// Open model: the scheduled arrival rate at the bucket's middle (0 for the closed model).
    pub rate: f64,
}

/// The result of a load run.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// `closed` or `open`.
    pub model: &'static str,
    /// The target's name.
    pub target: String,
    /// Latency from each request's intended start to its response, in ns (corrected for
    /// coordinated omission).
    pub corrected: Histogram<u64>,
    /// Latency from each request's actual start to its response, in ns (raw).
    pub raw: Histogram<u64>,
    /// How late each request started (`actual - intended`), in ns.
    pub lateness: Histogram<u64>,
    /// Requests sent (successes, errors and unfinished).
    pub requests: u64,
    /// Requests that succeeded.
    pub ok: u64,
    /// Requests that failed or did not finish.
    pub errors: u64,
    /// Requests still in flight when the drain ran out (counted in `errors`).
    pub unfinished: u64,
    /// Open model: arrivals not sent because they could not start in time.
    pub dropped: u64,
    /// Requests that started more than the plan's `late_after` after their intended time.
    pub late: u64,
    /// Per operation of the mix, in the mix's order.
    pub operations: Vec<OperationCounts>,
    /// Throughput, p95 and users over time.
    pub timeline: Vec<TimelinePoint>,
    /// The timeline's bucket width.
    pub bucket: Duration,
    /// The scheduled duration.
    pub duration: Duration,
    /// From the start to the last response (drain included).
    pub elapsed: Duration,
    /// The first error a request returned, when one did.
    pub first_error: Option<String>,
}

impl LoadResult {
    /// Successes over attempts (requests sent plus arrivals dropped); 0 when nothing was
    /// attempted.
    pub fn success_rate(&self) -> f64 {
        let attempts = self.requests + self.dropped;
        if attempts == 0 {
            0.0
        } else {
            self.ok as f64 / attempts as f64
        }
    }

    /// Responses per second over the scheduled duration.
    pub fn throughput(&self) -> f64 {
        let seconds = self.duration.as_secs_f64();
        if seconds > 0.0 {
            (self.ok + self.errors - self.unfinished) as f64 / seconds
        } else {
            0.0
        }
    }

    /// Responses per second in the timeline's buckets that start at or after `from` and end
    /// by the scheduled end (the held phase after a ramp); the whole run's throughput when
    /// no bucket fits.
    pub fn throughput_from(&self, from: Duration) -> f64 {
        let width = self.bucket.as_secs_f64();
        let end = self.duration.as_secs_f64();
        let from = from.as_secs_f64();
        let inside: Vec<f64> = self
            .timeline
            .iter()
            .filter(|point| point.t_s + 1e-9 >= from && point.t_s + width <= end + 1e-9)
            .map(|point| point.throughput)
            .collect();
        if inside.is_empty() {
            self.throughput()
        } else {
            inside.iter().sum::<f64>() / inside.len() as f64
        }
    }

    /// Percentiles of the corrected latencies.
    pub fn corrected_summary(&self) -> LatencySummary {
        LatencySummary::of(&self.corrected)
    }

    /// Percentiles of the raw latencies.
    pub fn raw_summary(&self) -> LatencySummary {
        LatencySummary::of(&self.raw)
    }

    /// Percentiles of the start lateness.
    pub fn lateness_summary(&self) -> LatencySummary {
        LatencySummary::of(&self.lateness)
    }
}

/// A coarse histogram for one timeline bucket: 1 us resolution at the bottom, 2 significant
/// digits, up to an hour.
fn bucket_histogram() -> Histogram<u64> {
    // Constant, valid bounds.
    Histogram::new_with_bounds(1_000, 3_600_000_000_000, 2)
        .expect("1 us to 1 h at 2 significant figures is a valid histogram")
}

/// Adds `from` into `into` (histograms of the same bounds, so this cannot overflow them;
/// should it, each value is recorded saturating).
fn merge(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    if into.add(from).is_err() {
        for value in from.iter_recorded() {
            into.saturating_record_n(value.value_iterated_to(), value.count_at_value());
        }
    }
}

#[derive(Debug, Default)]
struct Bucket {
    ok: u64,
    errors: u64,
    dropped: u64,
    busy_ns: u64,
    corrected: Option<Histogram<u64>>,
}

/// What one worker measured: no sharing, merged at the end.
#[derive(Debug)]
pub(crate) struct Recorder {
    corrected: Histogram<u64>,
    raw: Histogram<u64>,
    lateness: Histogram<u64>,
    ok: u64,
    errors: u64,
    unfinished: u64,
    dropped: u64,
    late: u64,
    late_after_ns: u64,
    operations: Vec<(u64, u64)>,
    buckets: Vec<Bucket>,
    width_ns: u64,
    first_error: Option<String>,
}

impl Recorder {
    pub(crate) fn new(operations: usize, width: Duration, late_after: Duration) -> Recorder {
        Recorder {
            corrected: latency_histogram(),
            raw: latency_histogram(),
            lateness: latency_histogram(),
            ok: 0,
            errors: 0,
            unfinished: 0,
            dropped: 0,
            late: 0,
            late_after_ns: crate::load::plan::duration_ns(late_after),
            operations: vec![(0, 0); operations],
            buckets: Vec::new(),
            width_ns: crate::load::plan::duration_ns(width).max(1),
            first_error: None,
        }
    }

    fn bucket(&mut self, t_ns: u64) -> &mut Bucket {
        let index = usize::try_from(t_ns / self.width_ns).unwrap_or(usize::MAX);
        // At most the run's length in buckets (plus the drain): bounded by the plan.
        let index = index.min(1 << 20);
        if index >= self.buckets.len() {
            self.buckets.resize_with(index + 1, Bucket::default);
        }
        &mut self.buckets[index]
    }

    /// One response: times in ns since the run's start.
    pub(crate) fn response(
        &mut self,
        operation: usize,
        intended_ns: u64,
        start_ns: u64,
        end_ns: u64,
        outcome: Result<(), crate::load::target::TargetError>,
    ) {
        let corrected = end_ns.saturating_sub(intended_ns).max(1);
        let raw = end_ns.saturating_sub(start_ns).max(1);
        let lateness = start_ns.saturating_sub(intended_ns);
        self.corrected.saturating_record(corrected);
        self.raw.saturating_record(raw);
        self.lateness.saturating_record(lateness.max(1));
        if lateness > self.late_after_ns {
            self.late += 1;
        }
        let ok = outcome.is_ok();
        if let Some(counts) = self.operations.get_mut(operation) {
            if ok {
                counts.0 += 1;
            } else {
                counts.1 += 1;
            }
        }
        match outcome {
            Ok(()) => self.ok += 1,
            Err(error) => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(error.message);
                }
            }
        }
        let bucket = self.bucket(end_ns);
        if ok {
            bucket.ok += 1;
        } else {
            bucket.errors += 1;
        }
        bucket.busy_ns += raw;
        bucket
            .corrected
            .get_or_insert_with(bucket_histogram)
            .saturating_record(corrected);
    }

    /// An arrival intended at `intended_ns` that was not sent.
    pub(crate) fn dropped(&mut self, intended_ns: u64) {
        self.dropped += 1;
        self.bucket(intended_ns).dropped += 1;
    }

    /// Requests of `operation` still in flight when the drain ran out.
    pub(crate) fn unfinished(&mut self, operation: usize, count: u64) {
        self.unfinished += count;
        self.errors += count;
        if let Some(counts) = self.operations.get_mut(operation) {
            counts.1 += count;
        }
        if count > 0 && self.first_error.is_none() {
            self.first_error = Some("a request did not finish within the drain".to_owned());
        }
    }

    /// Merges every worker's recorder into the result.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn finish(
        recorders: Vec<Recorder>,
        model: &'static str,
        target: String,
        names: Vec<String>,
        width: Duration,
        duration: Duration,
        elapsed: Duration,
        users: impl Fn(Duration) -> Option<f64>,
        rate: impl Fn(Duration) -> f64,
    ) -> LoadResult {
        let mut result = LoadResult {
            model,
            target,
            corrected: latency_histogram(),
            raw: latency_histogram(),
            lateness: latency_histogram(),
            requests: 0,
            ok: 0,
            errors: 0,
            unfinished: 0,
            dropped: 0,
            late: 0,
            operations: names
                .into_iter()
                .map(|name| OperationCounts {
                    name,
                    ok: 0,
                    errors: 0,
                })
                .collect(),
            timeline: Vec::new(),
            bucket: width,
            duration,
            elapsed,
            first_error: None,
        };
        let length = recorders
            .iter()
            .map(|recorder| recorder.buckets.len())
            .max()
            .unwrap_or(0);
        let mut merged: Vec<Bucket> = (0..length).map(|_| Bucket::default()).collect();
        for recorder in recorders {
            merge(&mut result.corrected, &recorder.corrected);
            merge(&mut result.raw, &recorder.raw);
            merge(&mut result.lateness, &recorder.lateness);
            result.ok += recorder.ok;
            result.errors += recorder.errors;
            result.unfinished += recorder.unfinished;
            result.dropped += recorder.dropped;
            result.late += recorder.late;
            for (total, (ok, errors)) in result.operations.iter_mut().zip(recorder.operations) {
                total.ok += ok;
                total.errors += errors;
            }
            if result.first_error.is_none() {
                result.first_error = recorder.first_error;
            }
            for (into, from) in merged.iter_mut().zip(recorder.buckets) {
                into.ok += from.ok;
                into.errors += from.errors;
                into.dropped += from.dropped;
                into.busy_ns += from.busy_ns;
                if let Some(histogram) = from.corrected {
                    match &mut into.corrected {
                        Some(total) => merge(total, &histogram),
                        None => into.corrected = Some(histogram),
                    }
                }
            }
        }
        result.requests = result.ok + result.errors;
        let seconds = width.as_secs_f64();
        // Buckets up to the scheduled end, and past it while responses still came.
        let scheduled = duration.as_nanos().div_ceil(width.as_nanos().max(1)) as usize;
        for (index, bucket) in merged
            .into_iter()
            .enumerate()
            .chain((length..scheduled).map(|index| (index, Bucket::default())))
        {
            let start = width * u32::try_from(index).unwrap_or(u32::MAX);
            let middle = start + width / 2;
            let completed = bucket.ok + bucket.errors;
            result.timeline.push(TimelinePoint {
                t_s: start.as_secs_f64(),
                throughput: completed as f64 / seconds,
                errors: bucket.errors,
                dropped: bucket.dropped,
                p95_s: bucket
                    .corrected
                    .as_ref()
                    .filter(|histogram| !histogram.is_empty())
                    .map_or(f64::NAN, |histogram| {
                        histogram.value_at_quantile(0.95) as f64 / 1e9
                    }),
                users: users(middle).unwrap_or(bucket.busy_ns as f64 / 1e9 / seconds),
                rate: rate(middle),
            });
        }
        result
    }
}
