//! The arithmetic of the CPU GEMMs: f32, as PyTorch computes, or bfloat16
//! products accumulated in f32 where the CPU has AVX512_BF16.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::ModelError;

/// How the CPU convolutions and linear layers multiply (set with
/// [`set_precision`]; weights, activations, gradients and the optimiser
/// stay f32 either way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// f32 products and sums: the same numbers as PyTorch's f32, up to the
    /// order of the sums (the default).
    #[default]
    F32,
    /// Both operands of every GEMM rounded to bfloat16 (8 significant
    /// bits) as they are packed, their products summed in f32: twice the
    /// multiply-adds per instruction, about 3 significant digits per
    /// product. Needs AVX512_BF16 ([`bf16_supported`]).
    Bf16,
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        })
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!(
                "unknown precision `{other}` (expected f32 or bf16)"
            )),
        }
    }
}

/// Process-wide switch of [`set_precision`].
static BF16: AtomicBool = AtomicBool::new(false);

/// Whether this CPU can run [`Precision::Bf16`]: AVX-512F with AVX512_BF16,
/// AVX512BW and AVX512VL (AMD Zen 4 and later; Intel Cooper Lake, Sapphire Rapids
/// and later).
pub fn bf16_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    return super::bf16::available();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Sets the arithmetic of every later CPU convolution and linear layer,
/// forward and backward, process-wide. Other devices are not affected.
///
/// # Errors
/// [`ModelError::Unsupported`] for [`Precision::Bf16`] on a CPU without
/// AVX512_BF16 (nothing is changed then).
pub fn set_precision(precision: Precision) -> Result<(), ModelError> {
    if precision == Precision::Bf16 && !bf16_supported() {
        return Err(ModelError::Unsupported(
            "precision bf16 needs a CPU with AVX512_BF16 (AMD Zen 4 or later, Intel Cooper Lake or Sapphire Rapids and later); this one has none: use f32".into(),
        ));
    }
    BF16.store(precision == Precision::Bf16, Ordering::Relaxed);
    Ok(())
}

/// The arithmetic [`set_precision`] last set.
pub fn precision() -> Precision {
    if bf16() {
        Precision::Bf16
    } else {
        Precision::F32
    }
}

/// Whether the GEMMs round their operands to bfloat16.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn bf16() -> bool {
    BF16.load(Ordering::Relaxed)
}
