//! What every command shares: opening `--data` as STL10 or an image folder,
//! the transforms, the device, the architecture, and the preprocessing a run
//! records so that `eval` and `predict` feed images the way training did.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use finetune_data::transforms::{Normalize, RandomCrop, RandomHorizontalFlip, Resize, Step};
use finetune_data::{
    Dataset, FolderSplit, ImageFolder, ImageFolderOptions, Pipeline, Split, Stl10, IMAGENET_MEAN,
    IMAGENET_STD, STL10_MEAN, STL10_STD,
};
use finetune_model::{VggConfig, VggVariant};
use serde::{Deserialize, Serialize};

/// The file in a run directory describing how images were prepared.
pub const PREPROCESS_FILE: &str = "preprocess.json";

/// Errors of the shared setup, each saying what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// `--data` does not exist.
    #[error("{0}: no such directory (give --data the folder holding stl10_binary/, or an image folder root/<class>/<image>)")]
    NoData(PathBuf),
    /// The data set could not be opened.
    #[error(transparent)]
    Data(#[from] finetune_data::DataError),
    /// A flag value is not understood.
    #[error("{flag}: {message}")]
    BadFlag {
        /// The flag.
        flag: &'static str,
        /// What was wrong and what is accepted.
        message: String,
    },
    /// The requested device is not available.
    #[error("device `{spec}`: {message}")]
    Device {
        /// What the user asked for.
        spec: String,
        /// Why it cannot be used.
        message: String,
    },
    /// A run file could not be read or written.
    #[error("{path}: {message}")]
    RunFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// How `--data` is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataLayout {
    /// STL10's binary files (the directory holding `stl10_binary/`, or it).
    Stl10(PathBuf),
    /// `root/train/<class>/...` and `root/test/<class>/...` (or `val/`).
    SplitFolders {
        /// Training images.
        train: PathBuf,
        /// Test images.
        test: PathBuf,
    },
    /// `root/<class>/...`, split into train and test by seed.
    Folder(PathBuf),
}

