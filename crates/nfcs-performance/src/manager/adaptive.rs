//! Adaptive sizing of the memory tier: online miss-ratio curves of both eviction policies
//! ([`nfcs_cache_core::mrc`], from a spatial sample of the keys read), and a controller that
//! resizes the budget within bounds to reach a target hit ratio with the least memory, and
//! switches between LRU and S3-FIFO when the curves say the other does better.
//!
//! The read path takes the hash the memory tier located each key by and, for the sampled keys
//! (1 % by default), appends `(hash, key length, value length)` to a buffer; a background thread, woken when the buffer
//! fills (or [`AdaptiveSizing::evaluate_now`]), feeds the buffer to the estimator, so a read
//! pays one comparison and, one time in a hundred, a push. Every evaluation:
//!
//! 1. ages the curves (counts halved by default), so they follow the workload;
//! 2. finds the smallest budget whose predicted hit ratio reaches the target plus half the
//!    hysteresis band, clamped to `[min_bytes, max_bytes]`;
//! 3. grows at once when that is more than 10 % above the budget; shrinks only when two
//!    evaluations in a row want at least 10 % less (so a dip does not give memory back);
//! 4. switches policy when the other policy's curve predicts a hit ratio at least
//!    `switch_margin` higher at the chosen size in two evaluations in a row, and not again
//!    for five evaluations.
//!
//! [`decide`] is that rule as a pure function (curves and state in, action out).

use std::sync::Arc;
use std::time::Duration;

use nfcs_cache_core::mrc::{MissRatioCurve, MrcConfig, MrcEstimator, Sampling};
use nfcs_cache_core::{CacheError, EvictionPolicy, MemoryCache};
use parking_lot::Mutex;
use serde::Serialize;

/// Sampled reads buffered before the background thread is woken to count them (or, without a
/// thread, before the reader that fills the buffer counts them itself).
const BUFFER: usize = 4_096;
/// Sampled reads buffered at most: beyond, while the thread catches up, samples are dropped
/// (and counted) rather than slowing reads down.
const MAX_BUFFER: usize = 8 * BUFFER;
/// A curve needs this many sampled reads (after decay) before the controller trusts it.
const MIN_SAMPLED_READS: f64 = 500.0;
/// Resizes smaller than this fraction of the budget are not worth making.
const RESIZE_BAND: f64 = 0.10;
/// Evaluations a switch of policy blocks the next one for.
const SWITCH_COOLDOWN: u32 = 5;

/// How the memory tier adapts; built from `[memory]` (`adaptive = true`) by `from_config`,
/// or given to [`ManagerBuilder::adaptive`](super::ManagerBuilder::adaptive).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AdaptiveConfig {
    /// The smallest budget the controller sets.
    pub min_bytes: u64,
    /// The largest budget the controller sets.
    pub max_bytes: u64,
    /// The hit ratio to reach with the least memory.
    pub target_hit_ratio: f64,
    /// The hysteresis band around the target (the controller aims at `target + band / 2`).
    pub hysteresis: f64,
    /// The fraction of keys sampled.
    pub sampling_rate: f64,
    /// How often the background thread evaluates (`None`: only
    /// [`AdaptiveSizing::evaluate_now`]).
    pub interval: Option<Duration>,
    /// How much of the curves each evaluation keeps (0.5: counts halve).
    pub keep: f64,
    /// Whether the controller may switch the eviction policy.
    pub switch_policy: bool,
    /// The predicted hit-ratio gain that justifies a switch.
    pub switch_margin: f64,
    /// Only build the curves: evaluations decide but change nothing (the budget and policy
    /// are left to the caller, as `nfcs-bench optimize` does).
    pub observe_only: bool,
}

impl AdaptiveConfig {
    /// Budgets between `min_bytes` and `max_bytes`, target 0.9, band 0.02, 1 % sampling,
    /// evaluated every 10 s, policy switching on with a margin of 0.02.
    pub fn new(min_bytes: u64, max_bytes: u64) -> AdaptiveConfig {
        AdaptiveConfig {
            min_bytes,
            max_bytes,
            target_hit_ratio: 0.9,
            hysteresis: 0.02,
            sampling_rate: nfcs_cache_core::mrc::DEFAULT_SAMPLING_RATE,
            interval: Some(Duration::from_secs(10)),
            keep: 0.5,
            switch_policy: true,
            switch_margin: 0.02,
            observe_only: false,
        }
    }

