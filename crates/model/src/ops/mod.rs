//! The kernels behind the layers: the 3x3 convolution (im2col and GEMM, or
//! Winograd F(2x2, 3x3)), the linear layer, the 2x2 max-pool and the adaptive
//! average pool, with their backward passes, and the BLAS threading and
//! allocator settings they rely on; optionally with bfloat16 GEMMs
//! ([`precision`]).
//!
//! Each fast path is a candle custom op guarded to f32 tensors on the CPU
//! and tested against candle's device-generic ops, which every other device
//! and dtype runs (the place for CUDA ops too).

pub(crate) mod adaptive_pool;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod bf16;
mod blas;
pub(crate) mod conv;
#[cfg(target_arch = "x86_64")]
mod dot;
pub(crate) mod linear;
pub(crate) mod max_pool;
pub(crate) mod memory;
pub(crate) mod precision;
#[cfg(target_arch = "x86_64")]
mod simd;
mod winograd;

use candle_core::Tensor;

/// Runs `f` compiled for AVX-512F where the CPU has it (the baseline x86-64
/// target the project builds for has only SSE2): the plain loops of the
/// Winograd transforms and of the filter build then vectorise 16 floats at
/// a time instead of 4. Same results on either path: those loops add,
/// subtract, multiply and compare element by element, with no reductions to
/// reorder, and nothing is fused into a multiply-add without a fast-math
/// flag, which Rust never sets. Only code inlined into the AVX-512 instance
/// is compiled for it: callers mark the closure `#[inline(always)]` (a
/// closure does not inherit the features otherwise), and so are the
/// functions it calls.
#[inline(always)]
pub(crate) fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if avx512::available() && !narrow_for_tests() {
        // SAFETY: the CPU has the features `with_avx512` is compiled for.
        return unsafe { with_avx512(f) };
    }
    f()
}

/// Set by tests to run [`wide`]'s baseline path, whose results must be the
/// same bits.
#[cfg(test)]
pub(crate) static NARROW: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn narrow_for_tests() -> bool {
    #[cfg(test)]
    return NARROW.load(std::sync::atomic::Ordering::Relaxed);
    #[cfg(not(test))]
    false
}

/// `f()`, with `f` inlined and compiled for AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f")]
unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// PyTorch's ReLU on one value: `max(v, 0)`, except that NaN stays NaN
/// (`torch.relu` propagates it; `f32::max` would turn it into 0 and hide a
/// broken input). Vectorises to a compare and a blend.
#[inline(always)]
pub(crate) fn relu_f32(v: f32) -> f32 {
    if v <= 0.0 {
        0.0
    } else {
        v
    }
}

/// [`relu_f32`] on a tensor, on any device: candle's `relu` maps NaN to 0,
/// so NaNs are put back where they were.
pub(crate) fn relu(t: &Tensor) -> candle_core::Result<Tensor> {
    let nan = t.ne(t)?;
    nan.where_cond(t, &t.relu()?)
}

#[cfg(test)]
pub(crate) mod tests {
    use candle_core::{Device, Tensor};

    #[test]
    fn relu_keeps_nan_as_pytorch_does() {
        assert!(super::relu_f32(f32::NAN).is_nan());
        assert_eq!(super::relu_f32(-2.0), 0.0);
        assert_eq!(super::relu_f32(3.0), 3.0);
        let t = Tensor::new(&[f32::NAN, -1.0, 2.0], &Device::Cpu).unwrap();
        let r: Vec<f32> = super::relu(&t).unwrap().to_vec1().unwrap();
        assert!(r[0].is_nan());
        assert_eq!(&r[1..], [0.0, 2.0]);
    }

    /// Deterministic pseudo-random values in [0, 1) of `shape`.
    pub(crate) fn random(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| ((i as f64 * 0.7548 + seed as f64 * 1.37).sin() * 43758.5453).fract() as f32)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).expect("tensor")
    }

    /// [`crate::relative_diff`], panicking on a shape mismatch.
    pub(crate) fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
        crate::relative_diff(a, b).expect("comparable tensors")
    }

    /// Asserts that `ours` equals `want` within `tol` (relative), and that so
    /// do the gradients of `sum(out * g)` with respect to each of `vars`.
    pub(crate) fn assert_same_forward_and_gradients(
        (ours, want): (Tensor, Tensor),
        g: &Tensor,
        vars: &[(&str, &candle_core::Var)],
        tol: f32,
        tag: &str,
    ) {
        assert!(rel_diff(&ours, &want) < tol, "forward {tag}");
        let backward = |t: Tensor| {
            t.mul(g)
                .and_then(|t| t.sum_all())
                .and_then(|t| t.backward())
        };
        let (go, gw) = (
            backward(ours).expect("ours"),
            backward(want).expect("reference"),
        );
        for (name, v) in vars {
            let (a, e) = (go.get(v).expect("ours"), gw.get(v).expect("reference"));
            assert!(
                rel_diff(a, e) < tol,
                "grad {name} {tag}: {}",
                rel_diff(a, e)
            );
        }
    }
}
