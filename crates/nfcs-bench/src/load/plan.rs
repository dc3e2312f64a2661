//! What a load run does: the operation mix, the think time, and the closed or open model with
//! its stages.

use std::time::Duration;

use rand::RngExt;
use rand::rngs::SmallRng;

use crate::load::target::Operation;

/// A weighted mix of operations: each request picks one with probability proportional to its
/// weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    operations: Vec<(Operation, f64)>,
    cumulative: Vec<f64>,
}

impl Mix {
    /// A mix of `(operation, weight)` pairs. Weights must be finite and not negative, and one at
    /// least above 0; `None` otherwise.
    pub fn new(operations: Vec<(Operation, f64)>) -> Option<Mix> {
        let mut total = 0.0;
        let mut cumulative = Vec::with_capacity(operations.len());
        for (_, weight) in &operations {
            if !(weight.is_finite() && *weight >= 0.0) {
                return None;
            }
            total += weight;
            cumulative.push(total);
        }
        if total <= 0.0 {
            return None;
        }
        for value in &mut cumulative {
            *value /= total;
        }
        Some(Mix {
            operations,
            cumulative,
        })
    }

    /// A mix of one operation.
    pub fn single(operation: Operation) -> Mix {
        Mix {
            operations: vec![(operation, 1.0)],
            cumulative: vec![1.0],
        }
    }

    /// The NFCS mix of the in-process scenarios: 45 % cache reads, 10 % cache writes, 25 %
    /// policy checks, 10 % memoized CGL solves and, when `semantic`, 10 % semantic lookups
    /// (otherwise their share goes to cache reads).
    pub fn nfcs(semantic: bool) -> Mix {
        let mut operations = vec![
            (Operation::CacheGet, if semantic { 45.0 } else { 55.0 }),
            (Operation::CacheSet, 10.0),
            (Operation::PolicyCheck, 25.0),
            (Operation::CglSolve, 10.0),
        ];
        if semantic {
            operations.push((Operation::SemanticLookup, 10.0));
        }
        // Constant, valid weights.
        Mix::new(operations).unwrap_or_else(|| Mix::single(Operation::CacheGet))
    }

    /// The operations and their weights.
    pub fn operations(&self) -> &[(Operation, f64)] {
        &self.operations
    }

    /// The index of the operation a uniform number `u` in `[0, 1)` picks.
    pub fn pick(&self, u: f64) -> usize {
        let index = self.cumulative.partition_point(|&edge| edge <= u);
        index.min(self.operations.len() - 1)
    }

    /// The operation at `index`.
    pub fn operation(&self, index: usize) -> &Operation {
        &self.operations[index].0
    }
}

/// How long a virtual user waits after a response before its next request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThinkTime {
    /// No wait: the next request follows the response.
    None,
    /// Always the same wait.
    Constant(Duration),
    /// Exponentially distributed waits of this mean (seeded per user).
    Exponential(Duration),
}

impl ThinkTime {
    /// Exponential waits of mean `milliseconds` (none for 0).
    pub fn exponential_ms(milliseconds: f64) -> ThinkTime {
        if milliseconds > 0.0 && milliseconds.is_finite() {
            ThinkTime::Exponential(Duration::from_secs_f64(milliseconds / 1000.0))
        } else {
            ThinkTime::None
        }
    }

    /// The mean wait.
    pub fn mean(&self) -> Duration {
        match *self {
            ThinkTime::None => Duration::ZERO,
            ThinkTime::Constant(wait) | ThinkTime::Exponential(wait) => wait,
        }
    }

    /// One wait, in nanoseconds.
    pub(crate) fn sample_ns(&self, rng: &mut SmallRng) -> u64 {
        match *self {
            ThinkTime::None => 0,
            ThinkTime::Constant(wait) => duration_ns(wait),
            ThinkTime::Exponential(mean) => {
                let u: f64 = rng.random();
                // -ln(1 - u) with u in [0, 1): finite, at most about 37 means.
                let factor = -(1.0 - u).ln();
                (duration_ns(mean) as f64 * factor) as u64
            }
        }
    }
}