    /// Sets whether evaluations only observe.
    #[must_use]
    pub fn observe_only(mut self, observe: bool) -> AdaptiveConfig {
        self.observe_only = observe;
        self
    }

    /// Sets the target hit ratio.
    #[must_use]
    pub fn target_hit_ratio(mut self, target: f64) -> AdaptiveConfig {
        self.target_hit_ratio = target;
        self
    }

    /// Sets the sampling rate.
    #[must_use]
    pub fn sampling_rate(mut self, rate: f64) -> AdaptiveConfig {
        self.sampling_rate = rate;
        self
    }

    /// Sets the evaluation interval.
    #[must_use]
    pub fn interval(mut self, interval: Option<Duration>) -> AdaptiveConfig {
        self.interval = interval;
        self
    }

    /// Sets whether the policy may be switched.
    #[must_use]
    pub fn switch_policy(mut self, switch: bool) -> AdaptiveConfig {
        self.switch_policy = switch;
        self
    }

    /// Sets how much of the curves each evaluation keeps.
    #[must_use]
    pub fn keep(mut self, keep: f64) -> AdaptiveConfig {
        self.keep = keep;
        self
    }

    fn validate(&self) -> Result<(), CacheError> {
        let invalid = |reason: String| {
            Err(CacheError::InvalidCapacity {
                tier: "adaptive memory".to_owned(),
                reason,
            })
        };
        if self.min_bytes == 0 || self.min_bytes >= self.max_bytes {
            return invalid(format!(
                "the bounds must satisfy 0 < min < max, not {}..{}",
                self.min_bytes, self.max_bytes
            ));
        }
        if !(self.target_hit_ratio > 0.0 && self.target_hit_ratio < 1.0) {
            return invalid(format!(
                "the target hit ratio must be in (0, 1), not {}",
                self.target_hit_ratio
            ));
        }
        for (name, value) in [
            ("hysteresis", self.hysteresis),
            ("keep", self.keep),
            ("switch_margin", self.switch_margin),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return invalid(format!("{name} must be in [0, 1], not {value}"));
            }
        }
        Ok(())
    }
}

/// What the controller did at one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
#[non_exhaustive]
pub enum SizingAction {
    /// Nothing changed, and why.
    Keep {
        /// Why, in words.
        reason: String,
    },
    /// The budget changed.
    Resize {
        /// The budget before.
        from: u64,
        /// The budget after.
        to: u64,
        /// The hit ratio the curve predicts at `to`.
        predicted_hit_ratio: f64,
    },
    /// The eviction policy changed.
    SwitchPolicy {
        /// The policy before.
        from: EvictionPolicy,
        /// The policy after.
        to: EvictionPolicy,
        /// The predicted hit ratios (before, after) at the budget.
        predicted: (f64, f64),
    },
}

/// The controller's memory between evaluations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ControllerState {
    /// Evaluations in a row that wanted a smaller budget.
    pub shrink_votes: u32,
    /// Evaluations in a row in which the other policy predicted better.
    pub switch_votes: u32,
    /// Evaluations until a switch is allowed again.
    pub cooldown: u32,
}

