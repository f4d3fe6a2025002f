//! What a data directory holds, and opening one split of it: STL10's binary
//! files, an image folder with a train/test split of its own, or one image
//! folder to split by seed. This is what `finetune train --data DIR` accepts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::folder::list_classes;
use crate::{
    DataError, Dataset, FolderSplit, ImageFolder, ImageFolderOptions, Split, Stl10, STL10_DIR,
};

/// How a data directory is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataLayout {
    /// STL10's binary files (the directory holding `stl10_binary/`, or it).
    Stl10(PathBuf),
    /// `root/train/<class>/...` and `root/test/<class>/...` (or `root/val/`).
    SplitFolders {
        /// Training images.
        train: PathBuf,
        /// Test images.
        test: PathBuf,
    },
    /// `root/<class>/...`, split into train and test by seed.
    Folder(PathBuf),
}

/// How to open a split of a [`DataLayout`].
#[derive(Debug, Clone, PartialEq)]
pub struct DataOptions {
    /// Side image-folder images are resized to when opened (STL10 keeps its
    /// 96x96; the pipeline resizes it).
    pub image_size: usize,
    /// STL10 training fold 0..9 (train split only).
    pub fold: Option<usize>,
    /// Share of each class held out for testing when a folder has no split.
    pub test_fraction: f32,
    /// Seed of that split.
    pub split_seed: u64,
    /// Skip undecodable images in folders instead of failing.
    pub skip_unreadable: bool,
}

impl Default for DataOptions {
    /// 96 pixels, no fold, 20% held out with seed 0, strict.
    fn default() -> Self {
        DataOptions {
            image_size: 96,
            fold: None,
            test_fraction: 0.2,
            split_seed: 0,
            skip_unreadable: false,
        }
    }
}

/// One opened split, and the images skipped as unreadable on the way.
pub struct OpenedSplit {
    /// The images.
    pub dataset: Arc<dyn Dataset>,
    /// Undecodable files left out (with [`DataOptions::skip_unreadable`]), with the decoder's reason.
    pub skipped: Vec<(PathBuf, String)>,
}

impl DataLayout {
    /// Works out what `data` holds: STL10 when it has `stl10_binary/` (or
    /// is it), a split folder when it has `train/` and `test/` (or `val/`),
    /// else one image folder.
    pub fn detect(data: &Path) -> Result<DataLayout, DataError> {
        if !data.is_dir() {
            return Err(DataError::NoDataDir {
                path: data.to_path_buf(),
            });
        }
        let stl10_images = data.join(Stl10::images_file(Split::Train));
        if data.join(STL10_DIR).is_dir() || stl10_images.is_file() {
            return Ok(DataLayout::Stl10(data.to_path_buf()));
        }
        let train = data.join("train");
        let test = ["test", "val"]
            .iter()
            .map(|d| data.join(d))
            .find(|d| d.is_dir());
        match test {
            Some(test) if train.is_dir() => Ok(DataLayout::SplitFolders { train, test }),
            _ => Ok(DataLayout::Folder(data.to_path_buf())),
        }
    }

    /// Opens `split`: STL10 as it is (a fold for the train split only), a
    /// folder's images resized to `options.image_size`.
    pub fn open(&self, split: Split, options: &DataOptions) -> Result<OpenedSplit, DataError> {
        let folder = |root: &Path, split: Option<FolderSplit>| -> Result<OpenedSplit, DataError> {
            let opened = ImageFolder::open(
                root,
                ImageFolderOptions {
                    image_size: (options.image_size, options.image_size),
                    skip_unreadable: options.skip_unreadable,
                    split,
                },
            )?;
            let skipped = opened.skipped().to_vec();
            Ok(OpenedSplit {
                dataset: Arc::new(opened),
                skipped,
            })
        };
        let no_unlabeled = |root: &Path| DataError::NoUnlabeledSplit {
            path: root.to_path_buf(),
        };
        if let (Some(_), DataLayout::SplitFolders { train: root, .. } | DataLayout::Folder(root)) =
            (options.fold, self)
        {
            return Err(DataError::FoldNotStl10 { path: root.clone() });
        }
        match self {
            DataLayout::Stl10(root) => {
                let fold = options.fold.filter(|_| split == Split::Train);
                Ok(OpenedSplit {
                    dataset: Arc::new(Stl10::open(root, split, fold)?),
                    skipped: Vec::new(),
                })
            }
            DataLayout::SplitFolders { train, test } => match split {
                _ if split != Split::Unlabeled && !same_classes(train, test)? => {
                    Err(class_mismatch(train, test)?)
                }
                Split::Train => folder(train, None),
                Split::Test => folder(test, None),
                Split::Unlabeled => Err(no_unlabeled(train)),
            },
            DataLayout::Folder(root) => {
                if split == Split::Unlabeled {
                    return Err(no_unlabeled(root));
                }
                let split = FolderSplit {
                    test_fraction: options.test_fraction,
                    seed: options.split_seed,
                    take: split,
                };
                folder(root, Some(split))
            }
        }
    }
}

/// Whether two folders hold the same class sub-folders.
fn same_classes(train: &Path, test: &Path) -> Result<bool, DataError> {
    Ok(list_classes(train)? == list_classes(test)?)
}

/// The error listing the classes only one of `train` and `test` has.
fn class_mismatch(train: &Path, test: &Path) -> Result<DataError, DataError> {
    let (a, b) = (list_classes(train)?, list_classes(test)?);
    let only = |x: &[String], y: &[String]| {
        x.iter()
            .filter(|c| !y.contains(c))
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(DataError::ClassMismatch {
        train: train.to_path_buf(),
        test: test.to_path_buf(),
        only_train: only(&a, &b),
        only_test: only(&b, &a),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_layout_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let err = DataLayout::detect(&root.join("missing")).unwrap_err();
        assert!(matches!(err, DataError::NoDataDir { .. }), "{err}");
        assert!(err.to_string().contains("no such directory"), "{err}");
        assert_eq!(
            DataLayout::detect(root).unwrap(),
            DataLayout::Folder(root.to_path_buf())
        );
        std::fs::create_dir_all(root.join("train")).unwrap();
        std::fs::create_dir_all(root.join("val")).unwrap();
        assert_eq!(
            DataLayout::detect(root).unwrap(),
            DataLayout::SplitFolders {
                train: root.join("train"),
                test: root.join("val")
            }
        );
        let err = DataLayout::detect(root)
            .unwrap()
            .open(Split::Unlabeled, &DataOptions::default())
            .err()
            .unwrap();
        assert!(err.to_string().contains("no unlabeled split"), "{err}");
        std::fs::create_dir_all(root.join(STL10_DIR)).unwrap();
        assert_eq!(
            DataLayout::detect(root).unwrap(),
            DataLayout::Stl10(root.to_path_buf())
        );
    }

    #[test]
    fn stl10_folds_apply_to_the_train_split_only() {
        let dir = tempfile::tempdir().unwrap();
        crate::synthetic::write_stl10(dir.path(), 20, 6, 0).unwrap();
        let layout = DataLayout::detect(dir.path()).unwrap();
        let options = DataOptions {
            fold: Some(1),
            ..DataOptions::default()
        };
        assert_eq!(
            layout.open(Split::Train, &options).unwrap().dataset.len(),
            2
        );
        assert_eq!(layout.open(Split::Test, &options).unwrap().dataset.len(), 6);
    }
}
