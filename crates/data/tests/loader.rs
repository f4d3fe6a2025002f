//! The prefetching loader: batching, determinism across thread counts,
//! shuffling, shutdown and error delivery.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use finetune_data::{
    augment_batch, synthetic, DataError, Dataset, LoaderConfig, Pipeline, PrefetchLoader, Split,
    Stl10,
};

fn stl10(n: usize) -> (tempfile::TempDir, Arc<dyn Dataset>) {
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_stl10(dir.path(), n, 0, 0).unwrap();
    let ds = Stl10::open(dir.path(), Split::Train, None).unwrap();
    (dir, Arc::new(ds))
}

fn config(batch_size: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size,
        shuffle: true,
        seed: 7,
        ..LoaderConfig::default()
    }
}

/// (images, labels, indices) of a whole epoch.
fn collect(loader: &PrefetchLoader, epoch: u64) -> Vec<(Vec<f32>, Vec<u32>, Vec<usize>)> {
    loader
        .epoch(epoch)
        .map(|b| {
            let b = b.unwrap();
            (
                b.images().to_vec(),
                b.labels().to_vec(),
                b.indices().to_vec(),
            )
        })
        .collect()
}

#[test]
fn same_seed_gives_identical_batches_with_1_and_8_threads() {
    let (_dir, ds) = stl10(21);
    let run = |threads| {
        let mut c = config(4);
        c.num_threads = Some(threads);
        collect(
            &PrefetchLoader::new(ds.clone(), Pipeline::recipe_train(96), c),
            3,
        )
    };
    let one = run(1);
    assert_eq!(one.len(), 6);
    assert!(one == run(8), "batches differ between 1 and 8 threads");
}

#[test]
fn last_partial_batch_is_kept_or_dropped() {
    let (_dir, ds) = stl10(10);
    let loader = PrefetchLoader::new(ds.clone(), Pipeline::recipe_test(), config(4));
    let sizes: Vec<[usize; 4]> = loader.epoch(0).map(|b| b.unwrap().shape()).collect();
    assert_eq!(sizes, [[4, 3, 96, 96], [4, 3, 96, 96], [2, 3, 96, 96]]);
    assert_eq!(loader.len(), 3);
    assert_eq!(loader.epoch(0).len(), 3);
    let mut c = config(4);
    c.drop_last = true;
    let loader = PrefetchLoader::new(ds, Pipeline::recipe_test(), c);
    assert_eq!(loader.epoch(0).count(), 2);
    assert_eq!(loader.len(), 2);
}

#[test]
fn each_index_once_per_epoch_with_its_label_and_a_new_order_each_epoch() {
    let (_dir, ds) = stl10(13);
    let loader = PrefetchLoader::new(ds.clone(), Pipeline::recipe_train(96), config(5));
    let e0 = collect(&loader, 0);
    let order0: Vec<usize> = e0.iter().flat_map(|b| b.2.clone()).collect();
    let mut sorted = order0.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..13).collect::<Vec<_>>());
    for (_, labels, indices) in &e0 {
        for (l, &i) in labels.iter().zip(indices) {
            assert_eq!(*l, ds.label(i));
        }
    }
    let order1: Vec<usize> = collect(&loader, 1)
        .iter()
        .flat_map(|b| b.2.clone())
        .collect();
    assert_ne!(order0, order1);
    assert!(collect(&loader, 0) == e0, "an epoch must repeat exactly");
}

#[test]
fn unshuffled_subset_keeps_the_given_order_and_test_pipeline_is_exact() {
    let (_dir, ds) = stl10(6);
    let mut c = config(2);
    c.shuffle = false;
    c.indices = Some(vec![5, 0, 3]);
    let loader = PrefetchLoader::new(ds.clone(), Pipeline::recipe_test(), c);
    let batches = collect(&loader, 0);
    assert_eq!(batches[0].2, [5, 0]);
    assert_eq!(batches[1].2, [3]);
    let mut img = vec![0u8; 27648];
    let mut expected = vec![0f32; 27648];
    ds.read_image(0, &mut img).unwrap();
    Pipeline::recipe_test()
        .apply_choices(&img, (96, 96), &[], &mut expected)
        .unwrap();
    assert_eq!(&batches[0].0[27648..], expected.as_slice());
}

/// The loader stages each image and copies it with non-temporal stores;
/// `augment_batch` writes in place. Both must give the same bits, for odd
/// batch sizes too (buffers not a multiple of a vector).
#[test]
fn loader_batches_equal_augment_batch_written_in_place() {
    let (_dir, ds) = stl10(11);
    let loader = PrefetchLoader::new(ds.clone(), Pipeline::recipe_train(96), config(5));
    let batches = collect(&loader, 2);
    assert_eq!(batches.len(), 3);
    for (images, _, indices) in batches {
        let mut expected = vec![f32::NAN; images.len()];
        augment_batch(
            &*ds,
            &Pipeline::recipe_train(96),
            &indices,
            7,
            2,
            &mut expected,
        )
        .unwrap();
        assert!(images == expected, "batch {indices:?} differs");
    }
}

