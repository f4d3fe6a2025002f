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
