//! A folder of images, one sub-folder per class (torchvision
//! `datasets.ImageFolder`), decoded in parallel and resized once, at open.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::dataset::{check_image_buffer, Dataset, Label, Split};
use crate::transforms::{ImageRef, Resize, RgbImage};
use crate::DataError;

/// torchvision's `IMG_EXTENSIONS`: files with these endings are images.
const IMAGE_EXTENSIONS: [&str; 9] = [
    "jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp",
];
/// The subset this crate decodes (the `image` crate's enabled formats): all
/// of them; kept apart so that a format dropped from the build is reported
/// as such rather than as a corrupt file.
const DECODED_EXTENSIONS: [&str; 9] = IMAGE_EXTENSIONS;

/// How to open an [`ImageFolder`].
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFolderOptions {
    /// Every image is resized to this (height, width) with Pillow's bilinear
    /// filter, as torchvision's `Resize((h, w))` on the loaded image.
    pub image_size: (usize, usize),
    /// Skip images that cannot be decoded (listed by
    /// [`ImageFolder::skipped`]) instead of failing.
    pub skip_unreadable: bool,
    /// Split the folder into train and test by seed, for folders without a
    /// split of their own.
    pub split: Option<FolderSplit>,
}

impl Default for ImageFolderOptions {
    /// 96x96 (STL10's size), strict, no split.
    fn default() -> Self {
        ImageFolderOptions {
            image_size: (96, 96),
            skip_unreadable: false,
            split: None,
        }
    }
}

/// A seeded split of each class's files into train and test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FolderSplit {
    /// Fraction of each class that goes to test (rounded to whole images).
    pub test_fraction: f32,
    /// Seed of the per-class shuffle.
    pub seed: u64,
    /// Which side to keep: [`Split::Train`] or [`Split::Test`].
    pub take: Split,
}

/// Images of `root/<class>/**/<file>`, classes sorted by name, files in
/// torchvision's order, held decoded in memory at one fixed size.
#[derive(Debug)]
pub struct ImageFolder {
    root: PathBuf,
    class_names: Vec<String>,
    dims: (usize, usize),
    /// `len * h * w * 3` bytes, HWC per image.
    pixels: Vec<u8>,
    labels: Vec<Label>,
    files: Vec<PathBuf>,
    skipped: Vec<(PathBuf, String)>,
}

impl ImageFolder {
    /// Lists, optionally splits, decodes (in parallel with rayon) and resizes
    /// the images under `root`. Errors name the folder or file at fault: no
    /// class folders, an empty class, an unreadable image (unless skipped),
    /// nothing left to load.
    pub fn open(
        root: impl AsRef<Path>,
        options: ImageFolderOptions,
    ) -> Result<ImageFolder, DataError> {
        let root = root.as_ref().to_path_buf();
        let (h, w) = options.image_size;
        if h == 0 || w == 0 {
            return Err(DataError::TransformInput {
                transform: "ImageFolder image_size".to_string(),
                expected: "a positive height and width".to_string(),
                found_height: h,
                found_width: w,
            });
        }
        let classes = class_dirs(&root)?;
        let mut visited = HashSet::from([canonical(&root)?]);
        for (_, class_dir) in &classes {
            visited.insert(canonical(class_dir)?);
        }
        let mut items = Vec::new();
        for (label, (_, class_dir)) in (0..).zip(&classes) {
            let mut files = list_images(class_dir, &mut visited)?;
            if files.is_empty() {
                return Err(DataError::EmptyClass {
                    path: class_dir.clone(),
                    extensions: IMAGE_EXTENSIONS.map(|e| format!(".{e}")).join(" "),
                });
            }
            if let Some(split) = &options.split {
                files = split_files(files, split, label)?;
            }
            items.extend(files.into_iter().map(|f| (f, label)));
        }
        let resize = Resize {
            size: options.image_size,
        };
        let decoded: Vec<Result<Vec<u8>, String>> = items
            .par_iter()
            .map(|(path, _)| decode(path, &resize))
            .collect();
        let mut pixels = Vec::with_capacity(items.len() * h * w * 3);
        let (mut labels, mut files, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
        for ((path, label), image) in items.into_iter().zip(decoded) {
            match image {
                Ok(data) => {
                    pixels.extend_from_slice(&data);
                    labels.push(label);
                    files.push(path);
                }
                Err(reason) if options.skip_unreadable => skipped.push((path, reason)),
                Err(reason) => return Err(DataError::UnreadableImage { path, reason }),
            }
        }
        if labels.is_empty() {
            return Err(match &options.split {
                Some(split) if skipped.is_empty() => DataError::EmptySplit {
                    path: root,
                    split: split.take,
                    test_fraction: split.test_fraction,
                },
                _ => DataError::Empty { path: root },
            });
        }
        Ok(ImageFolder {
            root,
            class_names: classes.into_iter().map(|(name, _)| name).collect(),
            dims: options.image_size,
            pixels,
            labels,
            files,
            skipped,
        })
    }

    /// The folder this was opened from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of image `index`.
    pub fn path(&self, index: usize) -> &Path {
        &self.files[index]
    }

    /// Images skipped as unreadable, with the decoder's reason.
    pub fn skipped(&self) -> &[(PathBuf, String)] {
        &self.skipped
    }
}

impl Dataset for ImageFolder {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn label(&self, index: usize) -> Label {
        self.labels[index]
    }

    fn image_dims(&self) -> (usize, usize) {
        self.dims
    }

