//! [`PrefetchLoader`]: shuffles, augments in parallel and keeps K batches
//! ready on a background thread.
//!
//! Design: one producer thread per epoch walks the (shuffled) order batch by
//! batch; each batch is augmented sample-parallel with rayon straight into a
//! recycled f32 buffer and sent over a bounded channel of capacity K. A
//! [`Batch`] hands its buffer back to the loader when dropped, so the steady
//! state allocates nothing and never page-faults on fresh memory.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rayon::prelude::*;

use crate::rng::{sample_rng, shuffle};
use crate::{DataError, Dataset, Label, Pipeline};

/// How a [`PrefetchLoader`] batches a data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Images per batch.
    pub batch_size: usize,
    /// Visit images in a new seeded order each epoch.
    pub shuffle: bool,
    /// Drop the last batch when it is smaller than `batch_size`.
    pub drop_last: bool,
    /// Seed of the shuffle and of every per-sample random draw.
    pub seed: u64,
    /// Batches the producer keeps ready ahead of the consumer (K).
    pub prefetch: usize,
    /// Dataset indices to use, in this order before shuffling (all when `None`).
    pub indices: Option<Vec<usize>>,
    /// Threads augmenting each batch: `None` uses rayon's global pool,
    /// `Some(n)` a pool of `n` threads owned by the loader. Results are the
    /// same either way.
    pub num_threads: Option<usize>,
}

impl Default for LoaderConfig {
    /// Batch 128, no shuffle, keep the last batch, seed 0, 2 batches ahead,
    /// whole data set, global thread pool.
    fn default() -> Self {
        LoaderConfig {
            batch_size: 128,
            shuffle: false,
            drop_last: false,
            seed: 0,
            prefetch: 2,
            indices: None,
            num_threads: None,
        }
    }
}

/// Batches of normalised NCHW f32 images and their labels, produced ahead of
/// the consumer. Cheap to clone (shares the data set and buffer pool).
#[derive(Clone)]
pub struct PrefetchLoader {
    shared: Arc<Shared>,
}

struct Shared {
    dataset: Arc<dyn Dataset>,
    pipeline: Pipeline,
    config: LoaderConfig,
    threads: Option<Result<rayon::ThreadPool, String>>,
    buffers: Arc<BufferPool>,
}

impl Shared {
    fn install<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        match &self.threads {
            Some(Ok(pool)) => pool.install(f),
            _ => f(),
        }
    }

    fn num_samples(&self) -> usize {
        match &self.config.indices {
            Some(indices) => indices.len(),
            None => self.dataset.len(),
        }
    }
}

impl std::fmt::Debug for PrefetchLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrefetchLoader")
            .field("pipeline", &self.shared.pipeline.to_string())
            .field("config", &self.shared.config)
            .finish()
    }
}

