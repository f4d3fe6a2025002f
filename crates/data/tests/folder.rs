//! Image folders: order, resizing, seeded splits and bad inputs.

use finetune_data::{synthetic, Dataset, FolderSplit, ImageFolder, ImageFolderOptions, Split};

fn options(size: (usize, usize)) -> ImageFolderOptions {
    ImageFolderOptions {
        image_size: size,
        ..ImageFolderOptions::default()
    }
}

#[test]
fn classes_sorted_and_images_resized() {
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_image_folder(dir.path(), &["zebra", "ant", "mole"], 3, (20, 30)).unwrap();
    let ds = ImageFolder::open(dir.path(), options((8, 10))).unwrap();
    assert_eq!(ds.class_names(), ["ant", "mole", "zebra"]);
    assert_eq!(ds.len(), 9);
    assert_eq!(ds.image_dims(), (8, 10));
    assert_eq!(
        (0..9).map(|i| ds.label(i)).collect::<Vec<_>>(),
        [0, 0, 0, 1, 1, 1, 2, 2, 2]
    );
    assert_eq!(
        ds.item_name(4),
        format!("mole{}001.png", std::path::MAIN_SEPARATOR)
    );
    let mut img = vec![0u8; 8 * 10 * 3];
    ds.read_image(3, &mut img).unwrap();
    // Green is 60 x the position in the list written: "mole" came third.
    assert!(img.chunks(3).all(|p| p[1] == 120));
}

#[test]
fn seeded_split_is_disjoint_stratified_and_repeatable() {
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_image_folder(dir.path(), &["a", "b"], 10, (4, 4)).unwrap();
    let open = |take, seed| {
        let mut o = options((4, 4));
        o.split = Some(FolderSplit {
            test_fraction: 0.3,
            seed,
            take,
        });
        ImageFolder::open(dir.path(), o).unwrap()
    };
    let names = |ds: &ImageFolder| (0..ds.len()).map(|i| ds.item_name(i)).collect::<Vec<_>>();
    let (train, test) = (open(Split::Train, 1), open(Split::Test, 1));
    assert_eq!((train.len(), test.len()), (14, 6));
    assert_eq!((0..6).filter(|&i| test.label(i) == 0).count(), 3);
    let (tr, te) = (names(&train), names(&test));
    assert!(te.iter().all(|n| !tr.contains(n)));
    assert_eq!(names(&open(Split::Test, 1)), te);
    assert_ne!(names(&open(Split::Test, 2)), te);
}

#[test]
fn unreadable_image_is_named_or_skipped_on_request() {
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_image_folder(dir.path(), &["a", "b"], 2, (4, 4)).unwrap();
    let bad = dir.path().join("b").join("broken.jpg");
    std::fs::write(&bad, b"not a jpeg").unwrap();
    let err = ImageFolder::open(dir.path(), options((4, 4)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("broken.jpg"), "{err}");
    let mut skip = options((4, 4));
    skip.skip_unreadable = true;
    let ds = ImageFolder::open(dir.path(), skip).unwrap();
    assert_eq!(ds.len(), 4);
    assert_eq!(ds.skipped().len(), 1);
    assert_eq!(ds.skipped()[0].0, bad);
}

#[test]
fn empty_class_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_image_folder(dir.path(), &["a"], 1, (4, 4)).unwrap();
    std::fs::create_dir(dir.path().join("empty_one")).unwrap();
    std::fs::write(dir.path().join("empty_one").join("readme.txt"), "x").unwrap();
    let err = ImageFolder::open(dir.path(), options((4, 4)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty_one") && err.contains(".png"), "{err}");
}

#[test]
fn root_without_classes_or_images_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = ImageFolder::open(dir.path(), options((4, 4)))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&dir.path().display().to_string()) && err.contains("sub-folder"),
        "{err}"
    );
    let err = ImageFolder::open(dir.path().join("nope"), options((4, 4)))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing file") && err.contains("nope"),
        "{err}"
    );
    // Every image unreadable and skipped: an empty data set.
    std::fs::create_dir(dir.path().join("a")).unwrap();
    std::fs::write(dir.path().join("a").join("x.png"), b"garbage").unwrap();
    let mut skip = options((4, 4));
    skip.skip_unreadable = true;
    let err = ImageFolder::open(dir.path(), skip).unwrap_err().to_string();
    assert!(err.contains("empty data set"), "{err}");
}

