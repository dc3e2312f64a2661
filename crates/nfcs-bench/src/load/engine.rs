//! The engine: worker tasks that drive virtual users (closed model) or arrivals (open model)
//! and record every response in their own histograms.
//!
//! Each worker is one tokio task holding a set of requests in flight
//! ([`FuturesUnordered`]): a request is a future that waits for its intended start, sends the
//! operation and reads the clock at its response. The worker records the response in its own
//! [`Recorder`] (no lock, no atomic per request) and schedules what follows: the user's next
//! request, or the next arrival of the shared schedule (one atomic counter hands arrivals out
//! in order). No task is spawned per request; the clock is read twice per request (once more
//! when the request must wait for its start).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use indicatif::ProgressBar;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use crate::load::plan::{ClosedModel, LoadPlan, Model, Schedule, duration_ns};
use crate::load::result::{LoadResult, Recorder};
use crate::load::target::{Operation, Target, TargetError};

/// Why a load run could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The plan cannot run (no users, no arrivals, no time).
    #[error("the load plan cannot run: {0}")]
    Plan(String),
    /// A worker task panicked or was cancelled.
    #[error("a load worker failed: {0}")]
    Worker(String),
}

/// A response, as the request future hands it to its worker.
struct Done {
    /// The user (closed) or 0 (open).
    user: usize,
    /// The operation's index in the mix.
    operation: usize,
    intended_ns: u64,
    start_ns: u64,
    end_ns: u64,
    outcome: Result<(), TargetError>,
}

/// Nanoseconds from `t0` to `at` (0 before it).
fn since(t0: Instant, at: Instant) -> u64 {
    duration_ns(at.saturating_duration_since(t0))
}

/// One request: wait for the intended start, send, read the clock.
async fn request(
    target: &dyn Target,
    operation: &Operation,
    indices: (usize, usize),
    number: u64,
    t0: Instant,
    intended_ns: u64,
) -> Done {
    let intended = t0 + Duration::from_nanos(intended_ns);
    let mut start = Instant::now();
    if intended > start {
        tokio::time::sleep_until(intended.into()).await;
        start = Instant::now();
    }
    let outcome = target.execute(operation, number).await;
    let end = Instant::now();
    Done {
        user: indices.0,
        operation: indices.1,
        intended_ns,
        start_ns: since(t0, start),
        end_ns: since(t0, end),
        outcome,
    }
}