impl PrefetchLoader {
    /// A loader of `dataset` through `pipeline`. Nothing runs until
    /// [`epoch`](PrefetchLoader::epoch); a configuration that cannot work is
    /// reported by [`validate`](PrefetchLoader::validate) and as the first
    /// item of every epoch.
    pub fn new(
        dataset: Arc<dyn Dataset>,
        pipeline: Pipeline,
        config: LoaderConfig,
    ) -> PrefetchLoader {
        let threads = config.num_threads.map(|n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .thread_name(|i| format!("finetune-data-{i}"))
                .build()
                .map_err(|e| e.to_string())
        });
        let buffers = Arc::new(BufferPool {
            free: Mutex::new(Vec::new()),
            // In the channel, being filled, held by the consumer, plus slack
            // for a consumer that keeps the previous batch a little longer.
            keep: config.prefetch + 3,
        });
        PrefetchLoader {
            shared: Arc::new(Shared {
                dataset,
                pipeline,
                config,
                threads,
                buffers,
            }),
        }
    }

    /// Checks the configuration against the data set and returns the
    /// (height, width) of the output images.
    pub fn validate(&self) -> Result<(usize, usize), DataError> {
        let s = &self.shared;
        let bad = |problem: String| Err(DataError::LoaderConfig { problem });
        if s.config.batch_size == 0 {
            return bad("batch_size: expected at least 1, found 0".to_string());
        }
        if let Some(Err(e)) = &s.threads {
            return bad(format!("num_threads: cannot build a thread pool: {e}"));
        }
        let len = s.dataset.len();
        if let Some(indices) = &s.config.indices {
            if let Some(&index) = indices.iter().find(|&&i| i >= len) {
                return Err(DataError::IndexOutOfRange { index, len });
            }
        }
        if s.num_samples() == 0 {
            return bad("expected at least one image to load, found none".to_string());
        }
        s.pipeline.output_dims(s.dataset.image_dims())
    }

    /// Batches per epoch.
    pub fn len(&self) -> usize {
        let (n, b) = (
            self.shared.num_samples(),
            self.shared.config.batch_size.max(1),
        );
        if self.shared.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// Whether an epoch yields no batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Images per epoch before batching (the subset's size, or the data set's).
    pub fn num_samples(&self) -> usize {
        self.shared.num_samples()
    }

    /// The data set being loaded.
    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.shared.dataset
    }

    /// The transforms applied to each image.
    pub fn pipeline(&self) -> &Pipeline {
        &self.shared.pipeline
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.shared.config
    }

    /// The dataset indices of `epoch` in the order its batches visit them
    /// (the configured subset, shuffled with (seed, epoch) when asked). Lets a
    /// caller that cached per-image results replay the loader's order.
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let config = &self.shared.config;
        let mut order: Vec<usize> = match &config.indices {
            Some(indices) => indices.clone(),
            None => (0..self.shared.dataset.len()).collect(),
        };
        if config.shuffle {
            shuffle(&mut order, config.seed, epoch);
        }
        order
    }

    /// Starts producing the batches of `epoch` in the background. The order
    /// and every random draw depend only on (seed, epoch, dataset index).
    pub fn epoch(&self, epoch: u64) -> EpochIter {
        let dims = match self.validate() {
            Ok(dims) => dims,
            Err(e) => return EpochIter::failed(e),
        };
        let config = &self.shared.config;
        let order = self.epoch_order(epoch);
        let batches = self.len();
        let (tx, rx) = crossbeam_channel::bounded(config.prefetch);
        let shared = Arc::clone(&self.shared);
        let spawned = std::thread::Builder::new()
            .name("finetune-data-producer".to_string())
            .spawn(move || produce(&shared, &order, epoch, dims, &tx));
        match spawned {
            Ok(handle) => EpochIter {
                rx: Some(rx),
                producer: Some(handle),
                remaining: batches,
                pending: None,
                wait: Duration::ZERO,
                first_wait: Duration::ZERO,
                received: 0,
            },
            Err(e) => EpochIter::failed(DataError::ProducerStopped {
                message: format!("cannot start the producer thread: {e}"),
            }),
        }
    }
}

fn produce(
    shared: &Shared,
    order: &[usize],
    epoch: u64,
    dims: (usize, usize),
    tx: &Sender<Result<Batch, DataError>>,
) {
    let config = &shared.config;
    let sample = 3 * dims.0 * dims.1;
    for chunk in order.chunks(config.batch_size) {
        if config.drop_last && chunk.len() < config.batch_size {
            break;
        }
        let mut images = shared.buffers.take(config.batch_size * sample);
        let n = chunk.len();
        let filled = shared.install(|| {
            augment_into(
                &*shared.dataset,
                &shared.pipeline,
                chunk,
                config.seed,
                epoch,
                &mut images[..n * sample],
                Stores::Streaming,
            )
        });
        let item = filled.map(|()| Batch {
            images,
            shape: [n, 3, dims.0, dims.1],
            labels: chunk.iter().map(|&i| shared.dataset.label(i)).collect(),
            indices: chunk.to_vec(),
            pool: Arc::clone(&shared.buffers),
        });
        let failed = item.is_err();
        // A send error means the consumer is gone: stop quietly.
        if tx.send(item).is_err() || failed {
            return;
        }
    }
}