/// A stage of the closed model: the number of users moves linearly from the previous stage's
/// (0 before the first) to `users` over `duration` (k6's `ramping-vus`). A stage whose users
/// equal the previous one holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    /// How long the stage lasts.
    pub duration: Duration,
    /// The users at its end.
    pub users: u32,
}

/// The closed model: virtual users, each looping request, response, think.
///
/// User `k` (from 0) starts when the stages' user count first exceeds `k`, and stops when it
/// falls to `k` or below again, or at the end (a user stopped by a ramp down is not started
/// again). Request `n + 1` of a user is intended to start at
/// `intended(n) + service(n) + think(n)`, where `service(n)` is the measured time from the
/// actual start of request `n` to its response, and `intended(0)` is the user's start time.
/// So the think time absorbs a late start (a user that was started late by a busy generator
/// thinks less, and catches up), and the lateness `actual - intended` of a request is how far
/// the engine fell behind its users, never the target's own slowness (which is in `service`).
/// Without think time there is nothing to catch up in: the engine's own time between a
/// response and the next request then accumulates in the lateness (and the corrected
/// latencies) of each user, which is the truth about such a schedule but not about the
/// target; read the raw latencies of a closed model without think time. A user also stops
/// when a response arrives after its stop time, whatever its schedule says.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedModel {
    /// The user count over time.
    pub stages: Vec<Stage>,
    /// The wait between a response and the next request.
    pub think: ThinkTime,
}

impl ClosedModel {
    /// `users` ramped up linearly over `ramp`, then held until `duration` (ramp included).
    pub fn ramp_and_hold(users: u32, ramp: Duration, duration: Duration, think: ThinkTime) -> Self {
        let mut stages = Vec::new();
        if !ramp.is_zero() {
            stages.push(Stage {
                duration: ramp.min(duration),
                users,
            });
        }
        stages.push(Stage {
            duration: duration.saturating_sub(ramp),
            users,
        });
        ClosedModel { stages, think }
    }

    /// The total duration of the stages.
    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|stage| stage.duration).sum()
    }

    /// The most users of any stage.
    pub fn max_users(&self) -> u32 {
        self.stages
            .iter()
            .map(|stage| stage.users)
            .max()
            .unwrap_or(0)
    }

    /// The (fractional) user count at `t` since the start.
    pub fn users_at(&self, t: Duration) -> f64 {
        let mut start = Duration::ZERO;
        let mut previous = 0.0;
        for stage in &self.stages {
            let end = start + stage.duration;
            let target = f64::from(stage.users);
            if t < end {
                let progress = if stage.duration.is_zero() {
                    1.0
                } else {
                    (t - start).as_secs_f64() / stage.duration.as_secs_f64()
                };
                return previous + (target - previous) * progress;
            }
            previous = target;
            start = end;
        }
        previous
    }

    /// When user `k` runs: from its start until its stop, since the run's start; `None` when
    /// the stages never reach `k + 1` users.
    pub fn user_interval(&self, k: u32) -> Option<(Duration, Duration)> {
        let level = f64::from(k);
        let mut start_at = None;
        let mut at = Duration::ZERO;
        let mut previous = 0.0_f64;
        for stage in &self.stages {
            let target = f64::from(stage.users);
            match start_at {
                None if target > level => {
                    // First time the count exceeds `k` (at once for a zero-length stage).
                    let fraction = if target > previous && previous <= level {
                        (level - previous) / (target - previous)
                    } else {
                        0.0
                    };
                    start_at = Some(at + stage.duration.mul_f64(fraction.clamp(0.0, 1.0)));
                }
                Some(start) if target <= level => {
                    let fraction = if previous > target {
                        (previous - level) / (previous - target)
                    } else {
                        0.0
                    };
                    let stop = at + stage.duration.mul_f64(fraction.clamp(0.0, 1.0));
                    return Some((start, stop.max(start)));
                }
                _ => {}
            }
            at += stage.duration;
            previous = target;
        }
        start_at.map(|start| (start, at))
    }
}