impl DataLayout {
    /// Works out what `data` holds.
    pub fn detect(data: &Path) -> Result<DataLayout, SetupError> {
        if !data.is_dir() {
            return Err(SetupError::NoData(data.to_path_buf()));
        }
        if data.join("stl10_binary").is_dir() || data.join("train_X.bin").is_file() {
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
}

/// How to open a split of `--data`.
#[derive(Debug, Clone, PartialEq)]
pub struct DataOptions {
    /// Side images are resized to (folders at open time; STL10 in the pipeline).
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

/// Opens `split` of `data` (STL10 or an image folder, detected).
pub fn open_split(
    data: &Path,
    split: Split,
    options: &DataOptions,
) -> Result<Arc<dyn Dataset>, SetupError> {
    let folder =
        |root: &Path, split: Option<FolderSplit>| -> Result<Arc<dyn Dataset>, SetupError> {
            let opened = ImageFolder::open(
                root,
                ImageFolderOptions {
                    image_size: (options.image_size, options.image_size),
                    skip_unreadable: options.skip_unreadable,
                    split,
                },
            )?;
            for (path, why) in opened.skipped() {
                eprintln!("skipped {}: {why}", path.display());
            }
            Ok(Arc::new(opened))
        };
    match DataLayout::detect(data)? {
        DataLayout::Stl10(root) => {
            let fold = if split == Split::Train {
                options.fold
            } else {
                None
            };
            Ok(Arc::new(Stl10::open(root, split, fold)?))
        }
        DataLayout::SplitFolders { train, test } => match split {
            Split::Train => folder(&train, None),
            Split::Test => folder(&test, None),
            Split::Unlabeled => Err(SetupError::BadFlag {
                flag: "--split",
                message: "image folders have no unlabeled split".into(),
            }),
        },
        DataLayout::Folder(root) => {
            if split == Split::Unlabeled {
                return Err(SetupError::BadFlag {
                    flag: "--split",
                    message: "image folders have no unlabeled split".into(),
                });
            }
            let split = FolderSplit {
                test_fraction: options.test_fraction,
                seed: options.split_seed,
                take: split,
            };
            folder(&root, Some(split))
        }
    }
}

/// How images become tensors: the size and the normalisation, recorded in
/// the run directory so evaluation and prediction match training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Square side fed to the network.
    pub image_size: usize,
    /// Per-channel mean of `Normalize`.
    pub mean: [f32; 3],
    /// Per-channel std of `Normalize`.
    pub std: [f32; 3],
    /// The architecture, e.g. `vgg16`.
    pub arch: String,
    /// Class names, index = label.
    pub class_names: Vec<String>,
}

impl Preprocess {
    /// `stl10` or `imagenet` statistics at `image_size`.
    pub fn new(
        image_size: usize,
        normalize: &str,
        arch: &str,
        class_names: Vec<String>,
    ) -> Result<Preprocess, SetupError> {
        let (mean, std) = match normalize {
            "stl10" => (STL10_MEAN, STL10_STD),
            "imagenet" => (IMAGENET_MEAN, IMAGENET_STD),
            other => {
                return Err(SetupError::BadFlag {
                    flag: "--normalize",
                    message: format!("unknown statistics `{other}`: use stl10 or imagenet"),
                })
            }
        };
        Ok(Preprocess {
            image_size,
            mean,
            std,
            arch: arch.to_string(),
            class_names,
        })
    }

    fn normalize(&self) -> Normalize {
        Normalize {
            mean: self.mean,
            std: self.std,
        }
    }

    /// Resize to the network's size when the data set's images differ.
    fn resize(&self, dims: (usize, usize)) -> Vec<Step> {
        if dims == (self.image_size, self.image_size) {
            Vec::new()
        } else {
            vec![Step::Resize(Resize::new(self.image_size))]
        }
    }

    /// The recipe's training transforms: RandomCrop(size, padding 4) and a
    /// horizontal flip, or none with `augment` off; then ToTensor, Normalize.
    pub fn train_pipeline(&self, dims: (usize, usize), augment: bool) -> Pipeline {
        let mut steps = self.resize(dims);
        if augment {
            steps.push(Step::Crop(RandomCrop::new(self.image_size, 4)));
            steps.push(Step::Flip(RandomHorizontalFlip::default()));
        }
        Pipeline::new(steps, Some(self.normalize()))
    }

    /// The evaluation transforms: ToTensor, Normalize (after a resize if needed).
    pub fn eval_pipeline(&self, dims: (usize, usize)) -> Pipeline {
        Pipeline::new(self.resize(dims), Some(self.normalize()))
    }

    /// `pipeline` (built by this preprocessing) in words, e.g. `RandomCrop(96,
    /// padding 4), RandomHorizontalFlip(0.5), ToTensor, Normalize(stl10)`.
    pub fn describe(&self, pipeline: &Pipeline) -> String {
        let side = |(h, w): (usize, usize)| {
            if h == w {
                h.to_string()
            } else {
                format!("{h}x{w}")
            }
        };
        let mut parts: Vec<String> = pipeline
            .steps()
            .iter()
            .map(|step| match step {
                Step::Resize(r) => format!("Resize({})", side(r.size)),
                Step::Crop(c) => format!("RandomCrop({}, padding {})", side(c.size), c.padding),
                Step::Flip(f) => format!("RandomHorizontalFlip({})", f.p),
            })
            .collect();
        parts.push("ToTensor".into());
        let stats = if (self.mean, self.std) == (STL10_MEAN, STL10_STD) {
            "stl10".to_string()
        } else if (self.mean, self.std) == (IMAGENET_MEAN, IMAGENET_STD) {
            "imagenet".to_string()
        } else {
            format!("mean {:?}, std {:?}", self.mean, self.std)
        };
        parts.push(format!("Normalize({stats})"));
        parts.join(", ")
    }

    /// Writes `preprocess.json` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), SetupError> {
        let path = dir.join(PREPROCESS_FILE);
        let bad = |message: String| SetupError::RunFile {
            path: path.clone(),
            message,
        };
        let json = serde_json::to_vec_pretty(self).map_err(|e| bad(e.to_string()))?;
        finetune_train::checkpoint::write_file_atomic(&path, &json).map_err(|e| bad(e.to_string()))
    }

    /// Reads the `preprocess.json` beside a weights file, if there is one.
    pub fn beside(weights: &Path) -> Result<Option<Preprocess>, SetupError> {
        let Some(dir) = weights.parent() else {
            return Ok(None);
        };
        let path = dir.join(PREPROCESS_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let bytes = std::fs::read(&path).map_err(|e| SetupError::RunFile {
            path: path.clone(),
            message: e.to_string(),
        })?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SetupError::RunFile {
                path,
                message: e.to_string(),
            })
    }
}

impl Preprocess {
    /// What `eval`, `predict` and `preview` feed the network: the run's
    /// `preprocess.json` when there is one (`recorded`), else the recipe's
    /// (VGG16, 96 pixels, STL10 statistics), with each flag given overriding.
    pub fn resolve(
        recorded: Option<Preprocess>,
        arch: Option<&str>,
        image_size: Option<usize>,
        normalize: Option<&str>,
    ) -> Result<Preprocess, SetupError> {
        let mut p = match recorded {
            Some(p) => p,
            None => Preprocess::new(96, "stl10", "vgg16", Vec::new())?,
        };
        if let Some(arch) = arch {
            p.arch = arch.to_string();
        }
        if let Some(size) = image_size {
            p.image_size = size;
        }
        if let Some(normalize) = normalize {
            let stats = Preprocess::new(p.image_size, normalize, &p.arch, Vec::new())?;
            p.mean = stats.mean;
            p.std = stats.std;
        }
        if p.image_size < finetune_model::MIN_INPUT_SIDE {
            return Err(SetupError::BadFlag {
                flag: "--image-size",
                message: format!(
                    "{} is too small: VGG needs at least {} pixels",
                    p.image_size,
                    finetune_model::MIN_INPUT_SIDE
                ),
            });
        }
        Ok(p)
    }
}

/// The file in a run directory holding the flags `finetune train` ran with.
pub const RUN_ARGS_FILE: &str = "args.json";

/// The few training flags that later commands need to rebuild the same
/// network and the same held-out split, read from a run's `args.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunArgs {
    /// Seed of the train/test split of a folder without one.
    pub seed: u64,
    /// Share of each class held out for testing in such a folder.
    pub test_fraction: f32,
    /// Conv widths divided by this (1 for torchvision's VGG).
    pub width_divisor: usize,
    /// Width of the classifier's hidden layers.
    pub classifier_hidden: usize,
}

