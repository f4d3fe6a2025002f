//! STL10 on synthetic files: layout, splits, folds, and the bad inputs a
//! user can hand it, each error naming the culprit.

use std::path::Path;

use finetune_data::{synthetic, DataError, Dataset, Split, Stl10, UNLABELED};

fn write(train: usize, test: usize, unlabeled: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_stl10(dir.path(), train, test, unlabeled).unwrap();
    dir
}

fn bin(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join("stl10_binary").join(name)
}

fn open_err(dir: &Path, split: Split, fold: Option<usize>) -> String {
    let err: DataError = Stl10::open(dir, split, fold).unwrap_err();
    err.to_string()
}

#[test]
fn opens_every_split_from_either_root() {
    let dir = write(12, 7, 3);
    for root in [dir.path().to_path_buf(), dir.path().join("stl10_binary")] {
        let train = Stl10::open(&root, Split::Train, None).unwrap();
        assert_eq!(train.len(), 12);
        assert_eq!(train.num_classes(), 10);
        assert_eq!(train.class_names()[0], "airplane");
        assert_eq!(
            train.label(3),
            synthetic::stl10_class(Split::Train, 3).unwrap()
        );
        let test = Stl10::open(&root, Split::Test, None).unwrap();
        assert_eq!(test.len(), 7);
        assert_eq!(
            test.label(2),
            synthetic::stl10_class(Split::Test, 2).unwrap()
        );
        let unlabeled = Stl10::open(&root, Split::Unlabeled, None).unwrap();
        assert_eq!(unlabeled.len(), 3);
        assert_eq!(unlabeled.label(0), UNLABELED);
    }
}

#[test]
fn pixels_are_read_transposed_to_row_major() {
    let dir = write(3, 0, 0);
    let ds = Stl10::open(dir.path(), Split::Train, None).unwrap();
    let mut img = vec![0u8; 3 * 96 * 96];
    ds.read_image(2, &mut img).unwrap();
    // HWC (h, w, c) comes from file offset c*9216 + w*96 + h.
    for (h, w, c) in [(0, 1, 0), (1, 0, 0), (10, 80, 2), (95, 3, 1)] {
        let expected = synthetic::stl10_byte(Split::Train, 2, c * 9216 + w * 96 + h);
        assert_eq!(img[(h * 96 + w) * 3 + c], expected, "h={h} w={w} c={c}");
    }
}

#[test]
fn fold_selects_that_line_of_train_indices_in_order() {
    let dir = write(30, 0, 0);
    std::fs::write(bin(dir.path(), "fold_indices.txt"), "0 1 2\n29 4 7\n").unwrap();
    let fold = Stl10::open(dir.path(), Split::Train, Some(1)).unwrap();
    assert_eq!(fold.len(), 3);
    let full = Stl10::open(dir.path(), Split::Train, None).unwrap();
    let (mut a, mut b) = (vec![0u8; 27648], vec![0u8; 27648]);
    for (i, file_index) in [29, 4, 7].into_iter().enumerate() {
        assert_eq!(fold.label(i), full.label(file_index));
        fold.read_image(i, &mut a).unwrap();
        full.read_image(file_index, &mut b).unwrap();
        assert_eq!(a, b);
    }
}

#[test]
fn missing_file_is_named() {
    let dir = write(4, 0, 0);
    std::fs::remove_file(bin(dir.path(), "train_y.bin")).unwrap();
    let err = open_err(dir.path(), Split::Train, None);
    assert!(
        err.contains("missing file") && err.contains("train_y.bin"),
        "{err}"
    );
    let err = open_err(dir.path(), Split::Test, None);
    assert!(err.contains("test_X.bin"), "{err}");
}