#[cfg(unix)]
#[test]
fn a_symlink_loop_adds_no_image_and_each_folder_is_read_once() {
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_image_folder(dir.path(), &["a", "b"], 5, (4, 4)).unwrap();
    let a = dir.path().join("a");
    std::os::unix::fs::symlink(&a, a.join("loop")).unwrap();
    std::os::unix::fs::symlink(dir.path(), a.join("up")).unwrap();
    let ds = ImageFolder::open(dir.path(), options((4, 4))).unwrap();
    assert_eq!(ds.len(), 10, "each image once");
    // Split into train and test, no image is on both sides.
    let side = |take| {
        let mut o = options((4, 4));
        o.split = Some(FolderSplit {
            test_fraction: 0.4,
            seed: 3,
            take,
        });
        let ds = ImageFolder::open(dir.path(), o).unwrap();
        (0..ds.len())
            .map(|i| ds.path(i).to_path_buf())
            .collect::<Vec<_>>()
    };
    let (train, test) = (side(Split::Train), side(Split::Test));
    assert_eq!(train.len() + test.len(), 10);
    assert!(train.iter().all(|p| !test.contains(p)));
}

#[cfg(unix)]
#[test]
fn file_and_class_names_that_are_not_utf8_load() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_image_folder(dir.path(), &["a"], 1, (4, 4)).unwrap();
    let class = dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    std::fs::create_dir(&class).unwrap();
    let name = std::ffi::OsStr::from_bytes(b"\xff\xfe.png");
    std::fs::copy(dir.path().join("a").join("000.png"), class.join(name)).unwrap();
    let ds = ImageFolder::open(dir.path(), options((4, 4))).unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds.class_names(), ["a", "caf\u{fffd}"]);
    assert_eq!(ds.path(1), class.join(name));
}

#[test]
fn a_split_folder_with_other_test_classes_is_refused_listing_them() {
    use finetune_data::{DataLayout, DataOptions};
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_image_folder(&dir.path().join("train"), &["cat", "dog"], 2, (4, 4)).unwrap();
    synthetic::write_image_folder(&dir.path().join("test"), &["cat", "dog", "emu"], 2, (4, 4))
        .unwrap();
    let layout = DataLayout::detect(dir.path()).unwrap();
    let options = DataOptions {
        image_size: 4,
        ..DataOptions::default()
    };
    for split in [Split::Train, Split::Test] {
        let err = layout.open(split, &options).err().unwrap().to_string();
        assert!(
            err.contains("only in train: []") && err.contains("only in test: [emu]"),
            "{err}"
        );
    }
}

#[test]
fn an_empty_split_and_a_fold_of_a_folder_are_named() {
    use finetune_data::{DataLayout, DataOptions};
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_image_folder(dir.path(), &["a", "b"], 3, (4, 4)).unwrap();
    let layout = DataLayout::detect(dir.path()).unwrap();
    let options = |test_fraction, fold| DataOptions {
        image_size: 4,
        test_fraction,
        fold,
        ..DataOptions::default()
    };
    let err = layout
        .open(Split::Test, &options(0.0, None))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("the test split is empty") && err.contains("holding out 0"),
        "{err}"
    );
    let err = layout
        .open(Split::Train, &options(1.0, None))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("the train split is empty"), "{err}");
    let err = layout
        .open(Split::Train, &options(0.2, Some(1)))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("folds are STL10's"), "{err}");
}

#[test]
fn every_torchvision_image_extension_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let class = dir.path().join("a");
    std::fs::create_dir(&class).unwrap();
    let img = image::RgbImage::from_pixel(5, 4, image::Rgb([10, 200, 30]));
    for ext in ["bmp", "tif", "ppm", "png", "jpg", "webp"] {
        img.save(class.join(format!("x.{ext}"))).unwrap();
    }
    let ds = ImageFolder::open(dir.path(), options((4, 5))).unwrap();
    assert_eq!(ds.len(), 6);
    let mut out = vec![0u8; 4 * 5 * 3];
    for i in 0..6 {
        ds.read_image(i, &mut out).unwrap();
        assert!(out.chunks(3).all(|p| p[1] > 190), "{:?}", ds.path(i));
    }
}
