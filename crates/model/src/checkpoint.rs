//! Weights in and out: safetensors (memory-mapped) and PyTorch zip `.pth`
//! checkpoints, with torchvision's or timm's names, checked against the
//! configured network before anything is copied.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};

use crate::init::new_head_vars;
use crate::layers::{TensorRole, TensorSpec};
use crate::vgg::{tensor_specs, Vgg};
use crate::{Mismatch, ModelError, VggConfig};
use finetune_files::atomic::write_atomic;

/// Which names a checkpoint uses for the classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamingScheme {
    /// torchvision's `classifier.{0,3,6}` with 2-D weights.
    Torchvision,
    /// timm's `pre_logits.fc1` (a conv `[4096, 512, 7, 7]`), `pre_logits.fc2`
    /// (`[4096, 4096, 1, 1]`) and `head.fc`; `features.*` as torchvision.
    Timm,
}

/// The container a checkpoint came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// A `.safetensors` file, read through a memory map.
    Safetensors,
    /// A PyTorch zip checkpoint (`torch.save` since 1.6), e.g. `vgg16-397923af.pth`.
    Pth,
    /// Tensors handed over in memory (`Vgg::from_named_tensors`).
    Memory,
}

/// What loading found and did, for telling the user.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// The container.
    pub format: CheckpointFormat,
    /// The naming scheme detected.
    pub scheme: NamingScheme,
    /// The distinct dtypes stored in the file (all converted to f32 on load).
    pub stored_dtypes: Vec<String>,
    /// `Some((found, new))` when the file's head had `found` classes and was
    /// replaced by a new seeded head with `new` classes.
    pub head_replaced: Option<(usize, usize)>,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} checkpoint, {:?} names, stored as {}",
            self.format,
            self.scheme,
            self.stored_dtypes.join("/")
        )?;
        if let Some((found, new)) = self.head_replaced {
            write!(
                f,
                "; its {found}-class head was replaced by a new {new}-class head"
            )?;
        }
        Ok(())
    }
}

/// A tensor as a checkpoint lists it, before any data is read.
#[derive(Debug, Clone)]
struct StoredTensor {
    name: String,
    shape: Vec<usize>,
    dtype: Option<DType>,
    /// The dtype's name as the file spells it, for messages.
    dtype_name: String,
}

/// Where each network tensor comes from, decided from the listing alone.
struct LoadPlan {
    scheme: NamingScheme,
    /// torchvision name -> name in the file.
    sources: HashMap<String, String>,
    head_replaced: Option<(usize, usize)>,
    stored_dtypes: Vec<String>,
}

/// timm name of a torchvision classifier tensor (features keep their names).
fn timm_name(tv: &str) -> String {
    for (t, m) in [
        ("classifier.0.", "pre_logits.fc1."),
        ("classifier.3.", "pre_logits.fc2."),
        ("classifier.6.", "head.fc."),
    ] {
        if let Some(rest) = tv.strip_prefix(t) {
            return format!("{m}{rest}");
        }
    }
    tv.to_string()
}

/// The shape a network tensor has in a file of this scheme: timm stores the
/// two hidden layers as convolutions (`pre_logits.fc1` a 7x7 conv over the
/// pooled features, flattened in C,H,W order = torchvision's flatten(1)).
fn stored_shape(spec: &TensorSpec, scheme: NamingScheme, config: &VggConfig) -> Vec<usize> {
    if scheme == NamingScheme::Timm && spec.role == TensorRole::LinearWeight {
        let hidden = config.classifier_hidden;
        if spec.name == "classifier.0.weight" {
            return vec![hidden, config.feature_channels(), 7, 7];
        }
        return vec![hidden, hidden, 1, 1];
    }
    spec.shape.clone()
}

fn is_float(dtype: Option<DType>) -> bool {
    matches!(
        dtype,
        Some(DType::F16 | DType::BF16 | DType::F32 | DType::F64)
    )
}

fn is_integer(dtype: Option<DType>) -> bool {
    matches!(
        dtype,
        Some(DType::I64 | DType::I32 | DType::I16 | DType::U32 | DType::U8)
    )
}

