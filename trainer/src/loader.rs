//! The training data loader: worker threads that sample, augment and assemble whole batches into
//! contiguous arrays, each feeding its own bounded queue.
//!
//! Worker `w` draws from a ChaCha8 generator seeded with `seed + w` and produces batches
//! `w, w + n, w + 2n, …`; [`DataLoader::next_batch`] takes them round-robin, so the sequence of
//! batches depends only on the seed and the number of workers, never on thread timing.
//! Dropping the loader stops and joins the workers.
//!
//! nnU-Net: `nnUNetDataLoader.generate_train_batch` inside batchgenerators'
//! `NonDetMultiThreadedAugmenter` (`nnUNet_n_proc_DA` processes, unseeded).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use ndarray::{s, Array5};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, TchError, Tensor};

use crate::augment::{Augmented, Pipeline};
use crate::sampling::{CaseSource, DataError, DrawnPatch, PatchSampler};

/// One training batch.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Network inputs `(b, c, z, y, x)`, standard layout (2D configurations: `z = 1`; drop
    /// axis 2): the image channels, then for a cascade stage one 0/1 channel per foreground
    /// label of the previous stage's segmentation ([`Pipeline::n_data_channels`]).
    pub data: Array5<f32>,
    /// Targets `(b, t, z, y, x)`, one per deep-supervision level, full resolution first: `t = 1`
    /// (a label map), or one 0/1 channel per region (+ 1 ignore channel) for region-based
    /// training ([`Pipeline::n_target_channels`]).
    pub targets: Vec<Array5<i16>>,
    /// How each sample was drawn.
    pub drawn: Vec<DrawnPatch>,
    /// The same data and targets in page-locked host memory, when the loader pins batches for
    /// a CUDA device ([`LoaderSettings::pin_to`]) and pinning worked.
    pub pinned: Option<PinnedBatch>,
}

/// Batches are equal when their arrays and draws are ([`Batch::pinned`] is a copy).
impl PartialEq for Batch {
    fn eq(&self, other: &Batch) -> bool {
        self.data == other.data && self.targets == other.targets && self.drawn == other.drawn
    }
}

/// A batch's data and targets as libtorch tensors in page-locked (pinned) host memory, from
/// which a copy to the GPU can run asynchronously (`non_blocking`), overlapping the previous
/// step. libtorch's caching host allocator keeps the memory until such a copy is done, so the
/// batch may be dropped right after the copy is queued.
///
/// nnU-Net: `pin_memory=True` in its `NonDetMultiThreadedAugmenter`, and
/// `data.to(device, non_blocking=True)` in `train_step`.
#[derive(Debug)]
pub struct PinnedBatch {
    /// [`Batch::data`].
    pub data: Tensor,
    /// [`Batch::targets`].
    pub targets: Vec<Tensor>,
}

impl Clone for PinnedBatch {
    fn clone(&self) -> PinnedBatch {
        PinnedBatch {
            data: self.data.shallow_clone(),
            targets: self.targets.iter().map(Tensor::shallow_clone).collect(),
        }
    }
}

impl Batch {
    /// Copies the data and targets into page-locked memory for the CUDA device `device`.
    ///
    /// # Errors
    /// libtorch's, e.g. when it has no CUDA (a CPU-only install).
    pub fn pin(&self, device: Device) -> Result<PinnedBatch, TchError> {
        // `_pin_memory` rather than `pin_memory`: torch 2.11 warns on every call of the latter
        // that is given a device, and tch always gives one.
        let pin = |t: Tensor| t.f_internal_pin_memory(device);
        let (data, targets) = self.array_tensors()?;
        Ok(PinnedBatch {
            data: pin(data)?,
            targets: targets.into_iter().map(pin).collect::<Result<_, _>>()?,
        })
    }

    /// The data and targets as CPU tensors: the pinned ones ([`Batch::pinned`]) when the
    /// loader pinned the batch, else copies of the arrays.
    ///
    /// # Errors
    /// libtorch's, when it cannot allocate the copies.
    pub fn tensors(&self) -> Result<(Tensor, Vec<Tensor>), TchError> {
        match &self.pinned {
            Some(p) => Ok((
                p.data.shallow_clone(),
                p.targets.iter().map(Tensor::shallow_clone).collect(),
            )),
            None => self.array_tensors(),
        }
    }

