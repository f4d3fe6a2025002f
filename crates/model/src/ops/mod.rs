//! The kernels behind the layers: the 3x3 convolution (im2col and GEMM, or
//! Winograd F(2x2, 3x3)), the linear layer, the 2x2 max-pool and the adaptive
//! average pool, with their backward passes, and the BLAS threading and
//! allocator settings they rely on.
//!
//! Each fast path is a candle custom op guarded to f32 tensors on the CPU
//! and tested against candle's device-generic ops, which every other device
//! and dtype runs (the place for CUDA ops too).

pub(crate) mod adaptive_pool;
mod blas;
pub(crate) mod conv;
pub(crate) mod linear;
pub(crate) mod max_pool;
pub(crate) mod memory;
mod winograd;

#[cfg(test)]
pub(crate) mod tests {
    use candle_core::{Device, Tensor};

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
}