/// Matches a checkpoint's listing against the network, collecting every mismatch.
fn plan_load(
    stored: &[StoredTensor],
    config: &VggConfig,
    path: &Path,
) -> Result<LoadPlan, ModelError> {
    let scheme = if stored
        .iter()
        .any(|t| t.name.starts_with("pre_logits.") || t.name.starts_with("head."))
    {
        NamingScheme::Timm
    } else {
        NamingScheme::Torchvision
    };
    let by_name: HashMap<&str, &StoredTensor> =
        stored.iter().map(|t| (t.name.as_str(), t)).collect();
    let specs = tensor_specs(config);
    let mut mismatches = Vec::new();
    let mut sources = HashMap::new();

    // The head may legitimately have another class count: it is then replaced.
    let head_w = by_name.get(timm_or_tv(scheme, "classifier.6.weight").as_str());
    let head_b = by_name.get(timm_or_tv(scheme, "classifier.6.bias").as_str());
    let mut head_replaced = None;
    if let (Some(w), Some(b)) = (head_w, head_b) {
        let consistent =
            w.shape.len() == 2 && w.shape[1] == config.classifier_hidden && b.shape == [w.shape[0]];
        if consistent && w.shape[0] != config.num_classes {
            head_replaced = Some((w.shape[0], config.num_classes));
        }
    }

    for spec in &specs {
        let file_name = timm_or_tv(scheme, &spec.name);
        let expected = stored_shape(spec, scheme, config);
        let Some(found) = by_name.get(file_name.as_str()) else {
            mismatches.push(Mismatch::Missing {
                name: file_name,
                expected,
            });
            continue;
        };
        let is_head = matches!(spec.role, TensorRole::HeadWeight | TensorRole::HeadBias);
        if !(is_head && head_replaced.is_some()) && found.shape != expected {
            mismatches.push(Mismatch::Shape {
                name: file_name.clone(),
                expected,
                found: found.shape.clone(),
            });
        }
        let dtype_ok = if spec.role == TensorRole::BnCounter {
            is_integer(found.dtype) || is_float(found.dtype)
        } else {
            is_float(found.dtype)
        };
        if !dtype_ok {
            mismatches.push(Mismatch::DType {
                name: file_name.clone(),
                expected: if spec.role == TensorRole::BnCounter {
                    "an integer".into()
                } else {
                    "f32, f16, bf16 or f64".into()
                },
                found: found.dtype_name.clone(),
            });
        }
        sources.insert(spec.name.clone(), file_name);
    }
    let known: BTreeSet<String> = specs.iter().map(|s| timm_or_tv(scheme, &s.name)).collect();
    for t in stored {
        if !known.contains(&t.name) {
            mismatches.push(Mismatch::Unexpected {
                name: t.name.clone(),
                found: t.shape.clone(),
            });
        }
    }
    if !mismatches.is_empty() {
        return Err(ModelError::Mismatch {
            path: path.to_path_buf(),
            config: describe(config),
            mismatches,
        });
    }
    let stored_dtypes: BTreeSet<String> = stored.iter().map(|t| t.dtype_name.clone()).collect();
    Ok(LoadPlan {
        scheme,
        sources,
        head_replaced,
        stored_dtypes: stored_dtypes.into_iter().collect(),
    })
}

fn timm_or_tv(scheme: NamingScheme, tv: &str) -> String {
    match scheme {
        NamingScheme::Torchvision => tv.to_string(),
        NamingScheme::Timm => timm_name(tv),
    }
}

fn describe(config: &VggConfig) -> String {
    format!(
        "{:?}{} (num_classes {}, width/{}, hidden {})",
        config.cfg,
        if config.batch_norm { "_bn" } else { "" },
        config.num_classes,
        config.width_divisor,
        config.classifier_hidden
    )
}