thread_local! {
    /// Per-thread HWC u8 image, so reading a sample allocates nothing.
    static IMAGE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Reads and transforms the images `indices` of `dataset` into `out`
/// (`indices.len()` CHW images back to back), in parallel on the current
/// rayon pool. Image `i` draws from [`sample_rng`]`(seed, epoch, i)`, so the
/// result does not depend on the thread count.
pub fn augment_batch(
    dataset: &dyn Dataset,
    pipeline: &Pipeline,
    indices: &[usize],
    seed: u64,
    epoch: u64,
    out: &mut [f32],
) -> Result<(), DataError> {
    augment_into(dataset, pipeline, indices, seed, epoch, out, Stores::Cached)
}

/// How finished images reach the batch buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stores {
    /// Written in place: best when the caller reads the batch right away,
    /// while it is still in cache.
    Cached,
    /// Made in a per-thread staging image (in L2), then copied out
    /// sequentially with non-temporal stores: best for prefetched batches,
    /// which wait in the channel and are out of cache by the time they are
    /// read anyway. Keeps the kernel's row-hopping stores out of main memory
    /// and skips the read for ownership of every destination line (72-75k ->
    /// 88-94k images/s through the loader, see the crate README).
    Streaming,
}

fn augment_into(
    dataset: &dyn Dataset,
    pipeline: &Pipeline,
    indices: &[usize],
    seed: u64,
    epoch: u64,
    out: &mut [f32],
    stores: Stores,
) -> Result<(), DataError> {
    dataset.check()?;
    let dims = dataset.image_dims();
    let (oh, ow) = pipeline.output_dims(dims)?;
    let sample = 3 * oh * ow;
    if out.len() != indices.len() * sample {
        return Err(DataError::BufferSize {
            what: format!("batch of {} images of 3x{oh}x{ow}", indices.len()),
            expected: indices.len() * sample,
            found: out.len(),
        });
    }
    out.par_chunks_mut(sample)
        .zip(indices.par_iter())
        .try_for_each(|(out, &index)| match stores {
            Stores::Cached => augment_one(dataset, pipeline, index, seed, epoch, dims, out),
            Stores::Streaming => STAGING.with(|staging| {
                let staging = &mut *staging.borrow_mut();
                staging.resize(sample, 0.0);
                augment_one(dataset, pipeline, index, seed, epoch, dims, staging)?;
                crate::stream::copy_streaming(out, staging);
                Ok(())
            }),
        })
}