/// A stage of the open model: arrivals at `rate` per second, evenly spaced, for `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateStage {
    /// How long the stage lasts.
    pub duration: Duration,
    /// Arrivals per second.
    pub rate: f64,
}

/// The open model: arrivals on a fixed schedule, whatever the responses do (k6's
/// `constant-arrival-rate` and `ramping-arrival-rate` with steps, wrk2's constant throughput).
///
/// Arrival `i` of a stage starting at `T` with rate `r` is intended at `T + i / r`. A bounded
/// pool of `max_in_flight` requests serves the arrivals in order: an arrival starts when it is
/// due and a place in the pool is free. One that starts more than [`LoadPlan::late_after`]
/// after its intended time counts as late; one that could not start within `drop_after` is not
/// sent at all and counts as dropped (and as a failure of the success rate).
#[derive(Debug, Clone, PartialEq)]
pub struct OpenModel {
    /// The arrival rate over time.
    pub stages: Vec<RateStage>,
    /// At most this many requests in flight.
    pub max_in_flight: usize,
    /// An arrival that cannot start within this of its intended time is dropped.
    pub drop_after: Duration,
}

impl OpenModel {
    /// A constant `rate` for `duration`, 1024 in flight at most, dropped after 5 s.
    pub fn constant(rate: f64, duration: Duration) -> OpenModel {
        OpenModel {
            stages: vec![RateStage { duration, rate }],
            max_in_flight: 1024,
            drop_after: Duration::from_secs(5),
        }
    }

    /// The total duration of the stages.
    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|stage| stage.duration).sum()
    }

    /// The schedule: for each stage, its start since the run's start (ns), its first arrival
    /// index and its rate.
    pub(crate) fn schedule(&self) -> Schedule {
        let mut segments = Vec::with_capacity(self.stages.len());
        let mut start_ns = 0_u64;
        let mut first = 0_u64;
        for stage in &self.stages {
            let length_ns = duration_ns(stage.duration);
            let rate = if stage.rate.is_finite() && stage.rate > 0.0 {
                stage.rate
            } else {
                0.0
            };
            let arrivals = (stage.duration.as_secs_f64() * rate).ceil() as u64;
            segments.push(Segment {
                start_ns,
                first,
                arrivals,
                interval_ns: if rate > 0.0 { 1e9 / rate } else { 0.0 },
            });
            start_ns += length_ns;
            first += arrivals;
        }
        Schedule {
            segments,
            total: first,
            end_ns: start_ns,
        }
    }
}

/// One stage of the open model's schedule.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment {
    start_ns: u64,
    first: u64,
    arrivals: u64,
    interval_ns: f64,
}

/// The open model's arrival times.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    segments: Vec<Segment>,
    /// Arrivals in all.
    pub(crate) total: u64,
    /// The end of the last stage, ns since the start.
    pub(crate) end_ns: u64,
}

impl Schedule {
    /// The intended time of arrival `index`, ns since the start (`None` past the last).
    pub(crate) fn intended_ns(&self, index: u64) -> Option<u64> {
        let position = self
            .segments
            .partition_point(|segment| segment.first + segment.arrivals <= index);
        let segment = self.segments.get(position)?;
        let offset = (index - segment.first) as f64 * segment.interval_ns;
        Some(segment.start_ns + offset as u64)
    }

    /// The scheduled rate at `t_ns` since the start.
    pub(crate) fn rate_at(&self, t_ns: u64) -> f64 {
        self.segments
            .iter()
            .rev()
            .find(|segment| segment.start_ns <= t_ns)
            .map_or(0.0, |segment| {
                if segment.interval_ns > 0.0 && t_ns < self.end_ns {
                    1e9 / segment.interval_ns
                } else {
                    0.0
                }
            })
    }
}

/// The closed or the open model.
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    /// Virtual users with think times.
    Closed(ClosedModel),
    /// A fixed arrival schedule.
    Open(OpenModel),
}