/// The sizing rule (see the module documentation): from the curves of both policies, the
/// current budget and policy, and the state, the action to take.
pub fn decide(
    config: &AdaptiveConfig,
    budget: u64,
    policy: EvictionPolicy,
    lru: &MissRatioCurve,
    s3fifo: &MissRatioCurve,
    state: &mut ControllerState,
) -> SizingAction {
    let (curve, other, other_policy) = match policy {
        EvictionPolicy::S3Fifo => (s3fifo, lru, EvictionPolicy::Lru),
        _ => (lru, s3fifo, EvictionPolicy::S3Fifo),
    };
    state.cooldown = state.cooldown.saturating_sub(1);
    if curve.sampled_reads < MIN_SAMPLED_READS || curve.points.is_empty() {
        return SizingAction::Keep {
            reason: format!(
                "{:.0} sampled reads so far; the curve needs {MIN_SAMPLED_READS:.0}",
                curve.sampled_reads
            ),
        };
    }
    let aim = (config.target_hit_ratio + config.hysteresis / 2.0).min(1.0);
    let want = curve
        .smallest_size_reaching(aim)
        .unwrap_or(config.max_bytes)
        .clamp(config.min_bytes, config.max_bytes);
    // The policy: compared at the size the current one wants.
    if config.switch_policy && !other.points.is_empty() && other.sampled_reads >= MIN_SAMPLED_READS
    {
        let (mine, theirs) = (curve.hit_ratio_at(want), other.hit_ratio_at(want));
        if theirs >= mine + config.switch_margin && state.cooldown == 0 {
            state.switch_votes += 1;
            if state.switch_votes >= 2 {
                state.switch_votes = 0;
                state.shrink_votes = 0;
                state.cooldown = SWITCH_COOLDOWN;
                return SizingAction::SwitchPolicy {
                    from: policy,
                    to: other_policy,
                    predicted: (mine, theirs),
                };
            }
        } else {
            state.switch_votes = 0;
        }
    }
    let budget_f = budget as f64;
    if want as f64 > budget_f * (1.0 + RESIZE_BAND) || (want > budget && budget < config.min_bytes)
    {
        state.shrink_votes = 0;
        return SizingAction::Resize {
            from: budget,
            to: want,
            predicted_hit_ratio: curve.hit_ratio_at(want),
        };
    }
    if (want as f64) < budget_f * (1.0 - RESIZE_BAND) {
        state.shrink_votes += 1;
        if state.shrink_votes >= 2 {
            state.shrink_votes = 0;
            return SizingAction::Resize {
                from: budget,
                to: want,
                predicted_hit_ratio: curve.hit_ratio_at(want),
            };
        }
        return SizingAction::Keep {
            reason: format!("{want} bytes would do; shrinking once it is wanted twice in a row"),
        };
    }
    state.shrink_votes = 0;
    SizingAction::Keep {
        reason: format!(
            "the budget is within {:.0} % of the {want} bytes that reach the target",
            RESIZE_BAND * 100.0
        ),
    }
}

/// One sampled read.
#[derive(Clone, Copy)]
struct Sample {
    hash: u64,
    key_len: u32,
    /// `u32::MAX`: unknown.
    value_len: u32,
    /// A write (no read counted), not a read.
    write: bool,
}

struct Shared {
    config: AdaptiveConfig,
    sampling: Sampling,
    buffer: Mutex<Vec<Sample>>,
    /// Wakes the background thread (`None`: there is none; readers drain themselves).
    wake: Option<std::sync::mpsc::SyncSender<()>>,
    /// Samples dropped because the thread lagged.
    dropped: std::sync::atomic::AtomicU64,
    model: Mutex<Model>,
    memory: MemoryCache,
}

struct Model {
    estimator: MrcEstimator,
    state: ControllerState,
    /// The memory tier's read count at the last evaluation.
    reads_seen: u64,
    history: Vec<SizingAction>,
}

/// The memory tier's adaptive sizing ([`NFCSCacheManager::adaptive`](super::NFCSCacheManager::adaptive)).
#[derive(Clone)]
pub struct AdaptiveSizing {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AdaptiveSizing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdaptiveSizing")
            .field("config", &self.shared.config)
            .finish()
    }
}

