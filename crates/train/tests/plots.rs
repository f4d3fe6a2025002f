//! The run pictures are written, decodable, and not blank.

use finetune_train::{plot_confusion, plot_history, EpochRecord, MetricsAccumulator};

fn records(n: usize) -> Vec<EpochRecord> {
    (1..=n)
        .map(|epoch| {
            let mut m = MetricsAccumulator::new(3);
            // Accuracy rises with the epoch: `epoch` of 6 samples right, at most all.
            let right = epoch.min(6);
            for i in 0..6 {
                let label = i % 3;
                let pred = if i < right { label } else { (label + 1) % 3 };
                let mut logits = [0f32; 3];
                logits[pred] = 1.0;
                m.update(&logits, &[label as u32], 2.0 / epoch as f64)
                    .unwrap();
            }
            let metrics = m.finish();
            EpochRecord {
                epoch,
                epochs: n,
                lr: 0.01,
                train: metrics.clone(),
                test: (epoch % 2 == 0).then_some(metrics),
                seconds: 1.0,
                images_per_sec: 6.0,
                data_wait_seconds: 0.1,
            }
        })
        .collect()
}

fn distinct_colors(path: &std::path::Path) -> usize {
    let img = image::open(path).unwrap().to_rgb8();
    let mut colors: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    colors.sort();
    colors.dedup();
    colors.len()
}

#[test]
fn history_and_confusion_pngs_decode() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history.png");
    let recs = records(8);
    plot_history(&history, &recs).unwrap();
    assert_eq!(image::image_dimensions(&history).unwrap(), (960, 400));
    assert!(distinct_colors(&history) > 4);
    // Redrawn each epoch: overwriting works, and one epoch alone draws too.
    plot_history(&history, &recs[..1]).unwrap();
    plot_history(&history, &[]).unwrap();

    let confusion = dir.path().join("confusion.png");
    let names: Vec<String> = ["airplane", "bird", "car"].map(String::from).to_vec();
    plot_confusion(&confusion, &recs[3].train.confusion, &names).unwrap();
    assert!(distinct_colors(&confusion) > 3);
    assert!(!dir.path().join("confusion.png.tmp").exists());
}

#[test]
fn many_classes_still_draw() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = MetricsAccumulator::new(100);
    let mut logits = vec![0f32; 100];
    logits[7] = 1.0;
    m.update(&logits, &[7], 1.0).unwrap();
    let path = dir.path().join("c.png");
    plot_confusion(&path, &m.finish().confusion, &[]).unwrap();
    image::open(&path).unwrap();
}
