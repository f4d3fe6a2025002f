//! Feature caching: the output of the frozen prefix of the network
//! ([`Features`]), computed once per run (and optionally kept on disk) when
//! every image goes through it the same way each epoch.

use std::collections::HashSet;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use finetune_data::{fingerprint, LoaderConfig, PrefetchLoader};
use finetune_model::write_safetensors;
use finetune_model::{Cut, Vgg};

use crate::features::Features;
use crate::progress::Progress;
use crate::source::{BatchSource, Next};
use crate::{Result, TrainError};

/// Whether and where features are cached.
pub(crate) struct FeatureCache {
    enabled: bool,
    dir: Option<PathBuf>,
}

impl FeatureCache {
    pub(crate) fn new(enabled: bool, dir: Option<PathBuf>) -> FeatureCache {
        FeatureCache { enabled, dir }
    }

    /// The features of every image of `loader` at `cut`, or `None` when
    /// caching is off. The loader's pipeline must be deterministic.
    pub(crate) fn features(
        &self,
        model: &Vgg,
        loader: &PrefetchLoader,
        cut: Cut,
        what: &str,
        progress: &Progress,
    ) -> Result<Option<Features>> {
        if !self.enabled {
            return Ok(None);
        }
        let file = match &self.dir {
            Some(dir) => Some(dir.join(format!(
                "features-{}.safetensors",
                cache_key(model, loader, cut)?
            ))),
            None => None,
        };
        if let Some(file) = file.as_ref().filter(|f| f.exists()) {
            match load(file, cut, model.device()) {
                Ok(features) => {
                    progress.println(&format!(
                        "{what}: {} cached features from {}",
                        features.len(),
                        file.display()
                    ));
                    return Ok(Some(features));
                }
                Err(e) => progress.println(&format!("ignoring unreadable feature cache: {e}")),
            }
        }
        let features = compute(model, loader, cut, what, progress)?;
        if let Some(file) = &file {
            save(file, &features)?;
        }
        Ok(Some(features))
    }
}

/// Runs the frozen prefix over the loader once, in dataset order.
fn compute(
    model: &Vgg,
    loader: &PrefetchLoader,
    cut: Cut,
    what: &str,
    progress: &Progress,
) -> Result<Features> {
    // Same images, same transforms; order and batch size do not change the result.
    let plain = PrefetchLoader::new(
        loader.dataset().clone(),
        loader.pipeline().clone(),
        LoaderConfig {
            shuffle: false,
            drop_last: false,
            ..loader.config().clone()
        },
    );
    let bar = progress.images(&format!("caching {what}"), plain.num_samples());
    let (mut parts, mut labels, mut indices) = (Vec::new(), Vec::new(), Vec::new());
    let source = BatchSource::Images {
        loader: &plain,
        cut,
    };
    source.for_each(model, 0, 0, |batch| {
        parts.push(batch.input);
        labels.extend_from_slice(&batch.labels);
        indices.extend_from_slice(&batch.indices);
        bar.update(indices.len(), indices.len(), batch.waited);
        Ok(Next::Continue)
    })?;
    bar.finish();
    let data = Tensor::cat(&parts, 0)?;
    Ok(Features::new(cut, data, labels, indices))
}

/// A key that changes whenever the cached features would: every byte of
/// the data set (its [`fingerprint`]), every frozen tensor of the network,
/// the transforms, the images selected and the cut. blake3 over a few
/// hundred MB costs a fraction of one forward pass over them.
fn cache_key(model: &Vgg, loader: &PrefetchLoader, cut: Cut) -> Result<String> {
    let mut h = blake3::Hasher::new();
    let mut text = |s: &str| {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    text(&format!("{cut:?}"));
    text(&loader.pipeline().to_string());
    text(&format!("{:?}", loader.config().indices));
    text(&fingerprint(loader.dataset().as_ref())?);
    let trainable: HashSet<String> = model
        .trainable_parameters()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    for (name, tensor) in model.to_named_tensors() {
        if trainable.contains(&name) {
            continue;
        }
        h.update(name.as_bytes());
        let values: Vec<f32> = tensor.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
        for v in values {
            h.update(&v.to_le_bytes());
        }
    }
    Ok(h.finalize().to_hex()[..32].to_string())
}

fn save(path: &std::path::Path, features: &Features) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    }
    let n = features.len();
    let device = &Device::Cpu;
    let tensors = vec![
        ("features".to_string(), features.data.to_device(device)?),
        (
            "labels".to_string(),
            Tensor::from_slice(&features.labels, n, device)?,
        ),
        (
            "indices".to_string(),
            Tensor::from_vec(
                features
                    .indices
                    .iter()
                    .map(|&i| i as u32)
                    .collect::<Vec<_>>(),
                n,
                device,
            )?,
        ),
    ];
    Ok(write_safetensors(path, &tensors, None)?)
}

fn load(path: &std::path::Path, cut: Cut, device: &Device) -> Result<Features> {
    let mut tensors = candle_core::safetensors::load(path, device)?;
    let mut take = |name: &str| {
        tensors.remove(name).ok_or_else(|| TrainError::Checkpoint {
            path: path.to_path_buf(),
            message: format!("no `{name}` tensor"),
        })
    };
    let data = take("features")?;
    let labels: Vec<u32> = take("labels")?.to_vec1()?;
    let indices: Vec<usize> = take("indices")?
        .to_vec1::<u32>()?
        .into_iter()
        .map(|i| i as usize)
        .collect();
    Ok(Features::new(cut, data, labels, indices))
}