    fn read_image(&self, index: usize, out: &mut [u8]) -> Result<(), DataError> {
        if index >= self.len() {
            return Err(DataError::IndexOutOfRange {
                index,
                len: self.len(),
            });
        }
        check_image_buffer(index, self.dims, out)?;
        let size = out.len();
        out.copy_from_slice(&self.pixels[index * size..(index + 1) * size]);
        Ok(())
    }

    fn image_ref(&self, index: usize) -> Option<ImageRef<'_>> {
        let size = 3 * self.dims.0 * self.dims.1;
        let data = self.pixels.get(index * size..(index + 1) * size)?;
        Some(ImageRef::hwc(data, self.dims))
    }

    fn item_name(&self, index: usize) -> String {
        let path = &self.files[index];
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }
}

/// Sub-folder names sorted as Python sorts strings (by code point, which is
/// UTF-8 byte order). A name that is not UTF-8 is shown with U+FFFD in its
/// place; [`class_dirs`] keeps the real one.
pub(crate) fn list_classes(root: &Path) -> Result<Vec<String>, DataError> {
    Ok(class_dirs(root)?
        .into_iter()
        .map(|(name, _)| name)
        .collect())
}

/// The class sub-folders of `root`, sorted by name's bytes: each name as
/// text and the folder's real path.
fn class_dirs(root: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    let expected = "a folder with one sub-folder per class";
    let entries = std::fs::read_dir(root).map_err(|e| DataError::io(root, expected, e))?;
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(root, expected, e))?;
        // Follow symlinks, as torchvision's `entry.is_dir()` does.
        if entry.path().is_dir() {
            dirs.push((entry.file_name(), entry.path()));
        }
    }
    if dirs.is_empty() {
        return Err(DataError::NoClasses {
            path: root.to_path_buf(),
        });
    }
    dirs.sort_by(|a, b| a.0.as_encoded_bytes().cmp(b.0.as_encoded_bytes()));
    Ok(dirs
        .into_iter()
        .map(|(name, path)| (name.to_string_lossy().into_owned(), path))
        .collect())
}

/// Image files under `dir`, recursively, in torchvision's order:
/// `sorted(os.walk(dir, followlinks=True))`, then `sorted(files)` within
/// each folder. Symlinked folders are followed, but a real folder already
/// in `visited` (the root, every class folder, what was read before) is not
/// read again, so a link back up the tree adds nothing.
fn list_images(dir: &Path, visited: &mut HashSet<PathBuf>) -> Result<Vec<PathBuf>, DataError> {
    let mut folders = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let real = canonical(&folder)?;
        if !visited.insert(real) && folder != dir {
            continue;
        }
        let entries = std::fs::read_dir(&folder)
            .map_err(|e| DataError::io(&folder, "a class folder of images", e))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| DataError::io(&folder, "a class folder", e))?;
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if has_extension(&path, &IMAGE_EXTENSIONS) {
                files.push(entry.file_name());
            }
        }
        files.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
        folders.push((folder.as_os_str().to_os_string(), folder, files));
    }
    folders.sort_by(|a, b| a.0.as_encoded_bytes().cmp(b.0.as_encoded_bytes()));
    Ok(folders
        .into_iter()
        .flat_map(|(_, folder, files)| files.into_iter().map(move |f| folder.join(f)))
        .collect())
}

/// `folder` with every symlink resolved.
fn canonical(folder: &Path) -> Result<PathBuf, DataError> {
    folder
        .canonicalize()
        .map_err(|e| DataError::io(folder, "a folder of images", e))
}

fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .is_some_and(|e| extensions.contains(&e.as_str()))
}

/// Keeps one side of a seeded per-class split (stratified: each class keeps
/// its proportion).
fn split_files(
    mut files: Vec<PathBuf>,
    split: &FolderSplit,
    label: Label,
) -> Result<Vec<PathBuf>, DataError> {
    if !(0.0..=1.0).contains(&split.test_fraction) {
        return Err(DataError::LoaderConfig {
            problem: format!(
                "folder split test_fraction: expected a value in [0, 1], found {}",
                split.test_fraction
            ),
        });
    }
    // One stream per class, so adding files to one class leaves the other
    // classes' splits unchanged.
    let mut rng =
        ChaCha8Rng::seed_from_u64(split.seed ^ (label as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.shuffle(&mut rng);
    let test = (files.len() as f64 * f64::from(split.test_fraction)).round() as usize;
    let (test_side, train_side) = order.split_at(test);
    let mut kept = match split.take {
        Split::Test => test_side.to_vec(),
        Split::Train => train_side.to_vec(),
        Split::Unlabeled => {
            return Err(DataError::UnknownSplit {
                found: "unlabeled (an image folder splits into train and test only)".to_string(),
            })
        }
    };
    // Keep torchvision's file order within the kept side.
    kept.sort_unstable();
    Ok(kept
        .into_iter()
        .map(|i| std::mem::take(&mut files[i]))
        .collect())
}

/// Decodes one file to RGB (as torchvision's `pil_loader`: `convert("RGB")`)
/// and resizes it.
fn decode(path: &Path, resize: &Resize) -> Result<Vec<u8>, String> {
    if !has_extension(path, &DECODED_EXTENSIONS) {
        return Err(format!(
            "unsupported format: expected {}",
            DECODED_EXTENSIONS.map(|e| format!(".{e}")).join(" ")
        ));
    }
    let image = RgbImage::open(path).map_err(|e| match e {
        DataError::UnreadableImage { reason, .. } => reason,
        other => other.to_string(),
    })?;
    resize
        .apply(&image)
        .map(|r| r.data)
        .map_err(|e| e.to_string())
}