#[test]
fn image_file_of_partial_image_is_named_with_sizes() {
    let dir = write(2, 0, 0);
    let path = bin(dir.path(), "train_X.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(27648 + 100);
    std::fs::write(&path, bytes).unwrap();
    let err = open_err(dir.path(), Split::Train, None);
    assert!(
        err.contains("train_X.bin") && err.contains("27748") && err.contains("27648"),
        "{err}"
    );
}

#[test]
fn empty_image_file_is_an_empty_data_set() {
    let dir = write(2, 0, 0);
    std::fs::write(bin(dir.path(), "train_X.bin"), b"").unwrap();
    let err = open_err(dir.path(), Split::Train, None);
    assert!(
        err.contains("train_X.bin") && err.contains("empty"),
        "{err}"
    );
}

#[test]
fn label_count_mismatch_is_named() {
    let dir = write(3, 0, 0);
    std::fs::write(bin(dir.path(), "train_y.bin"), [1u8, 2]).unwrap();
    let err = open_err(dir.path(), Split::Train, None);
    assert!(
        err.contains("train_y.bin") && err.contains("expected 3") && err.contains("found 2"),
        "{err}"
    );
}

#[test]
fn label_out_of_range_is_named_with_offset() {
    let dir = write(3, 0, 0);
    std::fs::write(bin(dir.path(), "train_y.bin"), [1u8, 11, 2]).unwrap();
    let err = open_err(dir.path(), Split::Train, None);
    assert!(
        err.contains("train_y.bin") && err.contains("byte 1") && err.contains("label 11"),
        "{err}"
    );
    std::fs::write(bin(dir.path(), "train_y.bin"), [0u8, 1, 2]).unwrap();
    let err = open_err(dir.path(), Split::Train, None);
    assert!(err.contains("byte 0") && err.contains("label 0"), "{err}");
}

#[test]
fn fold_out_of_range_is_named() {
    let dir = write(20, 0, 0);
    let err = open_err(dir.path(), Split::Train, Some(10));
    assert!(
        err.contains("fold_indices.txt") && err.contains("fold 10") && err.contains("0..10"),
        "{err}"
    );
}

#[test]
fn malformed_fold_file_is_named_with_line() {
    let dir = write(20, 0, 0);
    let folds = bin(dir.path(), "fold_indices.txt");
    std::fs::write(&folds, "0 1\n2 x 3\n").unwrap();
    let err = open_err(dir.path(), Split::Train, Some(1));
    assert!(
        err.contains("fold_indices.txt line 2") && err.contains("\"x\""),
        "{err}"
    );
    std::fs::write(&folds, "0 1\n2 20\n").unwrap();
    let err = open_err(dir.path(), Split::Train, Some(1));
    assert!(err.contains("line 2") && err.contains("index 20"), "{err}");
}

#[test]
fn fold_on_test_split_is_refused() {
    let dir = write(10, 10, 0);
    let err = open_err(dir.path(), Split::Test, Some(0));
    assert!(
        err.contains("test split") && err.contains("fold 0"),
        "{err}"
    );
}

#[test]
fn wrong_class_names_file_is_named() {
    let dir = write(2, 0, 0);
    std::fs::write(bin(dir.path(), "class_names.txt"), "cat\ndog\n").unwrap();
    let err = open_err(dir.path(), Split::Train, None);
    assert!(
        err.contains("class_names.txt") && err.contains("expected 10") && err.contains("found 2"),
        "{err}"
    );
}

#[test]
fn read_checks_index_and_buffer() {
    let dir = write(2, 0, 0);
    let ds = Stl10::open(dir.path(), Split::Train, None).unwrap();
    let err = ds.read_image(2, &mut [0; 27648]).unwrap_err().to_string();
    assert!(err.contains("index 2"), "{err}");
    let err = ds.read_image(0, &mut [0; 10]).unwrap_err().to_string();
    assert!(err.contains("27648") && err.contains("found 10"), "{err}");
}

#[test]
fn borrowed_view_equals_read_image() {
    let dir = write(3, 0, 0);
    let ds = Stl10::open(dir.path(), Split::Train, None).unwrap();
    let mut img = vec![0u8; 27648];
    ds.read_image(1, &mut img).unwrap();
    assert_eq!(ds.image_ref(1).unwrap().to_hwc().data, img);
    assert!(ds.image_ref(3).is_none());
}

#[test]
fn a_file_truncated_while_open_is_reported_not_a_crash() {
    use finetune_data::{augment_batch, transforms::Normalize, Pipeline};
    let dir = write(6, 0, 0);
    let train = Stl10::open(dir.path(), Split::Train, None).unwrap();
    let pipeline = Pipeline::evaluation((96, 96), 96, Normalize::stl10());
    let mut out = vec![0.0; 6 * 3 * 96 * 96];
    augment_batch(
        &train,
        &pipeline,
        &[0, 5],
        0,
        0,
        &mut out[..2 * 3 * 96 * 96],
    )
    .unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(bin(dir.path(), "train_X.bin"))
        .unwrap();
    file.set_len(2 * 27648).unwrap();
    let err = augment_batch(
        &train,
        &pipeline,
        &[0, 5],
        0,
        0,
        &mut out[..2 * 3 * 96 * 96],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("train_X.bin") && err.contains("shrank to 55296 bytes"),
        "{err}"
    );
}