impl AdaptiveSizing {
    pub(super) fn new(
        config: AdaptiveConfig,
        memory: MemoryCache,
    ) -> Result<AdaptiveSizing, CacheError> {
        config.validate()?;
        let estimator = MrcEstimator::new(
            MrcConfig::new(config.min_bytes, config.max_bytes).rate(config.sampling_rate),
        )?;
        let stats = memory.stats();
        let (wake, woken) = match config.interval {
            Some(_) => {
                let (sender, receiver) = std::sync::mpsc::sync_channel(1);
                (Some(sender), Some(receiver))
            }
            None => (None, None),
        };
        let shared = Arc::new(Shared {
            sampling: estimator.sampling(),
            buffer: Mutex::new(Vec::with_capacity(BUFFER)),
            wake,
            dropped: std::sync::atomic::AtomicU64::new(0),
            model: Mutex::new(Model {
                estimator,
                state: ControllerState::default(),
                reads_seen: stats.hits + stats.misses,
                history: Vec::new(),
            }),
            config,
            memory,
        });
        if let (Some(interval), Some(woken)) = (shared.config.interval, woken) {
            let weak = Arc::downgrade(&shared);
            let spawned = std::thread::Builder::new()
                .name("nfcs-adaptive".to_owned())
                .spawn(move || {
                    let mut last = std::time::Instant::now();
                    loop {
                        let wait = interval.saturating_sub(last.elapsed());
                        match woken.recv_timeout(wait) {
                            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                        }
                        let Some(shared) = weak.upgrade() else {
                            return;
                        };
                        let adaptive = AdaptiveSizing { shared };
                        if last.elapsed() >= interval {
                            last = std::time::Instant::now();
                            adaptive.evaluate_now();
                        } else {
                            adaptive.drain();
                        }
                    }
                });
            if let Err(error) = spawned {
                tracing::warn!(%error, "the adaptive-sizing thread could not be started; evaluate_now still works");
            }
        }
        Ok(AdaptiveSizing { shared })
    }

    /// Records a read of a key (valid, `key_len` bytes, hashed by the memory tier's
    /// [`key_hash`](MemoryCache::key_hash)) whose value is `value_len` bytes (`None`: not
    /// found).
    #[inline]
    pub(super) fn record_read(&self, hash: u64, key_len: usize, value_len: Option<usize>) {
        if self.shared.sampling.is_sampled(hash) {
            self.record_sampled(hash, key_len, value_len);
        }
    }

    #[cold]
    fn record_sampled(&self, hash: u64, key_len: usize, value_len: Option<usize>) {
        let sample = Sample {
            hash,
            key_len: key_len as u32,
            value_len: value_len.map_or(u32::MAX, |len| len.min(u32::MAX as usize - 1) as u32),
            write: false,
        };
        self.push(sample);
    }

    /// Records a write of a key (valid, `key_len` bytes, hashed as for
    /// [`record_read`](Self::record_read)) of `value_len` bytes.
    #[inline]
    pub(super) fn record_write(&self, hash: u64, key_len: usize, value_len: usize) {
        if self.shared.sampling.is_sampled(hash) {
            self.push(Sample {
                hash,
                key_len: key_len as u32,
                value_len: value_len.min(u32::MAX as usize - 1) as u32,
                write: true,
            });
        }
    }

    fn push(&self, sample: Sample) {
        let buffered = {
            let mut buffer = self.shared.buffer.lock();
            if buffer.len() >= MAX_BUFFER {
                self.shared
                    .dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return;
            }
            buffer.push(sample);
            buffer.len()
        };
        if buffered == BUFFER {
            match &self.shared.wake {
                Some(wake) => {
                    let _ = wake.try_send(());
                }
                None => self.drain(),
            }
        } else if buffered > BUFFER && self.shared.wake.is_none() {
            self.drain();
        }
    }

    /// Feeds the buffered samples to the estimator.
    fn drain(&self) {
        let mut model = self.shared.model.lock();
        let samples = std::mem::take(&mut *self.shared.buffer.lock());
        for sample in samples {
            if sample.write {
                model.estimator.record_write(
                    sample.hash,
                    sample.key_len as usize,
                    sample.value_len as usize,
                );
                continue;
            }
            let value_len = (sample.value_len != u32::MAX).then_some(sample.value_len as usize);
            model
                .estimator
                .record(sample.hash, sample.key_len as usize, value_len);
        }
    }