/// A uniform number in `[0, 1)` from `seed` and `index` (SplitMix64's finaliser): the open
/// model's operation choice of arrival `index`, the same whichever worker sends it.
fn unit(seed: u64, index: u64) -> f64 {
    let mut z = seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Runs `plan` against `target`, advancing `progress` (a [`Progress::timed`] bar, or
/// [`ProgressBar::hidden`]) with the elapsed time. Needs a multi-threaded tokio runtime to use
/// more than one core.
///
/// [`Progress::timed`]: crate::progress::Progress::timed
///
/// # Errors
/// [`LoadError::Plan`] for a plan without users, arrivals or duration; [`LoadError::Worker`]
/// when a worker task panics (a target that panics).
pub async fn run(
    target: Arc<dyn Target>,
    plan: &LoadPlan,
    progress: &ProgressBar,
) -> Result<LoadResult, LoadError> {
    let duration = plan.model.duration();
    if duration.is_zero() {
        return Err(LoadError::Plan("the stages last no time".to_owned()));
    }
    let workers = plan
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let width = plan.bucket_width();
    let names: Vec<String> = plan
        .mix
        .operations()
        .iter()
        .map(|(operation, _)| operation.name().to_owned())
        .collect();
    let ticker = {
        let progress = progress.clone();
        let started = Instant::now();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(100));
            loop {
                interval.tick().await;
                crate::progress::Progress::set_elapsed(&progress, started.elapsed().min(duration));
            }
        })
    };
    let t0 = Instant::now() + Duration::from_millis(1);
    let mut handles = Vec::with_capacity(workers);
    match &plan.model {
        Model::Closed(model) => {
            let users = model.max_users();
            if users == 0 {
                ticker.abort();
                return Err(LoadError::Plan("the stages have no users".to_owned()));
            }
            let model = Arc::new(model.clone());
            for worker in 0..workers {
                let (target, model, plan) = (Arc::clone(&target), Arc::clone(&model), plan.clone());
                handles.push(tokio::spawn(async move {
                    closed_worker(&*target, &model, &plan, worker, workers, t0).await
                }));
            }
        }
        Model::Open(model) => {
            let schedule = model.schedule();
            if schedule.total == 0 {
                ticker.abort();
                return Err(LoadError::Plan("the stages have no arrivals".to_owned()));
            }
            let shared = Arc::new((schedule, AtomicU64::new(0)));
            let per_worker = model.max_in_flight.max(1).div_ceil(workers).max(1);
            for _ in 0..workers {
                let (target, shared, plan) =
                    (Arc::clone(&target), Arc::clone(&shared), plan.clone());
                let drop_after = duration_ns(model.drop_after);
                handles.push(tokio::spawn(async move {
                    let (schedule, next) = &*shared;
                    open_worker(&*target, schedule, next, &plan, per_worker, drop_after, t0).await
                }));
            }
        }
    }
    let mut recorders = Vec::with_capacity(workers);
    let mut failure = None;
    for handle in handles {
        match handle.await {
            Ok(recorder) => recorders.push(recorder),
            Err(error) => failure = Some(error.to_string()),
        }
    }
    ticker.abort();
    let elapsed = t0.elapsed();
    crate::progress::Progress::set_elapsed(progress, duration);
    if let Some(error) = failure {
        return Err(LoadError::Worker(error));
    }
    Ok(match &plan.model {
        Model::Closed(model) => Recorder::finish(
            recorders,
            "closed",
            target.name().to_owned(),
            names,
            width,
            duration,
            elapsed,
            |t| Some(model.users_at(t).floor()),
            |_| 0.0,
        ),
        Model::Open(model) => {
            let schedule = model.schedule();
            Recorder::finish(
                recorders,
                "open",
                target.name().to_owned(),
                names,
                width,
                duration,
                elapsed,
                |_| None,
                |t| schedule.rate_at(duration_ns(t)),
            )
        }
    })
}

/// A user of the closed model, as its worker keeps it.
struct User {
    rng: SmallRng,
    /// Its global index.
    index: u64,
    /// Requests it sent.
    sent: u64,
    /// When it stops, ns since the start.
    stop_ns: u64,
}