    /// Copies of the arrays as CPU tensors.
    fn array_tensors(&self) -> Result<(Tensor, Vec<Tensor>), TchError> {
        let targets = self.targets.iter().map(Tensor::try_from);
        Ok((
            Tensor::try_from(&self.data)?,
            targets.collect::<Result<_, _>>()?,
        ))
    }
}

/// Makes glibc keep freed large blocks for reuse instead of unmapping them. Augmentation
/// allocates and frees arrays of several MB per sample; with glibc's defaults each one is a
/// fresh mapping whose pages fault in again (measured on a 128³ patch: 52 → 36 ms per sample,
/// BENCHMARKS.md). Process-wide, so the binary (not a library) calls it once at start; blocks
/// up to 32 MiB (glibc's maximum threshold) then come from the heap and the heap is never
/// trimmed. Does nothing on other C libraries.
pub fn keep_freed_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tunables; it is called before worker threads
    // start and glibc serialises it against allocations.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// Samples, augments and assembles one batch.
///
/// # Errors
/// Whatever sampling ([`PatchSampler::draw_batch`], [`PatchSampler::read`]) or augmentation
/// ([`Pipeline::apply`]) returns.
pub fn make_batch<R: Rng>(
    rng: &mut R,
    source: &dyn CaseSource,
    sampler: &PatchSampler,
    pipeline: &Pipeline,
) -> Result<Batch, DataError> {
    let drawn = sampler.draw_batch(rng, source)?;
    let patch = sampler.final_patch();
    let n = drawn.len();
    let [z, y, x] = patch;
    let mut data = Array5::zeros((n, pipeline.n_data_channels(source.n_channels()), z, y, x));
    let n_target_channels = pipeline.n_target_channels();
    let mut targets: Vec<Array5<i16>> = (0..pipeline.n_targets())
        .map(|level| {
            let [tz, ty, tx] = pipeline.target_shape(patch, level);
            Array5::zeros((n, n_target_channels, tz, ty, tx))
        })
        .collect();
    for (j, d) in drawn.iter().enumerate() {
        let sample = pipeline.run(rng, sampler.read(source, d)?)?;
        if sample.data.shape()[1..] != patch[..] {
            return Err(DataError::SampleShape {
                expected: patch,
                found: sample.data.shape()[1..].to_vec(),
            });
        }
        check_channels(&sample, &data, &targets)?;
        data.slice_mut(s![j, .., .., .., ..]).assign(&sample.data);
        for (batch_target, target) in targets.iter_mut().zip(&sample.targets) {
            batch_target.slice_mut(s![j, .., .., .., ..]).assign(target);
        }
    }
    Ok(Batch {
        data,
        targets,
        drawn,
        pinned: None,
    })
}

/// Checks that an augmented sample has the batch's data channels and one target per batch
/// target of the same shape (the pipeline's cascade and region options decide both).
fn check_channels(
    sample: &Augmented,
    data: &Array5<f32>,
    targets: &[Array5<i16>],
) -> Result<(), DataError> {
    let same_targets = sample.targets.len() == targets.len()
        && sample
            .targets
            .iter()
            .zip(targets)
            .all(|(t, b)| t.shape() == &b.shape()[1..]);
    if sample.data.shape()[0] == data.shape()[1] && same_targets {
        return Ok(());
    }
    Err(DataError::SampleChannels {
        expected_data: data.shape()[1],
        found_data: sample.data.shape()[0],
        expected_targets: targets.iter().map(|t| t.shape()[1..].to_vec()).collect(),
        found_targets: sample.targets.iter().map(|t| t.shape().to_vec()).collect(),
    })
}

/// Loader settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoaderSettings {
    /// Worker threads.
    pub n_workers: usize,
    /// Ready batches each worker may hold in its queue.
    pub queue_depth: usize,
    /// Base seed; worker `w` uses `seed + w`.
    pub seed: u64,
    /// The CUDA device whose transfers the workers prepare by pinning each batch
    /// ([`Batch::pin`]); `None` on the CPU. When pinning fails, the first failure is logged
    /// and every batch of the process goes unpinned from then on.
    pub pin_to: Option<Device>,
}

impl LoaderSettings {
    /// One worker per available core (at least one), two batches queued per worker.
    pub fn from_available_cores(seed: u64) -> LoaderSettings {
        let n_workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        LoaderSettings {
            n_workers,
            queue_depth: 2,
            seed,
            pin_to: None,
        }
    }
}

