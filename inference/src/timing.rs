//! Where prediction time goes: preprocessing, the network's forward passes, the sliding window's
//! own work (tiling, Gaussian weighting, accumulation; "accumulation" below) and export.
//!
//! A [`PhaseClock`] is a cheap handle to shared counters: clones add to the same totals, from
//! any thread, so the preprocessing thread of `autoseg predict` and the predicting thread report
//! to one clock. [`PhaseTimes`] is a snapshot in seconds. The split matches the one measured
//! for nnU-Net by `scripts/compare_nnunet_predict.py`: accumulation is the sliding window's time
//! minus the time inside the network.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tch::{Device, Tensor};

use crate::{InferenceError, Segmenter};

/// A timed part of predicting a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Reading the channel files and preprocessing them (crop, resample, normalise).
    Preprocessing,
    /// Inside the network's forward passes (every tile, mirror and fold).
    Network,
    /// The whole sliding window of all folds, network passes included.
    SlidingWindow,
    /// Export to the input's geometry and writing the files.
    Export,
}

impl Phase {
    fn index(self) -> usize {
        match self {
            Phase::Preprocessing => 0,
            Phase::Network => 1,
            Phase::SlidingWindow => 2,
            Phase::Export => 3,
        }
    }
}

/// Seconds spent per phase over the cases predicted so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PhaseTimes {
    /// Reading and preprocessing.
    pub preprocessing: f64,
    /// Inside the network.
    pub network: f64,
    /// The sliding window's time outside the network (tiling, weighting, accumulating,
    /// dividing, fold averaging).
    pub accumulation: f64,
    /// Export and writing the files.
    pub export: f64,
    /// Cases predicted.
    pub cases: usize,
}

impl PhaseTimes {
    /// The sum of the phases, in seconds (more than the wall time when preprocessing overlaps
    /// prediction on another thread).
    pub fn total(&self) -> f64 {
        self.preprocessing + self.network + self.accumulation + self.export
    }
}

/// The shared counters behind a [`PhaseClock`].
#[derive(Debug, Default)]
struct Counters {
    nanos: [AtomicU64; 4],
    cases: AtomicU64,
}

/// A handle to thread-safe phase totals; clones share them.
#[derive(Clone, Debug, Default)]
pub struct PhaseClock {
    counters: Arc<Counters>,
}

impl PartialEq for PhaseClock {
    /// Two handles are equal when they add to the same totals.
    fn eq(&self, other: &PhaseClock) -> bool {
        Arc::ptr_eq(&self.counters, &other.counters)
    }
}

impl PhaseClock {
    /// Adds `elapsed` to `phase`.
    pub fn add(&self, phase: Phase, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.counters.nanos[phase.index()].fetch_add(nanos, Ordering::Relaxed);
    }

    /// Counts one more predicted case.
    pub fn count_case(&self) {
        self.counters.cases.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs `work` and adds its wall time to `phase`.
    pub fn time<T>(&self, phase: Phase, work: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = work();
        self.add(phase, start.elapsed());
        out
    }

    /// A guard that adds the time until it is dropped to `phase`.
    pub fn start(&self, phase: Phase) -> PhaseGuard<'_> {
        PhaseGuard {
            clock: self,
            phase,
            start: Instant::now(),
        }
    }

    /// `model`, with the time spent inside it added to [`Phase::Network`].
    pub fn timed<'a>(&'a self, model: &'a dyn Segmenter) -> TimedSegmenter<'a> {
        TimedSegmenter { clock: self, model }
    }

    /// The totals so far.
    pub fn times(&self) -> PhaseTimes {
        let seconds = |phase: Phase| {
            Duration::from_nanos(self.counters.nanos[phase.index()].load(Ordering::Relaxed))
                .as_secs_f64()
        };
        let network = seconds(Phase::Network);
        PhaseTimes {
            preprocessing: seconds(Phase::Preprocessing),
            network,
            accumulation: (seconds(Phase::SlidingWindow) - network).max(0.0),
            export: seconds(Phase::Export),
            cases: self.counters.cases.load(Ordering::Relaxed) as usize,
        }
    }
}

/// Adds the time from [`PhaseClock::start`] to its drop to a phase.
#[derive(Debug)]
pub struct PhaseGuard<'a> {
    clock: &'a PhaseClock,
    phase: Phase,
    start: Instant,
}

impl Drop for PhaseGuard<'_> {
    fn drop(&mut self) {
        self.clock.add(self.phase, self.start.elapsed());
    }
}

/// A [`Segmenter`] that adds the time inside the wrapped model to [`Phase::Network`]. On CUDA
/// it waits for the device before stopping the clock, so the time is the kernels', not the
/// launches'.
pub struct TimedSegmenter<'a> {
    clock: &'a PhaseClock,
    model: &'a dyn Segmenter,
}

impl Segmenter for TimedSegmenter<'_> {
    fn logits(&self, batch: &Tensor) -> Result<Tensor, InferenceError> {
        let start = Instant::now();
        let out = self.model.logits(batch);
        if let Ok(Device::Cuda(index)) = out.as_ref().map(Tensor::device) {
            tch::Cuda::synchronize(index as i64);
        }
        self.clock.add(Phase::Network, start.elapsed());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, TchError};

    #[test]
    fn clones_add_to_the_same_totals_from_threads() {
        let clock = PhaseClock::default();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let clock = clock.clone();
                scope.spawn(move || {
                    clock.add(Phase::Preprocessing, Duration::from_millis(250));
                    clock.add(Phase::Export, Duration::from_millis(500));
                    clock.count_case();
                });
            }
        });
        let times = clock.times();
        assert_eq!(times.preprocessing, 1.0);
        assert_eq!(times.export, 2.0);
        assert_eq!(times.cases, 4);
        assert_eq!(times.total(), 3.0);
        assert_eq!(clock, clock.clone());
        assert_ne!(clock, PhaseClock::default());
    }

    #[test]
    fn accumulation_is_the_window_minus_the_network() {
        let clock = PhaseClock::default();
        clock.add(Phase::SlidingWindow, Duration::from_millis(3500));
        clock.add(Phase::Network, Duration::from_millis(3000));
        let times = clock.times();
        assert_eq!(times.network, 3.0);
        assert_eq!(times.accumulation, 0.5);
    }

    #[test]
    fn guards_and_timed_models_measure_elapsed_time() {
        let clock = PhaseClock::default();
        let sleepy = |batch: &Tensor| -> Result<Tensor, TchError> {
            std::thread::sleep(Duration::from_millis(20));
            Ok(batch.shallow_clone())
        };
        let timed = clock.timed(&sleepy);
        let batch = Tensor::zeros([1, 1, 2, 2], (Kind::Float, Device::Cpu));
        {
            let _window = clock.start(Phase::SlidingWindow);
            for _ in 0..3 {
                let out = timed.logits(&batch).unwrap();
                assert_eq!(out.size(), vec![1, 1, 2, 2]);
            }
        }
        let times = clock.times();
        assert!(times.network >= 0.06, "network {}", times.network);
        assert!(times.accumulation < 0.05, "other {}", times.accumulation);
        let answer = clock.time(Phase::Export, || 42);
        assert_eq!(answer, 42);
        assert_eq!(clock.times().cases, 0);
    }
}