impl Model {
    /// How long the schedule lasts (requests in flight at the end are waited for, up to
    /// [`LoadPlan::drain`]).
    pub fn duration(&self) -> Duration {
        match self {
            Model::Closed(model) => model.duration(),
            Model::Open(model) => model.duration(),
        }
    }

    /// `closed` or `open`.
    pub fn name(&self) -> &'static str {
        match self {
            Model::Closed(_) => "closed",
            Model::Open(_) => "open",
        }
    }
}

/// A whole load run.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadPlan {
    /// The closed or open model.
    pub model: Model,
    /// What the requests do.
    pub mix: Mix,
    /// The seed of every random choice (operations, think times): the same plan makes the same
    /// choices.
    pub seed: u64,
    /// The width of the timeline's buckets; `None` picks 1 s, or less for runs under 30 s (a
    /// thirtieth of the run, at least 10 ms).
    pub bucket: Option<Duration>,
    /// Tasks the requests are driven from (each owns its histograms); `None` is one per core.
    pub workers: Option<usize>,
    /// How long requests still in flight at the end are waited for before they count as
    /// failed (`unfinished`).
    pub drain: Duration,
    /// A request that starts more than this after its intended time counts as late (timer
    /// granularity makes every start up to a millisecond or so late).
    pub late_after: Duration,
}

impl LoadPlan {
    /// A plan of `model` and `mix`, seed 0, default buckets and workers, a 10 s drain, late
    /// after 10 ms.
    pub fn new(model: Model, mix: Mix) -> LoadPlan {
        LoadPlan {
            model,
            mix,
            seed: 0,
            bucket: None,
            workers: None,
            drain: Duration::from_secs(10),
            late_after: Duration::from_millis(10),
        }
    }

    /// The same plan with `seed`.
    pub fn seed(mut self, seed: u64) -> LoadPlan {
        self.seed = seed;
        self
    }

    /// The same plan driven from `workers` tasks.
    pub fn workers(mut self, workers: usize) -> LoadPlan {
        self.workers = Some(workers.max(1));
        self
    }

    /// The bucket width in effect.
    pub fn bucket_width(&self) -> Duration {
        if let Some(width) = self.bucket {
            return width.max(Duration::from_millis(1));
        }
        let duration = self.model.duration();
        if duration >= Duration::from_secs(30) {
            Duration::from_secs(1)
        } else {
            (duration / 30).max(Duration::from_millis(10))
        }
    }
}

/// `duration` in whole nanoseconds, saturating.
pub(crate) fn duration_ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_arrival_schedule() {
        let model = OpenModel {
            stages: vec![
                RateStage {
                    duration: Duration::from_secs(1),
                    rate: 10.0,
                },
                RateStage {
                    duration: Duration::from_secs(1),
                    rate: 20.0,
                },
            ],
            ..OpenModel::constant(1.0, Duration::from_secs(1))
        };
        let schedule = model.schedule();
        assert_eq!(schedule.total, 30);
        assert_eq!(schedule.intended_ns(0), Some(0));
        assert_eq!(schedule.intended_ns(9), Some(900_000_000));
        assert_eq!(schedule.intended_ns(10), Some(1_000_000_000));
        assert_eq!(schedule.intended_ns(11), Some(1_050_000_000));
        assert_eq!(schedule.intended_ns(30), None);
        assert_eq!(schedule.rate_at(1_500_000_000), 20.0);
        assert_eq!(schedule.rate_at(2_500_000_000), 0.0);
    }

    #[test]
    fn mix_picks_by_weight() {
        let mix = Mix::new(vec![(Operation::CacheGet, 1.0), (Operation::CacheSet, 3.0)])
            .expect("valid weights");
        assert_eq!(mix.pick(0.0), 0);
        assert_eq!(mix.pick(0.24), 0);
        assert_eq!(mix.pick(0.25), 1);
        assert_eq!(mix.pick(0.999), 1);
        assert!(Mix::new(vec![(Operation::NoOp, 0.0)]).is_none());
        assert!(Mix::new(vec![(Operation::NoOp, f64::NAN)]).is_none());
    }
}