type BatchResult = Result<Batch, DataError>;

/// What a worker sends: its random stream's position before drawing the batch, and the batch.
type Message = (u128, BatchResult);

/// Where a loader's sequence of batches stands: enough to start a loader that continues it
/// exactly ([`DataLoader::spawn_at`]), as a training run stopped mid-epoch needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoaderPosition {
    /// Per worker, the position (in 32-bit words) of its random stream before the first
    /// batch not yet handed out.
    pub word_positions: Vec<u128>,
    /// The worker whose batch comes next.
    pub next_worker: usize,
}

/// Background workers filling bounded queues of ready batches.
pub struct DataLoader {
    receivers: Vec<Receiver<Message>>,
    workers: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    next_worker: usize,
}

impl DataLoader {
    /// Starts `settings.n_workers` workers producing batches from `source`.
    ///
    /// # Errors
    /// [`DataError::LoaderSettings`] for zero workers or a zero queue depth,
    /// [`DataError::SpawnWorker`] when a thread cannot be started.
    pub fn spawn(
        source: Arc<dyn CaseSource>,
        sampler: PatchSampler,
        pipeline: Pipeline,
        settings: LoaderSettings,
    ) -> Result<DataLoader, DataError> {
        DataLoader::spawn_at(source, sampler, pipeline, settings, None)
    }

    /// [`DataLoader::spawn`], continuing the sequence of an earlier loader with the same
    /// source, sampler, pipeline and settings from `position` ([`DataLoader::position`]):
    /// the batches are those the earlier loader would have handed out next.
    ///
    /// # Errors
    /// As [`DataLoader::spawn`], and [`DataError::LoaderSettings`] when `position` is for
    /// another number of workers.
    pub fn spawn_at(
        source: Arc<dyn CaseSource>,
        sampler: PatchSampler,
        pipeline: Pipeline,
        settings: LoaderSettings,
        position: Option<&LoaderPosition>,
    ) -> Result<DataLoader, DataError> {
        let fits = position.is_none_or(|p| {
            p.word_positions.len() == settings.n_workers && p.next_worker < settings.n_workers
        });
        if settings.n_workers == 0 || settings.queue_depth == 0 || !fits {
            return Err(DataError::LoaderSettings {
                n_workers: settings.n_workers,
                queue_depth: settings.queue_depth,
            });
        }
        let shared = Arc::new((sampler, pipeline));
        let mut loader = DataLoader {
            receivers: Vec::with_capacity(settings.n_workers),
            workers: Vec::with_capacity(settings.n_workers),
            stop: Arc::new(AtomicBool::new(false)),
            next_worker: position.map_or(0, |p| p.next_worker),
        };
        for worker_idx in 0..settings.n_workers {
            let (tx, rx) = sync_channel(settings.queue_depth);
            let seed = settings.seed.wrapping_add(worker_idx as u64);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            if let Some(position) = position {
                rng.set_word_pos(position.word_positions[worker_idx]);
            }
            let job = Worker {
                source: Arc::clone(&source),
                shared: Arc::clone(&shared),
                stop: Arc::clone(&loader.stop),
                tx,
                pin_to: settings.pin_to,
            };
            let handle = std::thread::Builder::new()
                .name(format!("autoseg-loader-{worker_idx}"))
                .spawn(move || job.run(rng))
                .map_err(|source| DataError::SpawnWorker { worker_idx, source })?;
            loader.receivers.push(rx);
            loader.workers.push(handle);
        }
        Ok(loader)
    }

    /// The next batch, in the seed-determined order.
    ///
    /// # Errors
    /// The worker's sampling or augmentation error, or [`DataError::WorkerStopped`] when the
    /// worker is gone (it failed earlier or panicked).
    pub fn next_batch(&mut self) -> Result<Batch, DataError> {
        let worker_idx = self.next_worker;
        self.next_worker = (self.next_worker + 1) % self.receivers.len();
        self.receivers[worker_idx]
            .recv()
            .map_err(|_| DataError::WorkerStopped { worker_idx })?
            .1
    }

