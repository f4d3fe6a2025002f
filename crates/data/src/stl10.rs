//! STL10 in its binary distribution (`stl10_binary/`), read exactly as
//! torchvision's `datasets.STL10` reads it.
//!
//! Layout (torchvision `datasets/stl10.py`): `*_X.bin` is raw u8 without a
//! header, 3x96x96 bytes per image, each channel plane stored column-major
//! (byte of image n, channel c, row h, column w at `n*27648 + c*9216 + w*96 + h`);
//! `*_y.bin` holds one byte per image in 1..=10; `class_names.txt` one name per
//! line; `fold_indices.txt` ten lines of zero-based indices into train.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::dataset::{check_image_buffer, Dataset, Label, Split, UNLABELED};
use crate::transforms::ImageRef;
use crate::DataError;

/// Image side in pixels.
pub const STL10_SIDE: usize = 96;
/// Bytes of one image in a `*_X.bin` file.
pub const STL10_IMAGE_BYTES: usize = 3 * STL10_SIDE * STL10_SIDE;
/// Number of classes (labels 1..=10 on disk).
pub const STL10_CLASSES: usize = 10;
/// Number of folds in `fold_indices.txt`.
pub const STL10_FOLDS: usize = 10;
/// The directory the official archive unpacks to (torchvision `STL10.base_folder`).
pub const STL10_DIR: &str = "stl10_binary";
/// The class names, one per line, in label order.
pub const STL10_CLASS_NAMES_FILE: &str = "class_names.txt";
/// Ten lines of zero-based train indices, one line per fold.
pub const STL10_FOLDS_FILE: &str = "fold_indices.txt";

/// One split of STL10, memory-mapped (the 2.7 GB unlabeled split is never
/// read into RAM; pages come in as images are read).
pub struct Stl10 {
    dir: PathBuf,
    split: Split,
    images: Mmap,
    /// The mapped file, to notice it shrinking ([`Dataset::check`]).
    file: File,
    images_path: PathBuf,
    /// 0-based labels per image in the file; `None` for unlabeled.
    labels: Option<Vec<u8>>,
    /// Indices into the file when a fold selects a subset.
    subset: Option<Vec<usize>>,
    class_names: Vec<String>,
}

impl std::fmt::Debug for Stl10 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stl10")
            .field("dir", &self.dir)
            .field("split", &self.split)
            .field("len", &self.len())
            .finish()
    }
}

impl Stl10 {
    /// Opens `split` under `root`, which may be the directory holding
    /// `stl10_binary/` or `stl10_binary/` itself. `fold` (0..10, train only)
    /// keeps the 1 000 train images that line of `fold_indices.txt` names, in
    /// the file's order, as torchvision does. Every file is checked before
    /// this returns: sizes, label count and range, class names, fold indices.
    pub fn open(
        root: impl AsRef<Path>,
        split: Split,
        fold: Option<usize>,
    ) -> Result<Stl10, DataError> {
        let dir = resolve_dir(root.as_ref());
        let class_names = read_class_names(&dir.join(STL10_CLASS_NAMES_FILE))?;
        let images_path = dir.join(Stl10::images_file(split));
        let (images, file) = map_images(&images_path)?;
        let count = images.len() / STL10_IMAGE_BYTES;
        let labels = match Stl10::labels_file(split) {
            None => None,
            Some(file) => Some(read_labels(&dir.join(file), &images_path, count)?),
        };
        let subset = match (fold, split) {
            (None, _) => None,
            (Some(fold), Split::Train) => {
                Some(read_fold(&dir.join(STL10_FOLDS_FILE), fold, count)?)
            }
            (Some(fold), other) => {
                return Err(DataError::FoldNotTrain {
                    fold,
                    split: other.to_string(),
                })
            }
        };
        Ok(Stl10 {
            dir,
            split,
            images,
            file,
            images_path,
            labels,
            subset,
            class_names,
        })
    }