thread_local! {
    /// Per-thread CHW f32 image for [`Stores::Streaming`]; stays in L2.
    static STAGING: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

fn augment_one(
    dataset: &dyn Dataset,
    pipeline: &Pipeline,
    index: usize,
    seed: u64,
    epoch: u64,
    dims: (usize, usize),
    out: &mut [f32],
) -> Result<(), DataError> {
    let mut rng = sample_rng(seed, epoch, index);
    if let Some(image) = dataset.image_ref(index) {
        return pipeline.apply_ref(image, &mut rng, out);
    }
    IMAGE.with(|image| {
        let image = &mut *image.borrow_mut();
        image.resize(3 * dims.0 * dims.1, 0);
        dataset.read_image(index, image)?;
        pipeline.apply(image, dims, &mut rng, out)
    })
}

/// Recycled batch buffers.
struct BufferPool {
    free: Mutex<Vec<Vec<f32>>>,
    keep: usize,
}

impl BufferPool {
    fn take(&self, len: usize) -> Vec<f32> {
        let recycled = self.lock().pop();
        match recycled {
            Some(mut buf) => {
                buf.resize(len, 0.0);
                buf
            }
            None => vec![0.0; len],
        }
    }

    fn give(&self, buf: Vec<f32>) {
        let mut free = self.lock();
        if free.len() < self.keep {
            free.push(buf);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<f32>>> {
        // A panic while holding the lock cannot leave the list inconsistent.
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One batch: NCHW f32 images, labels and the dataset indices they came
/// from. Returns its buffer to the loader when dropped.
pub struct Batch {
    images: Vec<f32>,
    shape: [usize; 4],
    labels: Vec<Label>,
    indices: Vec<usize>,
    pool: Arc<BufferPool>,
}

impl Batch {
    /// The images, NCHW contiguous (`shape().iter().product()` values).
    pub fn images(&self) -> &[f32] {
        &self.images[..self.shape.iter().product()]
    }

    /// [N, 3, H, W].
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    /// Class per image ([`UNLABELED`](crate::UNLABELED) for images without one).
    pub fn labels(&self) -> &[Label] {
        &self.labels
    }

    /// Dataset index per image (for prediction files).
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    /// Whether the batch holds no image (never, for batches from a loader).
    pub fn is_empty(&self) -> bool {
        self.shape[0] == 0
    }
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("shape", &self.shape)
            .field("labels", &self.labels)
            .field("indices", &self.indices)
            .finish()
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.images));
    }
}

/// The batches of one epoch, in order. Dropping it mid-epoch stops the
/// producer (after the batch it is making) and joins it.
pub struct EpochIter {
    rx: Option<Receiver<Result<Batch, DataError>>>,
    producer: Option<JoinHandle<()>>,
    remaining: usize,
    /// An error to yield before anything else (invalid configuration).
    pending: Option<DataError>,
    wait: Duration,
    first_wait: Duration,
    received: usize,
}

impl EpochIter {
    fn failed(error: DataError) -> EpochIter {
        EpochIter {
            rx: None,
            producer: None,
            remaining: 0,
            pending: Some(error),
            wait: Duration::ZERO,
            first_wait: Duration::ZERO,
            received: 0,
        }
    }

    /// Total time `next` blocked waiting for the producer.
    pub fn wait_time(&self) -> Duration {
        self.wait
    }

    /// Time blocked waiting for every batch but the first (which cannot be
    /// ready in advance): near zero when prefetching keeps up.
    pub fn wait_time_after_first(&self) -> Duration {
        self.wait - self.first_wait
    }

    /// Batches made and waiting in the channel right now.
    pub fn ready(&self) -> usize {
        self.rx.as_ref().map_or(0, Receiver::len)
    }

    fn producer_failure(&mut self) -> String {
        match self.producer.take().map(JoinHandle::join) {
            Some(Err(payload)) => payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic without a message".to_string()),
            _ => "the producer ended before sending every batch".to_string(),
        }
    }
}

impl Iterator for EpochIter {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.pending.take() {
            return Some(Err(error));
        }
        if self.remaining == 0 {
            return None;
        }
        let rx = self.rx.as_ref()?;
        let start = Instant::now();
        let received = rx.recv();
        let waited = start.elapsed();
        self.wait += waited;
        if self.received == 0 {
            self.first_wait = waited;
        }
        self.received += 1;
        match received {
            Ok(Ok(batch)) => {
                self.remaining -= 1;
                Some(Ok(batch))
            }
            Ok(Err(error)) => {
                self.remaining = 0;
                Some(Err(error))
            }
            Err(_) => {
                self.remaining = 0;
                let message = self.producer_failure();
                Some(Err(DataError::ProducerStopped { message }))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining + usize::from(self.pending.is_some());
        (n, Some(n))
    }
}

impl ExactSizeIterator for EpochIter {}

impl Drop for EpochIter {
    fn drop(&mut self) {
        // Disconnect first so a producer blocked on a full channel wakes up.
        drop(self.rx.take());
        if let Some(handle) = self.producer.take() {
            // A producer panic was already reported (or nobody asked).
            let _ = handle.join();
        }
    }
}