impl Default for RunArgs {
    fn default() -> Self {
        let options = DataOptions::default();
        RunArgs {
            seed: options.split_seed,
            test_fraction: options.test_fraction,
            width_divisor: 1,
            classifier_hidden: 4096,
        }
    }
}

impl RunArgs {
    /// Reads the `args.json` beside a weights file, or the defaults when
    /// there is none (weights that did not come from `finetune train`).
    pub fn beside(weights: &Path) -> Result<RunArgs, SetupError> {
        let Some(path) = weights.parent().map(|d| d.join(RUN_ARGS_FILE)) else {
            return Ok(RunArgs::default());
        };
        if !path.is_file() {
            return Ok(RunArgs::default());
        }
        let bytes = std::fs::read(&path).map_err(|e| SetupError::RunFile {
            path: path.clone(),
            message: e.to_string(),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| SetupError::RunFile {
            path,
            message: e.to_string(),
        })
    }
}

/// Parses `vgg11`, `vgg13`, `vgg16`, `vgg19`, optionally with `_bn`.
pub fn parse_arch(arch: &str, num_classes: usize) -> Result<VggConfig, SetupError> {
    let (base, batch_norm) = match arch.strip_suffix("_bn") {
        Some(base) => (base, true),
        None => (arch, false),
    };
    let variant = match base {
        "vgg11" => VggVariant::Vgg11,
        "vgg13" => VggVariant::Vgg13,
        "vgg16" => VggVariant::Vgg16,
        "vgg19" => VggVariant::Vgg19,
        _ => {
            return Err(SetupError::BadFlag {
                flag: "--arch",
                message: format!(
                    "unknown architecture `{arch}`: use vgg11, vgg13, vgg16 or vgg19, optionally with _bn"
                ),
            })
        }
    };
    Ok(VggConfig::new(variant, batch_norm, num_classes))
}

/// `auto` (CUDA, then Metal, when built in and present; else CPU), `cpu`,
/// `cuda`, `cuda:N` or `metal`.
pub fn select_device(spec: &str) -> Result<Device, SetupError> {
    let fail = |message: String| SetupError::Device {
        spec: spec.to_string(),
        message,
    };
    let rebuild = |feature: &str| {
        format!("this finetune was built without {feature} support; rebuild with `--features {feature}` or use --device cpu")
    };
    match spec {
        "auto" => {
            if candle_core::utils::cuda_is_available() {
                Device::new_cuda(0).map_err(|e| fail(e.to_string()))
            } else if candle_core::utils::metal_is_available() {
                Device::new_metal(0).map_err(|e| fail(e.to_string()))
            } else {
                Ok(Device::Cpu)
            }
        }
        "cpu" => Ok(Device::Cpu),
        "metal" => {
            if !candle_core::utils::metal_is_available() {
                return Err(fail(rebuild("metal")));
            }
            Device::new_metal(0).map_err(|e| fail(e.to_string()))
        }
        _ => {
            let ordinal = match spec.strip_prefix("cuda") {
                Some("") => 0,
                Some(n) => n
                    .strip_prefix(':')
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| fail("use cuda or cuda:N, e.g. cuda:1".into()))?,
                None => return Err(fail("use auto, cpu, cuda, cuda:N or metal".into())),
            };
            if !candle_core::utils::cuda_is_available() {
                return Err(fail(rebuild("cuda")));
            }
            Device::new_cuda(ordinal).map_err(|e| fail(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_layout_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert!(matches!(
            DataLayout::detect(&root.join("missing")),
            Err(SetupError::NoData(_))
        ));
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
        std::fs::create_dir_all(root.join("stl10_binary")).unwrap();
        assert_eq!(
            DataLayout::detect(root).unwrap(),
            DataLayout::Stl10(root.to_path_buf())
        );
    }

    #[test]
    fn arch_and_device_flags_are_checked() {
        assert!(parse_arch("vgg16", 10).is_ok());
        assert!(parse_arch("vgg19_bn", 10).unwrap().batch_norm);
        let err = parse_arch("resnet50", 10).unwrap_err().to_string();
        assert!(err.contains("--arch") && err.contains("vgg16"), "{err}");
        assert!(matches!(select_device("cpu"), Ok(Device::Cpu)));
        let err = select_device("tpu").unwrap_err().to_string();
        assert!(err.contains("cuda:N"), "{err}");
    }

    #[test]
    fn recorded_preprocessing_is_the_default_and_flags_override_it() {
        let recorded = Preprocess::new(128, "imagenet", "vgg11", vec!["a".into()]).unwrap();
        let p = Preprocess::resolve(Some(recorded.clone()), None, None, None).unwrap();
        assert_eq!(p, recorded);
        let p =
            Preprocess::resolve(Some(recorded), Some("vgg16"), Some(64), Some("stl10")).unwrap();
        assert_eq!((p.arch.as_str(), p.image_size), ("vgg16", 64));
        assert_eq!((p.mean, p.std), (STL10_MEAN, STL10_STD));
        assert_eq!(p.class_names, ["a"]);
        let p = Preprocess::resolve(None, None, None, None).unwrap();
        assert_eq!(p, Preprocess::new(96, "stl10", "vgg16", vec![]).unwrap());
        assert!(Preprocess::resolve(None, None, Some(8), None).is_err());
    }

    #[test]
    fn run_args_are_read_beside_the_weights() {
        let dir = tempfile::tempdir().unwrap();
        let weights = dir.path().join("best.safetensors");
        assert_eq!(RunArgs::beside(&weights).unwrap(), RunArgs::default());
        std::fs::write(
            dir.path().join(RUN_ARGS_FILE),
            r#"{"seed": 7, "width_divisor": 16, "classifier_hidden": 32, "lr": 0.1}"#,
        )
        .unwrap();
        let args = RunArgs::beside(&weights).unwrap();
        assert_eq!(
            (args.seed, args.width_divisor, args.classifier_hidden),
            (7, 16, 32)
        );
        assert_eq!(args.test_fraction, 0.2);
    }

    #[test]
    fn pipelines_follow_the_recipe() {
        let p = Preprocess::new(96, "stl10", "vgg16", vec![]).unwrap();
        assert_eq!(
            p.train_pipeline((96, 96), true),
            Pipeline::parse("crop:96:4,flip:0.5,normalize:stl10").unwrap()
        );
        assert!(!p.train_pipeline((96, 96), false).is_random());
        assert_eq!(
            p.eval_pipeline((96, 96)),
            Pipeline::parse("normalize:stl10").unwrap()
        );
        assert_eq!(
            p.describe(&p.train_pipeline((96, 96), true)),
            "RandomCrop(96, padding 4), RandomHorizontalFlip(0.5), ToTensor, Normalize(stl10)"
        );
        let big = Preprocess::new(224, "imagenet", "vgg16", vec![]).unwrap();
        assert_eq!(
            big.describe(&big.eval_pipeline((96, 96))),
            "Resize(224), ToTensor, Normalize(imagenet)"
        );
        assert_eq!(
            big.eval_pipeline((96, 96)),
            Pipeline::parse("resize:224,normalize:imagenet").unwrap()
        );
    }
}