/// Builds the network from a plan, reading each tensor through `read`
/// (given the file name and the network shape), and puts a new head in when
/// the plan says so.
/// Tensors holding NaN or an infinity are refused, all named at once: a
/// network built from them trains and predicts nonsense that looks plausible.
fn build(
    path: &Path,
    config: VggConfig,
    device: &Device,
    plan: &LoadPlan,
    format: CheckpointFormat,
    mut read: impl FnMut(&str, &TensorSpec) -> Result<Var, ModelError>,
) -> Result<(Vgg, LoadReport), ModelError> {
    let mut non_finite = Vec::new();
    let seed = config.seed;
    let head = match plan.head_replaced {
        Some(_) => Some(new_head_vars(
            config.classifier_hidden,
            config.num_classes,
            seed,
            device,
        )?),
        None => None,
    };
    let vgg = Vgg::assemble(config, device, &mut |spec: &TensorSpec| {
        match (&head, spec.role) {
            (Some((w, _)), TensorRole::HeadWeight) => return Ok(w.clone()),
            (Some((_, b)), TensorRole::HeadBias) => return Ok(b.clone()),
            _ => {}
        }
        let file_name = plan.sources.get(&spec.name).ok_or_else(|| {
            ModelError::InvalidConfig(format!("internal: no source for {}", spec.name))
        })?;
        let var = read(file_name, spec)?;
        if !all_finite(var.as_tensor())? {
            non_finite.push(file_name.clone());
        }
        Ok(var)
    })?;
    if !non_finite.is_empty() {
        return Err(ModelError::NonFinite {
            path: path.to_path_buf(),
            tensors: non_finite.join(", "),
        });
    }
    Ok((
        vgg,
        LoadReport {
            format,
            scheme: plan.scheme,
            stored_dtypes: plan.stored_dtypes.clone(),
            head_replaced: plan.head_replaced,
        },
    ))
}

/// Whether every value of `t` is finite: its sum is (one reduction, on any
/// device) unless a NaN or an infinity is in it, or finite values overflow,
/// which the exact check then tells apart.
fn all_finite(t: &Tensor) -> Result<bool, ModelError> {
    if !t.dtype().is_float() {
        return Ok(true);
    }
    let sum: f32 = t.sum_all()?.to_dtype(DType::F32)?.to_scalar()?;
    if sum.is_finite() {
        return Ok(true);
    }
    let values: Vec<f32> = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
    Ok(values.iter().all(|v| v.is_finite()))
}

/// Turns a loaded tensor into a variable of the network's shape and dtype.
fn to_var(t: &Tensor, spec: &TensorSpec, device: &Device) -> Result<Var, ModelError> {
    let dtype = if spec.role == TensorRole::BnCounter {
        DType::I64
    } else {
        DType::F32
    };
    let t = t
        .to_dtype(dtype)?
        .reshape(spec.shape.as_slice())?
        .to_device(device)?;
    Ok(Var::from_tensor(&t)?)
}

impl Vgg {
    /// Loads weights from `path`: a safetensors file (memory-mapped) or a
    /// PyTorch zip `.pth`, with torchvision or timm names (detected), f16/bf16
    /// converted to f32. A head with another class count than
    /// `config.num_classes` is replaced by a new one drawn from `config.seed`;
    /// the report says so. Every mismatch is reported at once, before any data
    /// is copied.
    pub fn load(
        path: &Path,
        config: VggConfig,
        device: &Device,
    ) -> Result<(Vgg, LoadReport), ModelError> {
        config.validate()?;
        let io = |source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut first = [0u8; 9];
        let mut file = File::open(path).map_err(io)?;
        let got = read_up_to(&mut file, &mut first).map_err(io)?;
        let first = &first[..got];
        if first.starts_with(b"PK\x03\x04") {
            drop(file);
            return load_pth(path, config, device);
        }
        // safetensors: 8-byte little-endian header length, then a JSON object.
        if got == 9 && first[8] == b'{' {
            return load_safetensors(path, &file, config, device);
        }
        Err(ModelError::UnrecognisedFormat {
            path: path.to_path_buf(),
            first_bytes: first.to_vec(),
        })
    }

    /// Builds a network from in-memory tensors named as in a checkpoint
    /// (either scheme), with the same checks and head handling as [`Vgg::load`].
    pub fn from_named_tensors(
        tensors: Vec<(String, Tensor)>,
        config: VggConfig,
        device: &Device,
    ) -> Result<(Vgg, LoadReport), ModelError> {
        config.validate()?;
        let stored: Vec<StoredTensor> = tensors
            .iter()
            .map(|(name, t)| StoredTensor {
                name: name.clone(),
                shape: t.dims().to_vec(),
                dtype: Some(t.dtype()),
                dtype_name: t.dtype().as_str().to_string(),
            })
            .collect();
        let plan = plan_load(&stored, &config, Path::new("<tensors>"))?;
        let map: HashMap<String, Tensor> = tensors.into_iter().collect();
        build(
            Path::new("<tensors>"),
            config,
            device,
            &plan,
            CheckpointFormat::Memory,
            |name, spec| {
                let t = map.get(name).ok_or_else(|| {
                    ModelError::InvalidConfig(format!("internal: tensor {name} vanished"))
                })?;
                to_var(t, spec, device)
            },
        )
    }