    /// Sampled reads dropped because the background thread had fallen behind.
    pub fn dropped_samples(&self) -> u64 {
        self.shared
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The configuration.
    pub fn config(&self) -> &AdaptiveConfig {
        &self.shared.config
    }

    /// The current curves (LRU, S3-FIFO), with every buffered sample counted.
    pub fn curves(&self) -> (MissRatioCurve, MissRatioCurve) {
        self.drain();
        let model = self.shared.model.lock();
        (
            model.estimator.curve(EvictionPolicy::Lru),
            model.estimator.curve(EvictionPolicy::S3Fifo),
        )
    }

    /// Runs one evaluation now (what the background thread does every `interval`): counts
    /// the buffered samples, decides, applies the action to the memory tier, ages the curves.
    pub fn evaluate_now(&self) -> SizingAction {
        self.drain();
        let shared = &self.shared;
        let mut model = shared.model.lock();
        let stats = shared.memory.stats();
        let reads = stats.hits + stats.misses;
        let new_reads = reads.saturating_sub(model.reads_seen);
        model.reads_seen = reads;
        model.estimator.note_reads(new_reads);
        let lru = model.estimator.curve(EvictionPolicy::Lru);
        let s3fifo = model.estimator.curve(EvictionPolicy::S3Fifo);
        let budget = shared.memory.capacity();
        let policy = shared.memory.eviction_policy();
        let mut action = decide(
            &shared.config,
            budget,
            policy,
            &lru,
            &s3fifo,
            &mut model.state,
        );
        if shared.config.observe_only && !matches!(action, SizingAction::Keep { .. }) {
            action = SizingAction::Keep {
                reason: format!("observing only; the controller would have applied {action:?}"),
            };
        }
        match &action {
            SizingAction::Resize { to, .. } => {
                if let Err(error) = shared.memory.resize(*to) {
                    tracing::warn!(%error, "the memory tier refused the new budget");
                }
            }
            SizingAction::SwitchPolicy { to, .. } => {
                shared.memory.set_eviction_policy(*to);
            }
            SizingAction::Keep { .. } => {}
        }
        if !matches!(action, SizingAction::Keep { .. }) {
            tracing::info!(?action, "adaptive sizing");
        }
        model.estimator.decay(shared.config.keep);
        model.history.push(action.clone());
        if model.history.len() > 1_000 {
            model.history.remove(0);
        }
        action
    }

    /// The actions of the last (up to) 1,000 evaluations, oldest first.
    pub fn history(&self) -> Vec<SizingAction> {
        self.shared.model.lock().history.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfcs_cache_core::mrc::CurvePoint;

    fn curve(policy: EvictionPolicy, points: &[(u64, f64)]) -> MissRatioCurve {
        MissRatioCurve {
            policy,
            points: points
                .iter()
                .map(|&(bytes, miss_ratio)| CurvePoint { bytes, miss_ratio })
                .collect(),
            sampled_reads: 10_000.0,
        }
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn grows_at_once_and_shrinks_only_when_asked_twice() {
        let config = AdaptiveConfig::new(MIB, 64 * MIB).switch_policy(false);
        let lru = curve(
            EvictionPolicy::Lru,
            &[(MIB, 0.5), (16 * MIB, 0.09), (64 * MIB, 0.01)],
        );
        let none = curve(EvictionPolicy::S3Fifo, &[]);
        let mut state = ControllerState::default();
        let action = decide(
            &config,
            2 * MIB,
            EvictionPolicy::Lru,
            &lru,
            &none,
            &mut state,
        );
        let SizingAction::Resize {
            to,
            predicted_hit_ratio,
            ..
        } = action
        else {
            panic!("{action:?}");
        };
        assert!(
            to >= 16 * MIB && predicted_hit_ratio >= 0.91 - 1e-9,
            "{to} {predicted_hit_ratio}"
        );
        // Within the band: kept.
        let kept = decide(&config, to, EvictionPolicy::Lru, &lru, &none, &mut state);
        assert!(matches!(kept, SizingAction::Keep { .. }), "{kept:?}");
        // The workload shrank: the first evaluation only votes, the second shrinks.
        let small = curve(EvictionPolicy::Lru, &[(MIB, 0.05), (64 * MIB, 0.01)]);
        let first = decide(&config, to, EvictionPolicy::Lru, &small, &none, &mut state);
        assert!(matches!(first, SizingAction::Keep { .. }), "{first:?}");
        let second = decide(&config, to, EvictionPolicy::Lru, &small, &none, &mut state);
        assert_eq!(
            second,
            SizingAction::Resize {
                from: to,
                to: MIB,
                predicted_hit_ratio: 0.95
            }
        );
    }

    #[test]
    fn a_curve_that_never_reaches_the_target_asks_for_the_maximum() {
        let config = AdaptiveConfig::new(MIB, 8 * MIB).switch_policy(false);
        let lru = curve(EvictionPolicy::Lru, &[(MIB, 0.9), (8 * MIB, 0.5)]);
        let none = curve(EvictionPolicy::S3Fifo, &[]);
        let mut state = ControllerState::default();
        let action = decide(&config, MIB, EvictionPolicy::Lru, &lru, &none, &mut state);
        assert!(
            matches!(action, SizingAction::Resize { to, .. } if to == 8 * MIB),
            "{action:?}"
        );
        // At the maximum, nothing more can be done.
        let action = decide(
            &config,
            8 * MIB,
            EvictionPolicy::Lru,
            &lru,
            &none,
            &mut state,
        );
        assert!(matches!(action, SizingAction::Keep { .. }), "{action:?}");
    }

    #[test]
    fn switches_policy_when_the_other_wins_twice_then_cools_down() {
        let config = AdaptiveConfig::new(MIB, 64 * MIB);
        let lru = curve(EvictionPolicy::Lru, &[(MIB, 0.5), (64 * MIB, 0.05)]);
        let s3fifo = curve(EvictionPolicy::S3Fifo, &[(MIB, 0.3), (64 * MIB, 0.04)]);
        let mut state = ControllerState::default();
        let budget = lru.smallest_size_reaching(0.91).unwrap();
        let first = decide(
            &config,
            budget,
            EvictionPolicy::Lru,
            &lru,
            &s3fifo,
            &mut state,
        );
        assert!(matches!(first, SizingAction::Keep { .. }), "{first:?}");
        let second = decide(
            &config,
            budget,
            EvictionPolicy::Lru,
            &lru,
            &s3fifo,
            &mut state,
        );
        assert!(
            matches!(
                second,
                SizingAction::SwitchPolicy {
                    to: EvictionPolicy::S3Fifo,
                    ..
                }
            ),
            "{second:?}"
        );
        // Even if LRU now looked better, no switch back during the cooldown.
        for _ in 0..3 {
            let action = decide(
                &config,
                budget,
                EvictionPolicy::S3Fifo,
                &lru,
                &s3fifo,
                &mut state,
            );
            assert!(
                !matches!(action, SizingAction::SwitchPolicy { .. }),
                "{action:?}"
            );
        }
    }

    #[test]
    fn too_few_samples_change_nothing() {
        let config = AdaptiveConfig::new(MIB, 64 * MIB);
        let mut lru = curve(EvictionPolicy::Lru, &[(MIB, 0.9), (64 * MIB, 0.5)]);
        lru.sampled_reads = 10.0;
        let mut state = ControllerState::default();
        let action = decide(
            &config,
            MIB,
            EvictionPolicy::Lru,
            &lru,
            &lru.clone(),
            &mut state,
        );
        assert!(
            matches!(action, SizingAction::Keep { ref reason } if reason.contains("sampled")),
            "{action:?}"
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        let memory = MemoryCache::new(MIB).unwrap();
        for config in [
            AdaptiveConfig::new(0, MIB),
            AdaptiveConfig::new(MIB, MIB),
            AdaptiveConfig::new(MIB, 2 * MIB).target_hit_ratio(1.0),
            AdaptiveConfig::new(MIB, 2 * MIB).target_hit_ratio(f64::NAN),
            AdaptiveConfig::new(MIB, 2 * MIB).keep(2.0),
            AdaptiveConfig::new(MIB, 2 * MIB).sampling_rate(0.0),
        ] {
            assert!(AdaptiveSizing::new(config.interval(None), memory.clone()).is_err());
        }
    }
}