    /// Where the sequence stands: the batches not handed out yet are those a loader started
    /// with [`DataLoader::spawn_at`] at this position hands out first. Takes one batch from
    /// each worker's queue (waiting for it), so use the loader for nothing after this.
    ///
    /// # Errors
    /// [`DataError::WorkerStopped`] when a worker is gone.
    pub fn position(&mut self) -> Result<LoaderPosition, DataError> {
        let word_positions = self
            .receivers
            .iter()
            .enumerate()
            .map(|(worker_idx, rx)| {
                rx.recv()
                    .map(|(position, _)| position)
                    .map_err(|_| DataError::WorkerStopped { worker_idx })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LoaderPosition {
            word_positions,
            next_worker: self.next_worker,
        })
    }

    /// Number of worker threads.
    pub fn n_workers(&self) -> usize {
        self.workers.len()
    }
}

impl Drop for DataLoader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receivers wakes workers blocked on a full queue: their send fails.
        self.receivers.clear();
        for handle in self.workers.drain(..) {
            // A worker that panicked has nothing left to clean up.
            let _ = handle.join();
        }
    }
}

/// Set when pinning a batch failed once: the process then stops trying.
static PINNING_FAILED: AtomicBool = AtomicBool::new(false);

/// What one worker thread owns.
struct Worker {
    source: Arc<dyn CaseSource>,
    shared: Arc<(PatchSampler, Pipeline)>,
    stop: Arc<AtomicBool>,
    tx: SyncSender<Message>,
    pin_to: Option<Device>,
}

impl Worker {
    /// Produces batches until stopped, disconnected, or after sending an error.
    fn run(self, mut rng: ChaCha8Rng) {
        let (sampler, pipeline) = &*self.shared;
        while !self.stop.load(Ordering::Relaxed) {
            let position = rng.get_word_pos();
            let mut batch = make_batch(&mut rng, self.source.as_ref(), sampler, pipeline);
            if let Ok(batch) = &mut batch {
                self.pin(batch);
            }
            let failed = batch.is_err();
            if self.tx.send((position, batch)).is_err() || failed {
                return;
            }
        }
    }

