//! Golden tests: this crate against torchvision, on fixtures written by
//! `tools/golden/data.py` (STL10 decoding, crop/flip/ToTensor/Normalize at
//! fixed offsets, Pillow-bilinear Resize, ImageFolder order and decoding).

use std::path::PathBuf;

use finetune_data::transforms::{Choice, RgbImage};
use finetune_data::{synthetic, Dataset, ImageFolder, ImageFolderOptions, Pipeline, Split, Stl10};
use safetensors::{Dtype, SafeTensors};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn u8s(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<u8>) {
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), Dtype::U8, "{name}");
    (t.shape().to_vec(), t.data().to_vec())
}

fn f32s(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), Dtype::F32, "{name}");
    let v = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.shape().to_vec(), v)
}

fn i64s(st: &SafeTensors, name: &str) -> Vec<i64> {
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), Dtype::I64, "{name}");
    t.data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn open_synthetic_train(count: usize) -> (tempfile::TempDir, Stl10) {
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_stl10(dir.path(), count, 0, 0).unwrap();
    let ds = Stl10::open(dir.path(), Split::Train, None).unwrap();
    (dir, ds)
}

/// Decoding is exact: bytes in, bytes out, no tolerance.
#[test]
fn stl10_decodes_like_torchvision() {
    let bytes = fixture("stl10.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (shape, hwc) = u8s(&st, "hwc");
    let labels = i64s(&st, "labels");
    let (_dir, ds) = open_synthetic_train(shape[0]);
    let mut image = vec![0u8; 3 * 96 * 96];
    for (i, want) in hwc.chunks_exact(image.len()).enumerate() {
        ds.read_image(i, &mut image).unwrap();
        assert!(
            image == want,
            "image {i} differs from torchvision's (transposed?)"
        );
        assert_eq!(ds.label(i) as i64, labels[i]);
    }
}

/// Tolerance 0: the per-channel table holds exactly torchvision's f32
/// `(x / 255 - mean) / std`, and crop/flip only move values.
#[test]
fn crop_flip_to_tensor_normalize_match_torchvision_at_fixed_offsets() {
    let bytes = fixture("stl10.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (shape, want) = f32s(&st, "train_transformed");
    let choices = i64s(&st, "choices");
    let (_dir, ds) = open_synthetic_train(shape[0]);
    let pipeline = Pipeline::recipe_train(96);
    let mut image = vec![0u8; 3 * 96 * 96];
    let mut out = vec![0f32; 3 * 96 * 96];
    for (i, want) in want.chunks_exact(out.len()).enumerate() {
        ds.read_image(i, &mut image).unwrap();
        let c = &choices[3 * i..3 * i + 3];
        let picks = [
            Choice::Crop {
                top: c[0] as usize,
                left: c[1] as usize,
            },
            Choice::Flip(c[2] != 0),
        ];
        pipeline
            .apply_choices(&image, (96, 96), &picks, &mut out)
            .unwrap();
        let worst = out
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert_eq!(worst, 0.0, "image {i} with {picks:?}");
        // (4, 4) without a flip is the identity crop: the recipe's test transform.
        if picks == [Choice::Crop { top: 4, left: 4 }, Choice::Flip(false)] {
            let mut test = vec![0f32; out.len()];
            Pipeline::recipe_test()
                .apply_choices(&image, (96, 96), &[], &mut test)
                .unwrap();
            assert_eq!(test, want);
        }
    }
}

/// Tolerance 0: the resampler repeats Pillow's fixed-point arithmetic (sizes
/// where Pillow 13's pass order equals the classic one; see `resize.rs`).
#[test]
fn resize_matches_pillow_bilinear_byte_for_byte() {
    let bytes = fixture("stl10.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_dir, ds) = open_synthetic_train(1);
    let mut data = vec![0u8; 3 * 96 * 96];
    ds.read_image(0, &mut data).unwrap();
    let image = RgbImage {
        height: 96,
        width: 96,
        data,
    };
    for name in [
        "resize_40x40",
        "resize_72x60",
        "resize_224x224",
        "resize_30x96",
    ] {
        let (shape, want) = u8s(&st, name);
        let resize = finetune_data::transforms::Resize {
            size: (shape[0], shape[1]),
        };
        let got = resize.apply(&image).unwrap();
        let diffs = got.data.iter().zip(&want).filter(|(a, b)| a != b).count();
        assert_eq!(diffs, 0, "{name}: {diffs} bytes differ from Pillow");
    }
}

/// PNG decoding is lossless and the resize is Pillow's, so tolerance 0; the
/// order of classes and files must be torchvision's.
#[test]
fn image_folder_matches_torchvision_image_folder() {
    let bytes = fixture("folder.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    let classes: Vec<String> = serde_json::from_str(&meta["classes"]).unwrap();
    let files: Vec<String> = serde_json::from_str(&meta["files"]).unwrap();
    let (shape, want) = u8s(&st, "images");
    let targets = i64s(&st, "targets");

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/folder");
    let options = ImageFolderOptions {
        image_size: (shape[1], shape[2]),
        ..ImageFolderOptions::default()
    };
    let ds = ImageFolder::open(&root, options).unwrap();
    assert_eq!(ds.class_names(), classes.as_slice());
    assert_eq!(ds.len(), files.len());
    let mut image = vec![0u8; shape[1] * shape[2] * 3];
    for (i, want) in want.chunks_exact(image.len()).enumerate() {
        assert_eq!(ds.item_name(i), files[i]);
        assert_eq!(ds.label(i) as i64, targets[i]);
        ds.read_image(i, &mut image).unwrap();
        let diffs = image.iter().zip(want).filter(|(a, b)| a != b).count();
        assert_eq!(diffs, 0, "{}: {diffs} bytes differ", files[i]);
    }
}