    /// Writes the full state dict with torchvision names (and the current
    /// head's shape) as safetensors, which
    /// `torchvision.models.vgg16(num_classes=n).load_state_dict(safetensors.torch.load_file(path))`
    /// accepts. Written atomically ([`write_safetensors`]), so a crash never
    /// leaves a half-written checkpoint under `path`.
    pub fn save_safetensors(&self, path: &Path) -> Result<(), ModelError> {
        write_safetensors(path, &self.to_named_tensors(), None)
    }
}

/// Writes named tensors as a safetensors file, atomically
/// ([`finetune_files::atomic`]), streaming tensor by tensor (no whole-file
/// buffer in memory).
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<(), ModelError> {
    write_atomic(path, |tmp| {
        let data = tensors.iter().map(|(n, t)| (n.as_str(), t));
        safetensors::serialize_to_file(data, metadata, tmp).map_err(|e| ModelError::Io {
            path: tmp.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })
    })
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

fn st_dtype(d: safetensors::Dtype) -> Option<DType> {
    use safetensors::Dtype as S;
    match d {
        S::F16 => Some(DType::F16),
        S::BF16 => Some(DType::BF16),
        S::F32 => Some(DType::F32),
        S::F64 => Some(DType::F64),
        S::I64 => Some(DType::I64),
        S::I32 => Some(DType::I32),
        S::I16 => Some(DType::I16),
        S::U32 => Some(DType::U32),
        S::U8 => Some(DType::U8),
        _ => None,
    }
}

/// Bytes converted per step; after each step the mapped pages are released
/// so that loading holds about one copy of the weights, not two.
const CHUNK_BYTES: usize = 16 << 20;

fn load_safetensors(
    path: &Path,
    file: &File,
    config: VggConfig,
    device: &Device,
) -> Result<(Vgg, LoadReport), ModelError> {
    let corrupt = |reason: String| ModelError::Corrupt {
        path: path.to_path_buf(),
        format: "safetensors",
        reason,
    };
    // SAFETY: the map is read-only; like every mmap-based loader (candle's
    // MmapedSafetensors included) we assume nobody truncates the file while
    // it is being loaded.
    let mmap = unsafe { memmap2::Mmap::map(file) }.map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let st = safetensors::SafeTensors::deserialize(&mmap).map_err(|e| corrupt(e.to_string()))?;
    let plan = plan_load(&safetensors_listing(&st), &config, path)?;
    let base = mmap.as_ptr() as usize;
    build(
        path,
        config,
        device,
        &plan,
        CheckpointFormat::Safetensors,
        |name, spec| {
            let view = st.tensor(name).map_err(|e| corrupt(e.to_string()))?;
            let bytes = view.data();
            let dtype = st_dtype(view.dtype());
            let release = |chunk: &[u8]| {
                #[cfg(unix)]
                {
                    // SAFETY: DontNeed on a read-only shared file mapping only
                    // drops cached pages; a later access reads them from the file again.
                    let _ = unsafe {
                        mmap.unchecked_advise_range(
                            memmap2::UncheckedAdvice::DontNeed,
                            chunk.as_ptr() as usize - base,
                            chunk.len(),
                        )
                    };
                }
                #[cfg(not(unix))]
                let _ = chunk;
            };
            if spec.role == TensorRole::BnCounter {
                let t = Tensor::from_raw_buffer(
                    bytes,
                    dtype.unwrap_or(DType::I64),
                    view.shape(),
                    &Device::Cpu,
                )?;
                return to_var(&t, spec, device);
            }
            let data = decode_f32(bytes, dtype, release)
                .ok_or_else(|| corrupt(format!("tensor {name}: unsupported dtype")))?;
            Ok(Var::from_vec(data, spec.shape.as_slice(), device)?)
        },
    )
}

/// What a safetensors header lists.
fn safetensors_listing(st: &safetensors::SafeTensors<'_>) -> Vec<StoredTensor> {
    st.tensors()
        .into_iter()
        .map(|(name, view)| StoredTensor {
            name,
            shape: view.shape().to_vec(),
            dtype: st_dtype(view.dtype()),
            dtype_name: format!("{:?}", view.dtype()).to_lowercase(),
        })
        .collect()
}

/// What a `.pth` file lists, sorted by name.
fn pth_listing(pth: &candle_core::pickle::PthTensors) -> Vec<StoredTensor> {
    let mut stored: Vec<StoredTensor> = pth
        .tensor_infos()
        .values()
        .map(|info| StoredTensor {
            name: info.name.clone(),
            shape: info.layout.dims().to_vec(),
            dtype: Some(info.dtype),
            dtype_name: info.dtype.as_str().to_string(),
        })
        .collect();
    stored.sort_by(|a, b| a.name.cmp(&b.name));
    stored
}

/// The tensors stored in the checkpoint at `path` (safetensors or PyTorch
/// `.pth`), from its listing alone: no tensor data is read.
fn stored_tensors(path: &Path) -> Result<Vec<StoredTensor>, ModelError> {
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut first = [0u8; 9];
    let got = read_up_to(&mut file, &mut first).map_err(io)?;
    if first[..got].starts_with(b"PK\x03\x04") {
        drop(file);
        return Ok(pth_listing(&open_pth(path)?));
    }
    if got == 9 && first[8] == b'{' {
        // SAFETY: read-only map, only the header is parsed (see load_safetensors).
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        let st = safetensors::SafeTensors::deserialize(&mmap).map_err(|e| ModelError::Corrupt {
            path: path.to_path_buf(),
            format: "safetensors",
            reason: e.to_string(),
        })?;
        return Ok(safetensors_listing(&st));
    }
    Err(ModelError::UnrecognisedFormat {
        path: path.to_path_buf(),
        first_bytes: first[..got].to_vec(),
    })
}

/// The names of the tensors stored in the checkpoint at `path`
/// (safetensors or PyTorch `.pth`), sorted, from its listing alone: no tensor
/// data is read.
pub fn stored_tensor_names(path: &Path) -> Result<Vec<String>, ModelError> {
    let mut names: Vec<String> = stored_tensors(path)?.into_iter().map(|t| t.name).collect();
    names.sort();
    Ok(names)
}

/// The class count of the head stored in the checkpoint at `path`
/// (`classifier.6.weight`, or timm's `head.fc.weight`: shape
/// `[classes, hidden]`), read from the tensor listing alone, so a tool can
/// build the matching network before loading. Safetensors or PyTorch `.pth`.
pub fn stored_num_classes(path: &Path) -> Result<usize, ModelError> {
    stored_tensors(path)?
        .iter()
        .find(|t| {
            (t.name == "classifier.6.weight" || t.name == "head.fc.weight") && t.shape.len() == 2
        })
        .map(|t| t.shape[0])
        .ok_or_else(|| ModelError::Mismatch {
            path: path.to_path_buf(),
            config: "a VGG classifier".into(),
            mismatches: vec![Mismatch::Missing {
                name: "classifier.6.weight".into(),
                expected: vec![0, 0],
            }],
        })
}

/// Checks, from the tensor listing alone, that `path` holds a network laid
/// out as `config` describes, at whatever width its first convolution and
/// its first hidden layer have (so narrow test networks pass too): every
/// tensor by name, shape and dtype, the head's class count included; every
/// problem is listed otherwise.
#[cfg(feature = "download")]
pub(crate) fn check_listing(path: &Path, config: &VggConfig) -> Result<(), ModelError> {
    let stored = stored_tensors(path)?;
    let rows = |names: &[&str]| {
        stored
            .iter()
            .find(|t| names.contains(&t.name.as_str()))
            .and_then(|t| t.shape.first().copied())
    };
    let mut config = config.clone();
    if let Some(first) = rows(&["features.0.weight"]).filter(|&c| c > 0 && 64 % c == 0) {
        config.width_divisor = 64 / first;
    }
    if let Some(hidden) = rows(&["classifier.0.weight", "pre_logits.fc1.weight"]) {
        config.classifier_hidden = hidden;
    }
    let config = &config;
    let plan = plan_load(&stored, config, path)?;
    match plan.head_replaced {
        None => Ok(()),
        Some((found, wanted)) => Err(ModelError::Mismatch {
            path: path.to_path_buf(),
            config: describe(config),
            mismatches: vec![Mismatch::Shape {
                name: timm_or_tv(plan.scheme, "classifier.6.weight"),
                expected: vec![wanted, config.classifier_hidden],
                found: vec![found, config.classifier_hidden],
            }],
        }),
    }
}

/// Little-endian float bytes to f32, in chunks, calling `release` on each
/// chunk once it has been copied.
fn decode_f32(bytes: &[u8], dtype: Option<DType>, release: impl Fn(&[u8])) -> Option<Vec<f32>> {
    let width = match dtype? {
        DType::F32 | DType::F16 | DType::BF16 | DType::F64 => dtype?.size_in_bytes(),
        _ => return None,
    };
    let mut out = Vec::with_capacity(bytes.len() / width);
    let step = CHUNK_BYTES - CHUNK_BYTES % width;
    for chunk in bytes.chunks(step) {
        match dtype? {
            DType::F32 => out.extend(
                chunk
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
            DType::F16 => out.extend(
                chunk
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
            ),
            DType::BF16 => out.extend(
                chunk
                    .chunks_exact(2)
                    .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()),
            ),
            _ => out.extend(chunk.chunks_exact(8).map(|b| {
                f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            })),
        }
        release(chunk);
    }
    Some(out)
}

/// A `.pth` file's error as the user sees it: the file, the format, candle's reason.
fn pth_corrupt(path: &Path, e: candle_core::Error) -> ModelError {
    ModelError::Corrupt {
        path: path.to_path_buf(),
        format: "PyTorch .pth",
        reason: e.to_string(),
    }
}

/// Opens a PyTorch zip checkpoint's tensor listing. A bare state dict is the
/// common case; training scripts often nest it under `state_dict` or `model`.
fn open_pth(path: &Path) -> Result<candle_core::pickle::PthTensors, ModelError> {
    let mut pth =
        candle_core::pickle::PthTensors::new(path, None).map_err(|e| pth_corrupt(path, e))?;
    for key in ["state_dict", "model"] {
        if !pth.tensor_infos().is_empty() {
            break;
        }
        if let Ok(nested) = candle_core::pickle::PthTensors::new(path, Some(key)) {
            pth = nested;
        }
    }
    Ok(pth)
}

fn load_pth(
    path: &Path,
    config: VggConfig,
    device: &Device,
) -> Result<(Vgg, LoadReport), ModelError> {
    let corrupt = |e: candle_core::Error| pth_corrupt(path, e);
    let pth = open_pth(path)?;
    let plan = plan_load(&pth_listing(&pth), &config, path)?;
    build(
        path,
        config,
        device,
        &plan,
        CheckpointFormat::Pth,
        |name, spec| {
            let t = pth
                .get(name)
                .map_err(corrupt)?
                .ok_or_else(|| ModelError::Corrupt {
                    path: PathBuf::from(path),
                    format: "PyTorch .pth",
                    reason: format!("tensor {name} listed but not readable"),
                })?;
            to_var(&t, spec, device)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_num_classes_reads_the_head_from_the_listing() {
        let dir = tempfile::tempdir().unwrap();
        let config = VggConfig {
            width_divisor: 16,
            classifier_hidden: 8,
            ..VggConfig::new(crate::VggVariant::Vgg11, false, 7)
        };
        let path = dir.path().join("w.safetensors");
        Vgg::new_random(config, 0, &Device::Cpu)
            .unwrap()
            .save_safetensors(&path)
            .unwrap();
        assert_eq!(stored_num_classes(&path).unwrap(), 7);
        let text = dir.path().join("labels.txt");
        std::fs::write(&text, "cat\ndog\n").unwrap();
        assert!(matches!(
            stored_num_classes(&text),
            Err(ModelError::UnrecognisedFormat { .. })
        ));
    }
}