    /// The images file of `split` inside `stl10_binary/`: `train_X.bin`,
    /// `test_X.bin` or `unlabeled_X.bin`.
    pub fn images_file(split: Split) -> String {
        format!("{}_X.bin", split.name())
    }

    /// The labels file of `split` (`train_y.bin`, `test_y.bin`); `None` for
    /// the unlabeled split.
    pub fn labels_file(split: Split) -> Option<String> {
        (split != Split::Unlabeled).then(|| format!("{}_y.bin", split.name()))
    }

    /// The number of images of `split` in the official distribution (5 000,
    /// 8 000, 100 000). Files with other counts open too (tests use tiny ones).
    pub fn official_len(split: Split) -> usize {
        match split {
            Split::Train => 5_000,
            Split::Test => 8_000,
            Split::Unlabeled => 100_000,
        }
    }

    /// The `stl10_binary/` directory in use.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The split in use.
    pub fn split(&self) -> Split {
        self.split
    }

    /// Position of data-set index `index` in the `*_X.bin` file.
    fn file_index(&self, index: usize) -> usize {
        match &self.subset {
            Some(subset) => subset[index],
            None => index,
        }
    }
}

impl Dataset for Stl10 {
    fn len(&self) -> usize {
        match &self.subset {
            Some(subset) => subset.len(),
            None => self.images.len() / STL10_IMAGE_BYTES,
        }
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn label(&self, index: usize) -> Label {
        let at = self.file_index(index);
        match &self.labels {
            Some(labels) => Label::from(labels[at]),
            None => UNLABELED,
        }
    }

    fn image_dims(&self) -> (usize, usize) {
        (STL10_SIDE, STL10_SIDE)
    }

    fn read_image(&self, index: usize, out: &mut [u8]) -> Result<(), DataError> {
        if index >= self.len() {
            return Err(DataError::IndexOutOfRange {
                index,
                len: self.len(),
            });
        }
        check_image_buffer(index, self.image_dims(), out)?;
        let start = self.file_index(index) * STL10_IMAGE_BYTES;
        transpose_to_hwc(&self.images[start..start + STL10_IMAGE_BYTES], out);
        Ok(())
    }

    fn check(&self) -> Result<(), DataError> {
        let found = self
            .file
            .metadata()
            .map_err(|e| DataError::io(&self.images_path, "STL10 images", e))?
            .len();
        let expected = self.images.len() as u64;
        if found < expected {
            return Err(DataError::FileShrank {
                path: self.images_path.clone(),
                expected,
                found,
            });
        }
        Ok(())
    }

    fn image_ref(&self, index: usize) -> Option<ImageRef<'_>> {
        if index >= self.len() {
            return None;
        }
        let start = self.file_index(index) * STL10_IMAGE_BYTES;
        // Column-major planes: moving down a row is the next byte.
        Some(ImageRef {
            data: &self.images[start..start + STL10_IMAGE_BYTES],
            height: STL10_SIDE,
            width: STL10_SIDE,
            row_stride: 1,
            col_stride: STL10_SIDE,
            channel_stride: STL10_SIDE * STL10_SIDE,
        })
    }
}

/// Turns one image from the file's column-major CHW planes into row-major HWC
/// (torchvision: `reshape(-1, 3, 96, 96)`, swap the last two axes, then
/// `np.transpose(img, (1, 2, 0))` before `Image.fromarray`).
fn transpose_to_hwc(src: &[u8], out: &mut [u8]) {
    const S: usize = STL10_SIDE;
    const PLANE: usize = S * S;
    let (r, rest) = src.split_at(PLANE);
    let (g, b) = rest.split_at(PLANE);
    for (h, row) in out.chunks_exact_mut(3 * S).enumerate() {
        for (w, px) in row.chunks_exact_mut(3).enumerate() {
            let at = w * S + h;
            px[0] = r[at];
            px[1] = g[at];
            px[2] = b[at];
        }
    }
}

fn resolve_dir(root: &Path) -> PathBuf {
    let nested = root.join(STL10_DIR);
    if nested.is_dir() {
        nested
    } else {
        root.to_path_buf()
    }
}