/// Drives users `worker`, `worker + workers`, ... of `model`.
async fn closed_worker(
    target: &dyn Target,
    model: &ClosedModel,
    plan: &LoadPlan,
    worker: usize,
    workers: usize,
    t0: Instant,
) -> Recorder {
    let mix = &plan.mix;
    let mut recorder = Recorder::new(mix.operations().len(), plan.bucket_width(), plan.late_after);
    let total_users = u64::from(model.max_users());
    let end_ns = duration_ns(model.duration());
    let mut users = Vec::new();
    let mut inflight = FuturesUnordered::new();
    // Requests in flight per operation (what counts as unfinished when the drain runs out).
    let mut pending = vec![0_u64; mix.operations().len()];
    for k in (worker..usize::try_from(total_users).unwrap_or(usize::MAX)).step_by(workers) {
        let Some((start, stop)) = model.user_interval(k as u32) else {
            continue;
        };
        let (start_ns, stop_ns) = (duration_ns(start), duration_ns(stop).min(end_ns));
        if start_ns >= stop_ns {
            continue;
        }
        let mut rng =
            SmallRng::seed_from_u64(plan.seed ^ (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let operation = mix.pick(rng.random());
        let local = users.len();
        pending[operation] += 1;
        users.push(User {
            rng,
            index: k as u64,
            sent: 1,
            stop_ns,
        });
        inflight.push(request(
            target,
            mix.operation(operation),
            (local, operation),
            k as u64,
            t0,
            start_ns,
        ));
    }
    let deadline = t0 + Duration::from_nanos(end_ns) + plan.drain;
    let drive = async {
        while let Some(done) = inflight.next().await {
            let Done {
                user,
                operation,
                intended_ns,
                start_ns,
                end_ns: response_ns,
                outcome,
            } = done;
            pending[operation] -= 1;
            recorder.response(operation, intended_ns, start_ns, response_ns, outcome);
            let state = &mut users[user];
            let service = response_ns.saturating_sub(start_ns);
            let think = model.think.sample_ns(&mut state.rng);
            let next_ns = intended_ns.saturating_add(service).saturating_add(think);
            // A user stops at its stop time by its schedule, and by the clock: a user whose
            // schedule fell behind (no think time to catch up in) must not run past the end.
            if next_ns < state.stop_ns && response_ns < state.stop_ns {
                let operation = mix.pick(state.rng.random());
                let number = state.sent * total_users + state.index;
                state.sent += 1;
                pending[operation] += 1;
                inflight.push(request(
                    target,
                    mix.operation(operation),
                    (user, operation),
                    number,
                    t0,
                    next_ns,
                ));
            }
        }
    };
    let drained = tokio::time::timeout_at(deadline.into(), drive)
        .await
        .is_ok();
    if !drained {
        for (operation, count) in pending.into_iter().enumerate() {
            recorder.unfinished(operation, count);
        }
    }
    recorder
}

/// Takes arrivals from the shared schedule in order and keeps up to `slots` of them in
/// flight.
///
/// An arrival is claimed from the shared counter when this worker has room; one that is not
/// due yet is held (one at a time) while the worker waits for it or for a response, so the
/// requests in flight are started ones and the worker sets one timer per wait, not one per
/// arrival (at high rates, every arrival due when the timer fires starts at once).
#[allow(clippy::too_many_arguments)]
async fn open_worker(
    target: &dyn Target,
    schedule: &Schedule,
    next: &AtomicU64,
    plan: &LoadPlan,
    slots: usize,
    drop_after_ns: u64,
    t0: Instant,
) -> Recorder {
    let mix = &plan.mix;
    let mut recorder = Recorder::new(mix.operations().len(), plan.bucket_width(), plan.late_after);
    let mut inflight = FuturesUnordered::new();
    let mut pending = vec![0_u64; mix.operations().len()];
    let deadline = t0 + Duration::from_nanos(schedule.end_ns) + plan.drain;
    let drive = async {
        let mut exhausted = false;
        // A claimed arrival that is not due yet: (index, intended ns).
        let mut held: Option<(u64, u64)> = None;
        loop {
            // Start every due arrival there is room for; drop those too late to send.
            let mut now_ns = since(t0, Instant::now());
            while inflight.len() < slots {
                let (index, intended_ns) = match held.take() {
                    Some(arrival) => arrival,
                    None if exhausted => break,
                    None => {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(intended_ns) = schedule.intended_ns(index) else {
                            exhausted = true;
                            break;
                        };
                        (index, intended_ns)
                    }
                };
                if intended_ns > now_ns {
                    now_ns = since(t0, Instant::now());
                    if intended_ns > now_ns {
                        held = Some((index, intended_ns));
                        break;
                    }
                }
                if now_ns - intended_ns > drop_after_ns {
                    recorder.dropped(intended_ns);
                    continue;
                }
                let operation = mix.pick(unit(plan.seed, index));
                pending[operation] += 1;
                inflight.push(request(
                    target,
                    mix.operation(operation),
                    (0, operation),
                    index,
                    t0,
                    intended_ns,
                ));
            }
            // Wait for a response, or for the held arrival when there is room for it.
            let wake = held
                .filter(|_| inflight.len() < slots)
                .map(|(_, intended_ns)| t0 + Duration::from_nanos(intended_ns));
            let done = match wake {
                Some(wake) if inflight.is_empty() => {
                    tokio::time::sleep_until(wake.into()).await;
                    continue;
                }
                Some(wake) => tokio::select! {
                    biased;
                    done = inflight.next() => done,
                    () = tokio::time::sleep_until(wake.into()) => continue,
                },
                None => inflight.next().await,
            };
            let Some(Done {
                operation,
                intended_ns,
                start_ns,
                end_ns,
                outcome,
                ..
            }) = done
            else {
                if exhausted && held.is_none() {
                    break;
                }
                continue;
            };
            pending[operation] -= 1;
            recorder.response(operation, intended_ns, start_ns, end_ns, outcome);
        }
    };
    let drained = tokio::time::timeout_at(deadline.into(), drive)
        .await
        .is_ok();
    if !drained {
        for (operation, count) in pending.into_iter().enumerate() {
            recorder.unfinished(operation, count);
        }
    }
    recorder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_is_uniform_enough() {
        let mean = (0..10_000).map(|i| unit(7, i)).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        assert!((0..10_000).all(|i| (0.0..1.0).contains(&unit(3, i))));
    }
}