#[test]
fn invalid_configuration_is_the_first_item() {
    let (_dir, ds) = stl10(3);
    let mut c = config(2);
    c.indices = Some(vec![0, 3]);
    let loader = PrefetchLoader::new(ds.clone(), Pipeline::recipe_test(), c);
    let items: Vec<_> = loader.epoch(0).collect();
    assert_eq!(items.len(), 1);
    let err = items[0].as_ref().unwrap_err().to_string();
    assert!(err.contains("index 3"), "{err}");
    let loader = PrefetchLoader::new(ds.clone(), Pipeline::recipe_test(), config(0));
    assert!(loader
        .validate()
        .unwrap_err()
        .to_string()
        .contains("batch_size"));
    let loader = PrefetchLoader::new(ds, Pipeline::parse("crop:200").unwrap(), config(2));
    assert!(loader.epoch(0).next().unwrap().is_err());
}

/// A data set that fails (or panics) at one index and counts reads.
struct Faulty {
    inner: Arc<dyn Dataset>,
    bad: usize,
    panic: bool,
    reads: AtomicUsize,
}

impl Dataset for Faulty {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn class_names(&self) -> &[String] {
        self.inner.class_names()
    }
    fn label(&self, index: usize) -> finetune_data::Label {
        self.inner.label(index)
    }
    fn image_dims(&self) -> (usize, usize) {
        self.inner.image_dims()
    }
    fn read_image(&self, index: usize, out: &mut [u8]) -> Result<(), DataError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if index == self.bad {
            if self.panic {
                panic!("simulated reader crash at {index}");
            }
            return Err(DataError::IndexOutOfRange { index, len: 0 });
        }
        self.inner.read_image(index, out)
    }
}

fn faulty(panic: bool) -> (tempfile::TempDir, Arc<Faulty>) {
    let (dir, inner) = stl10(12);
    let ds = Faulty {
        inner,
        bad: 9,
        panic,
        reads: AtomicUsize::new(0),
    };
    (dir, Arc::new(ds))
}

#[test]
fn producer_error_reaches_the_consumer_and_ends_the_epoch() {
    let (_dir, ds) = faulty(false);
    let mut c = config(4);
    c.shuffle = false;
    let loader = PrefetchLoader::new(ds, Pipeline::recipe_test(), c);
    let items: Vec<_> = loader.epoch(0).collect();
    assert_eq!(items.len(), 3);
    assert!(items[0].is_ok() && items[1].is_ok());
    assert!(items[2]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("index 9"));
}

#[test]
fn producer_panic_becomes_an_error_not_a_hang() {
    let (_dir, ds) = faulty(true);
    let mut c = config(4);
    c.shuffle = false;
    c.num_threads = Some(2);
    let loader = PrefetchLoader::new(ds, Pipeline::recipe_test(), c);
    let items: Vec<_> = loader.epoch(0).collect();
    let err = items.last().unwrap().as_ref().unwrap_err().to_string();
    assert!(err.contains("simulated reader crash"), "{err}");
}

#[test]
fn dropping_mid_epoch_stops_the_producer() {
    let (_dir, ds) = faulty(false);
    let ds = Arc::new(Faulty {
        bad: usize::MAX,
        ..Arc::try_unwrap(ds).ok().unwrap()
    });
    let mut c = config(1);
    c.prefetch = 1;
    let loader = PrefetchLoader::new(ds.clone(), Pipeline::recipe_test(), c);
    let mut epoch = loader.epoch(0);
    epoch.next().unwrap().unwrap();
    drop(epoch); // joins the producer
    let reads = ds.reads.load(Ordering::SeqCst);
    // One consumed, at most one queued and one in the making.
    assert!(reads <= 3, "{reads} images read after the consumer left");
}

#[test]
fn prefetch_fills_k_batches_without_the_consumer_asking() {
    let (_dir, ds) = stl10(40);
    let mut c = config(4);
    c.prefetch = 3;
    let loader = PrefetchLoader::new(ds, Pipeline::recipe_train(96), c);
    let mut epoch = loader.epoch(0);
    let first = epoch.next().unwrap().unwrap();
    // Liveness wait, not a timing assertion: the producer must reach K ready
    // batches on its own while the consumer holds the first one.
    let deadline = Instant::now() + Duration::from_secs(30);
    while epoch.ready() < 3 {
        assert!(Instant::now() < deadline, "producer never filled the queue");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(first);
    assert_eq!(epoch.by_ref().count(), 9);
}

#[test]
fn zero_copy_path_equals_read_image_then_apply() {
    let (_dir, ds) = stl10(9);
    let mut c = config(3);
    c.seed = 11;
    let pipeline = Pipeline::recipe_train(96);
    let loader = PrefetchLoader::new(ds.clone(), pipeline.clone(), c);
    let mut img = vec![0u8; 27648];
    let mut expected = vec![0f32; 27648];
    for batch in loader.epoch(4) {
        let batch = batch.unwrap();
        for (k, &i) in batch.indices().iter().enumerate() {
            ds.read_image(i, &mut img).unwrap();
            let mut rng = finetune_data::sample_rng(11, 4, i);
            pipeline
                .apply(&img, (96, 96), &mut rng, &mut expected)
                .unwrap();
            assert!(
                batch.images()[k * 27648..(k + 1) * 27648] == expected[..],
                "index {i}"
            );
        }
    }
}