fn map_images(path: &Path) -> Result<(Mmap, File), DataError> {
    let file = File::open(path)
        .map_err(|e| DataError::io(path, "STL10 images (raw u8, 27648 bytes per image)", e))?;
    let size = file
        .metadata()
        .map_err(|e| DataError::io(path, "STL10 images", e))?
        .len();
    let per_image = STL10_IMAGE_BYTES as u64;
    if size % per_image != 0 {
        return Err(DataError::ImageFileSize {
            path: path.to_path_buf(),
            expected: per_image,
            found: size,
        });
    }
    if size == 0 {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    // SAFETY: the map is read-only; like every reader of a memory-mapped file
    // we rely on nobody truncating or rewriting the data set while it is open
    // (doing so would be a bug in the user's setup, not here). The loader
    // checks the size before each batch (`Dataset::check`), so a truncation
    // between batches is reported instead of raising SIGBUS.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| DataError::io(path, "STL10 images", e))?;
    Ok((map, file))
}

fn read_file(path: &Path, expected: &str) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|e| DataError::io(path, expected, e))
}

fn read_labels(path: &Path, images: &Path, count: usize) -> Result<Vec<u8>, DataError> {
    let mut labels = read_file(path, "STL10 labels (one byte 1..=10 per image)")?;
    if labels.len() != count {
        return Err(DataError::LabelCount {
            path: path.to_path_buf(),
            images: images.to_path_buf(),
            expected: count,
            found: labels.len(),
        });
    }
    for (offset, label) in labels.iter_mut().enumerate() {
        if !(1..=STL10_CLASSES as u8).contains(label) {
            return Err(DataError::LabelRange {
                path: path.to_path_buf(),
                offset,
                found: *label,
            });
        }
        *label -= 1;
    }
    Ok(labels)
}

fn read_class_names(path: &Path) -> Result<Vec<String>, DataError> {
    let bytes = read_file(path, "STL10 class names (one per line)")?;
    let names: Vec<String> = String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect();
    if names.len() != STL10_CLASSES {
        return Err(DataError::ClassNames {
            path: path.to_path_buf(),
            expected: STL10_CLASSES,
            found: names.len(),
        });
    }
    Ok(names)
}

fn read_fold(path: &Path, fold: usize, train_len: usize) -> Result<Vec<usize>, DataError> {
    let bytes = read_file(path, "STL10 folds (10 lines of train indices)")?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if fold >= lines.len() {
        return Err(DataError::FoldOutOfRange {
            path: path.to_path_buf(),
            fold,
            count: lines.len(),
        });
    }
    // Report the line number as a user would count it in an editor.
    let line_no = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .nth(fold)
        .map_or(fold + 1, |(i, _)| i + 1);
    let malformed = |problem: String| DataError::MalformedFolds {
        path: path.to_path_buf(),
        line: line_no,
        problem,
    };
    let mut indices = Vec::new();
    for token in lines[fold].split_whitespace() {
        let index: usize = token.parse().map_err(|_| {
            malformed(format!(
                "expected a non-negative integer index, found {token:?}"
            ))
        })?;
        if index >= train_len {
            return Err(malformed(format!(
                "index {index} out of range: expected less than {train_len} (train images)"
            )));
        }
        indices.push(index);
    }
    if indices.is_empty() {
        return Err(malformed("expected train indices, found none".to_string()));
    }
    Ok(indices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_reads_column_major_planes() {
        let src: Vec<u8> = (0..STL10_IMAGE_BYTES).map(|k| (k % 251) as u8).collect();
        let mut out = vec![0u8; STL10_IMAGE_BYTES];
        transpose_to_hwc(&src, &mut out);
        for (c, h, w) in [(0, 0, 1), (1, 5, 70), (2, 95, 3), (0, 40, 95)] {
            let stored = src[c * 9216 + w * 96 + h];
            assert_eq!(out[(h * 96 + w) * 3 + c], stored, "c={c} h={h} w={w}");
        }
    }
}
