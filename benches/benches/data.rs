//! Throughput of the data pipeline on an STL10-sized synthetic train split
//! (5 000 images): decoding, augmenting one batch of 128, a whole epoch
//! through the prefetching loader, and the consumer's wait when prefetching
//! keeps up. Run: `cargo bench -p finetune-benches`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use finetune_data::{
    augment_batch, sample_rng, synthetic, Dataset, LoaderConfig, Pipeline, PrefetchLoader, Split,
    Stl10,
};

const TRAIN: usize = 5_000;
const BATCH: usize = 128;

fn train_split() -> (tempfile::TempDir, Arc<Stl10>) {
    let dir = tempfile::tempdir().expect("temp dir");
    synthetic::write_stl10(dir.path(), TRAIN, 0, 0).expect("write synthetic STL10");
    let ds = Stl10::open(dir.path(), Split::Train, None).expect("open synthetic STL10");
    (dir, Arc::new(ds))
}

fn benches(c: &mut Criterion) {
    let (_dir, ds) = train_split();
    let mut group = c.benchmark_group("stl10");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    group.throughput(Throughput::Elements(TRAIN as u64));
    group.bench_function("decode_train_split", |b| {
        let mut image = vec![0u8; 3 * 96 * 96];
        b.iter(|| {
            for i in 0..ds.len() {
                ds.read_image(i, &mut image).expect("read");
                black_box(&image);
            }
        })
    });

    // One thread, one image at a time: the fused crop/flip/normalise kernel
    // reading STL10's column-major planes from the memory map.
    group.throughput(Throughput::Elements(TRAIN as u64));
    let pipeline = Pipeline::recipe_train(96);
    group.bench_function("recipe_train_one_thread", |b| {
        let mut out = vec![0f32; 3 * 96 * 96];
        let mut epoch = 0;
        b.iter(|| {
            epoch += 1;
            for i in 0..TRAIN {
                let mut rng = sample_rng(0, epoch, i);
                let image = ds.image_ref(i).expect("in range");
                pipeline
                    .apply_ref(image, &mut rng, &mut out)
                    .expect("apply");
                black_box(&out);
            }
        })
    });

    group.throughput(Throughput::Elements(BATCH as u64));
    let indices: Vec<usize> = (0..BATCH).map(|i| i * 37 % TRAIN).collect();
    let mut out = vec![0f32; BATCH * 3 * 96 * 96];
    let mut epoch = 0;
    group.bench_function("augment_batch_128", |b| {
        b.iter(|| {
            epoch += 1;
            augment_batch(&*ds, &pipeline, &indices, 0, epoch, &mut out).expect("augment");
            black_box(&out);
        })
    });

    group.throughput(Throughput::Elements(TRAIN as u64));
    let config = LoaderConfig {
        batch_size: BATCH,
        shuffle: true,
        seed: 1,
        prefetch: 4,
        ..LoaderConfig::default()
    };
    let loader = PrefetchLoader::new(ds.clone(), Pipeline::recipe_train(96), config);
    let mut epoch = 0;
    group.bench_function("train_epoch_through_loader", |b| {
        b.iter(|| {
            epoch += 1;
            for batch in loader.epoch(epoch) {
                black_box(batch.expect("batch").images()[0]);
            }
        })
    });

    // Prefetch: a consumer that takes longer per batch than the producer
    // should never wait after the first batch. The reported "time" is the
    // consumer's total wait over 10 batches, excluding the first.
    group.throughput(Throughput::Elements(1));
    let config = LoaderConfig {
        batch_size: BATCH,
        prefetch: 2,
        indices: Some((0..BATCH * 11).collect()),
        ..LoaderConfig::default()
    };
    let loader = PrefetchLoader::new(ds.clone(), Pipeline::recipe_train(96), config);
    let batch_time = {
        let start = Instant::now();
        loader.epoch(0).for_each(|b| drop(b.expect("batch")));
        start.elapsed() / 11
    };
    group.bench_function("consumer_wait_after_first_batch", |b| {
        b.iter_custom(|iters| {
            let mut waited = Duration::ZERO;
            for i in 0..iters {
                let mut epoch = loader.epoch(i);
                for batch in epoch.by_ref() {
                    drop(batch.expect("batch"));
                    std::thread::sleep(batch_time * 2);
                }
                waited += epoch.wait_time_after_first();
            }
            waited
        })
    });
    group.finish();
}

criterion_group!(data, benches);
criterion_main!(data);
