//! Small data sets written to disk for tests, examples and benchmarks (no
//! download needed). The pixel formula is repeated in
//! `tools/golden/data.py`, which produces the golden fixtures from the same
//! bytes.

use std::io;
use std::path::{Path, PathBuf};

use crate::stl10::{Stl10, STL10_CLASS_NAMES_FILE, STL10_DIR, STL10_FOLDS_FILE, STL10_IMAGE_BYTES};
use crate::{Label, Split};

/// The STL10 class names, in `class_names.txt` order.
pub const STL10_CLASS_NAMES: [&str; 10] = [
    "airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck",
];

/// The 0-based class [`write_stl10`] gives image `image` of `split`
/// (`None` for unlabeled).
pub fn stl10_class(split: Split, image: usize) -> Option<Label> {
    let class = match split {
        Split::Train => image % 10,
        Split::Test => (image * 3 + 1) % 10,
        Split::Unlabeled => return None,
    };
    // Below 10: the conversion cannot fail.
    Label::try_from(class).ok()
}

/// Byte `offset` (within the image, in the file's column-major layout) of
/// image `image` of `split`. Brightness grows with the class so that a tiny
/// model can learn the synthetic set; the rest varies with row, column and
/// image so a transposed read is caught.
pub fn stl10_byte(split: Split, image: usize, offset: usize) -> u8 {
    let salt = match split {
        Split::Train => 0,
        Split::Test => 101,
        Split::Unlabeled => 202,
    };
    let base = (offset * 7 + (offset / 96) * 3 + image * 41 + offset * offset / 97 + salt) % 56;
    let class = stl10_class(split, image).unwrap_or(0) as usize;
    (base + 20 * class) as u8
}

/// The files of a synthetic STL10 with `train`, `test` and `unlabeled`
/// images (a split with 0 images gets no files), by their path in the
/// official archive (`stl10_binary/NAME`): the images and labels,
/// `class_names.txt` and a `fold_indices.txt` of 10 folds (fold f:
/// `max(1, train/10)` consecutive indices from `f * max(1, train/10)`,
/// wrapping).
pub fn stl10_members(train: usize, test: usize, unlabeled: usize) -> Vec<(String, Vec<u8>)> {
    let member = |name: &str| format!("{STL10_DIR}/{name}");
    let mut members = Vec::new();
    for (split, count) in [
        (Split::Train, train),
        (Split::Test, test),
        (Split::Unlabeled, unlabeled),
    ] {
        if count == 0 {
            continue;
        }
        let images: Vec<u8> = (0..count)
            .flat_map(|n| (0..STL10_IMAGE_BYTES).map(move |k| stl10_byte(split, n, k)))
            .collect();
        members.push((member(&Stl10::images_file(split)), images));
        if let Some(file) = Stl10::labels_file(split) {
            let labels: Vec<u8> = (0..count)
                .map(|n| stl10_class(split, n).map_or(0, |c| c as u8 + 1))
                .collect();
            members.push((member(&file), labels));
        }
    }
    let names = STL10_CLASS_NAMES.join("\n") + "\n";
    members.push((member(STL10_CLASS_NAMES_FILE), names.into_bytes()));
    let per_fold = (train / 10).max(1);
    let folds: Vec<String> = (0..10)
        .map(|f| {
            (0..per_fold)
                .map(|j| ((f * per_fold + j) % train.max(1)).to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    members.push((
        member(STL10_FOLDS_FILE),
        (folds.join("\n") + "\n").into_bytes(),
    ));
    members
}

/// Writes [`stl10_members`] under `root` (so `root/stl10_binary/`). Returns
/// the `stl10_binary/` path.
pub fn write_stl10(
    root: &Path,
    train: usize,
    test: usize,
    unlabeled: usize,
) -> io::Result<PathBuf> {
    let dir = root.join(STL10_DIR);
    std::fs::create_dir_all(&dir)?;
    for (name, bytes) in stl10_members(train, test, unlabeled) {
        std::fs::write(root.join(name), bytes)?;
    }
    Ok(dir)
}

/// Writes `root/<class>/<nnn>.png` for each class name, `per_class` images of
/// (height, width) `dims` whose colour depends on the class.
pub fn write_image_folder(
    root: &Path,
    classes: &[&str],
    per_class: usize,
    dims: (usize, usize),
) -> Result<(), image::ImageError> {
    for (c, class) in classes.iter().enumerate() {
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).map_err(image::ImageError::IoError)?;
        for i in 0..per_class {
            let img = image::RgbImage::from_fn(dims.1 as u32, dims.0 as u32, |x, y| {
                let v = (x * 5 + y * 3 + i as u32 * 11) as u8;
                image::Rgb([v, (c * 60) as u8, v / 2 + 30 * c as u8])
            });
            img.save(dir.join(format!("{i:03}.png")))?;
        }
    }
    Ok(())
}