    /// Pins `batch` for the CUDA device, if any. After a failure no worker of this process
    /// tries again, and only the first failure is logged: the batches still train, their
    /// copies are synchronous.
    fn pin(&self, batch: &mut Batch) {
        let Some(device) = self.pin_to else {
            return;
        };
        if PINNING_FAILED.load(Ordering::Relaxed) {
            return;
        }
        match batch.pin(device) {
            Ok(pinned) => batch.pinned = Some(pinned),
            Err(e) => {
                if !PINNING_FAILED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "cannot pin batches in page-locked memory, copying them unpinned: {e}"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::DaSetup;
    use crate::sampling::{InMemoryCase, InMemorySource};
    use ndarray::Array4;

    fn source() -> Arc<dyn CaseSource> {
        let cases = (0..3)
            .map(|i| {
                let shape = (1, 20 + i, 24, 22);
                let data = Array4::from_shape_fn(shape, |(_, z, y, x)| (z * y + x) as f32 / 100.0);
                let seg = Array4::from_shape_fn(shape, |(_, z, y, x)| {
                    i16::from(z > 8 && z < 12 && y > 10 && y < 14 && x > 9 && x < 13)
                });
                InMemoryCase::new(&format!("case_{i}"), data, seg)
            })
            .collect();
        Arc::new(InMemorySource::new(cases).unwrap())
    }

    fn loader(seed: u64, n_workers: usize) -> DataLoader {
        pinning_loader(seed, n_workers, None)
    }

    fn pinning_loader(seed: u64, n_workers: usize, pin_to: Option<Device>) -> DataLoader {
        let setup = DaSetup::nnunet(&[12, 16, 16]).unwrap();
        let sampler = PatchSampler::new(setup.crop, setup.patch, 3, false).unwrap();
        let scales = [[1.0; 3], [0.5; 3]];
        let pipeline = Pipeline::nnunet_training(&setup, &[false], &scales).unwrap();
        let settings = LoaderSettings {
            n_workers,
            queue_depth: 2,
            seed,
            pin_to,
        };
        DataLoader::spawn(source(), sampler, pipeline, settings).unwrap()
    }

    #[test]
    fn pinned_batches_hold_the_same_values_or_come_unpinned_without_cuda() {
        let take = |pin_to| {
            let mut l = pinning_loader(5, 2, pin_to);
            (0..3).map(|_| l.next_batch().unwrap()).collect::<Vec<_>>()
        };
        let plain = take(None);
        let pinned = take(Some(Device::Cuda(0)));
        assert_eq!(plain, pinned);
        assert!(plain.iter().all(|b| b.pinned.is_none()));
        for batch in &pinned {
            match &batch.pinned {
                // A CPU-only libtorch cannot pin: the workers send the batches unpinned.
                None => assert!(!tch::Cuda::is_available()),
                Some(p) => {
                    assert!(p.data.is_pinned(Device::Cuda(0)));
                    assert_eq!(p.data, Tensor::try_from(&batch.data).unwrap());
                    for (t, array) in p.targets.iter().zip(&batch.targets) {
                        assert!(t.is_pinned(Device::Cuda(0)));
                        assert_eq!(*t, Tensor::try_from(array).unwrap());
                    }
                }
            }
        }
    }

    #[test]
    fn batches_are_contiguous_and_shaped() {
        let mut l = loader(1, 2);
        let b = l.next_batch().unwrap();
        assert_eq!(b.data.shape(), &[3, 1, 12, 16, 16]);
        assert!(b.data.is_standard_layout());
        assert_eq!(b.targets[0].shape(), &[3, 1, 12, 16, 16]);
        assert_eq!(b.targets[1].shape(), &[3, 1, 6, 8, 8]);
        // bs 3: round(3 · 0.67) = 2 random samples, the last one forced to foreground.
        let forced: Vec<bool> = b.drawn.iter().map(|d| d.forced_foreground).collect();
        assert_eq!(forced, vec![false, false, true]);
    }

    #[test]
    fn same_seed_same_batches_whatever_the_timing() {
        let take = |seed, n_workers| {
            let mut l = loader(seed, n_workers);
            (0..5).map(|_| l.next_batch().unwrap()).collect::<Vec<_>>()
        };
        let a = take(42, 3);
        assert_eq!(a, take(42, 3));
        assert_ne!(a, take(43, 3));
    }

    #[test]
    fn a_loader_started_at_a_position_continues_the_sequence() {
        let setup = DaSetup::nnunet(&[12, 16, 16]).unwrap();
        let sampler = PatchSampler::new(setup.crop, setup.patch, 3, false).unwrap();
        let scales = [[1.0; 3], [0.5; 3]];
        let pipeline = Pipeline::nnunet_training(&setup, &[false], &scales).unwrap();
        let settings = LoaderSettings {
            n_workers: 3,
            queue_depth: 2,
            seed: 11,
            pin_to: None,
        };
        let spawn = |position| {
            let (sampler, pipeline) = (sampler.clone(), pipeline.clone());
            DataLoader::spawn_at(source(), sampler, pipeline, settings, position).unwrap()
        };
        let mut whole = spawn(None);
        let all: Vec<Batch> = (0..9).map(|_| whole.next_batch().unwrap()).collect();
        // Stopped after 4 batches (worker 1 next), then continued by a new loader.
        let mut first = spawn(None);
        (0..4).for_each(|_| drop(first.next_batch().unwrap()));
        let position = first.position().unwrap();
        assert_eq!(position.next_worker, 1);
        let mut rest = spawn(Some(&position));
        let continued: Vec<Batch> = (0..5).map(|_| rest.next_batch().unwrap()).collect();
        assert_eq!(continued, all[4..]);
        let wrong = LoaderPosition {
            word_positions: vec![0; 2],
            next_worker: 0,
        };
        let err = DataLoader::spawn_at(source(), sampler, pipeline, settings, Some(&wrong));
        assert!(matches!(err, Err(DataError::LoaderSettings { .. })));
    }

    #[test]
    fn invalid_settings_are_rejected() {
        let setup = DaSetup::nnunet(&[12, 16, 16]).unwrap();
        let sampler = PatchSampler::new(setup.crop, setup.patch, 2, false).unwrap();
        let pipeline = Pipeline::nnunet_validation(&[]).unwrap();
        let settings = LoaderSettings {
            n_workers: 0,
            queue_depth: 1,
            seed: 0,
            pin_to: None,
        };
        let err = DataLoader::spawn(source(), sampler, pipeline, settings);
        assert!(matches!(
            err,
            Err(DataError::LoaderSettings { n_workers: 0, .. })
        ));
    }

    #[test]
    fn dropping_a_loader_with_full_queues_returns() {
        let l = loader(3, 2);
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(l);
    }
}
