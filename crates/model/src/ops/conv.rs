//! VGG's 3x3 convolution (stride 1, padding 1) with its bias and optional
//! ReLU, as one CPU custom op: Winograd F(2x2, 3x3) (`winograd.rs`) for
//! layers with at least 16 input and output channels, im2col and a blocked
//! GEMM for the others (the 3-channel `features.0`) or when
//! [`set_winograd`] turned it off.
//!
//! Why: candle 0.11.1 computes a convolution's input gradient with
//! `conv_transpose2d` (a direct loop) and its weight gradient as a
//! convolution whose kernel is the whole output map, both far from the
//! machine's GEMM speed; the forward pass tiles im2col into small GEMMs.
//! Here every product is a large GEMM (`gemm` crate, the one candle itself
//! uses): on the im2col path `Y = W · col(X)`, `dW = dY · col(X)ᵀ` and
//! `dX = col⁻¹(Wᵀ · dY)`; the bias and ReLU are fused into the passes around
//! them, and the input gradient is skipped when the input does not need one
//! (the image batch entering `features.0`).
//!
//! Only f32 tensors on the CPU take this path; on other devices and dtypes
//! [`conv3x3`] is candle's own `conv2d`, bias add and ReLU.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::blas::{contiguous_f32 as slice, Gemm};
use super::relu_f32;
use super::winograd;
use crate::ModelError;

/// Most f32 elements a scratch matrix may hold (32 MiB): bounds how many
/// images go into one GEMM, while keeping the GEMMs wide. Tests use a small
/// budget so that batches span several chunks.
const SCRATCH_ELEMS: usize = if cfg!(test) { 1 << 16 } else { 8 << 20 };

thread_local! {
    /// im2col / column-gradient matrix and the `[K, images·H·W]` product,
    /// reused across calls so that each layer does not fault in fresh pages.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `relu?(conv2d(x, w, padding 1) + b)` for `x: [N, C, H, W]`, `w: [K, C, 3, 3]`,
/// `b: [K]`, differentiable in all three.
pub(crate) fn conv3x3(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    relu: bool,
) -> Result<Tensor, ModelError> {
    let fast = x.device().is_cpu()
        && x.dtype() == candle_core::DType::F32
        && w.dtype() == candle_core::DType::F32
        && b.dtype() == candle_core::DType::F32
        && w.dims().len() == 4
        && w.dims()[2..] == [3, 3];
    if fast {
        let y = x
            .contiguous()?
            .apply_op3(&w.contiguous()?, &b.contiguous()?, Conv3x3 { relu })?;
        return Ok(y);
    }
    reference_conv3x3(x, w, b, relu)
}

/// The same function from candle's own ops: the path off the CPU, and the
/// reference the custom op is tested against.
pub(crate) fn reference_conv3x3(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    relu: bool,
) -> Result<Tensor, ModelError> {
    let k = w.dim(0)?;
    let y = x
        .conv2d(w, 1, 1, 1, 1)?
        .broadcast_add(&b.reshape((1, k, 1, 1))?)?;
    Ok(if relu { super::relu(&y)? } else { y })
}

/// The custom op; `relu` says whether a ReLU follows (fused).
struct Conv3x3 {
    relu: bool,
}

/// Sizes of one convolution.
#[derive(Clone, Copy)]
struct Dims {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
}

impl Dims {
    fn s(&self) -> usize {
        self.h * self.w
    }
    /// Rows of the im2col matrix: one per input channel and kernel tap.
    fn p(&self) -> usize {
        self.c * 9
    }
    /// Images per GEMM so that both scratch matrices stay within `SCRATCH_ELEMS`.
    fn chunk(&self) -> usize {
        let per_image = self.s() * self.p().max(self.k);
        (SCRATCH_ELEMS / per_image.max(1)).clamp(1, self.n.max(1))
    }
}

fn dims(x: &Layout, w: &Layout, b: &Layout) -> candle_core::Result<Dims> {
    let (n, c, h, wd) = x.shape().dims4()?;
    let (k, c2, kh, kw) = w.shape().dims4()?;
    let kb = b.shape().dims1()?;
    if c != c2 || kh != 3 || kw != 3 || kb != k {
        candle_core::bail!(
            "conv3x3: input {:?}, weight {:?}, bias {:?} do not fit",
            x.shape(),
            w.shape(),
            b.shape()
        );
    }
    Ok(Dims { n, c, h, w: wd, k })
}

impl CustomOp3 for Conv3x3 {
    fn name(&self) -> &'static str {
        "conv3x3"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = dims(l1, l2, l3)?;
        let (x, w, b) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let y = forward(&d, x, w, b, self.relu);
        Ok((CpuStorage::F32(y), Shape::from((d.n, d.k, d.h, d.w))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let need = Need {
            x: x.track_op(),
            w: w.track_op(),
            b: b.track_op(),
        };
        let grad = grad.contiguous()?;
        let (sx, lx) = x.storage_and_layout();
        let (sw, lw) = w.storage_and_layout();
        let (sb, lb) = b.storage_and_layout();
        let (sy, ly) = y.storage_and_layout();
        let (sg, lg) = grad.storage_and_layout();
        let (
            Storage::Cpu(sx),
            Storage::Cpu(sw),
            Storage::Cpu(sy),
            Storage::Cpu(sg),
            Storage::Cpu(_),
        ) = (&*sx, &*sw, &*sy, &*sg, &*sb)
        else {
            candle_core::bail!("conv3x3: backward on a non-CPU tensor");
        };
        let d = dims(lx, lw, lb)?;
        let y = if self.relu {
            Some(slice(sy, ly)?)
        } else {
            None
        };
        let g = backward(&d, slice(sx, lx)?, slice(sw, lw)?, y, slice(sg, lg)?, need);
        let dev = x.device();
        let dx =
            g.dx.map(|v| Tensor::from_vec(v, (d.n, d.c, d.h, d.w), dev))
                .transpose()?;
        let dw =
            g.dw.map(|v| Tensor::from_vec(v, (d.k, d.c, 3, 3), dev))
                .transpose()?;
        let db = g.db.map(|v| Tensor::from_vec(v, d.k, dev)).transpose()?;
        Ok((dx, dw, db))
    }
}

/// Which gradients the backward pass computes.
#[derive(Clone, Copy)]
struct Need {
    x: bool,
    w: bool,
    b: bool,
}

struct Grads {
    dx: Option<Vec<f32>>,
    dw: Option<Vec<f32>>,
    db: Option<Vec<f32>>,
}

/// Fills `col[P, chunk·S]` for images `n0..n0+chunk`: row `c·9 + ky·3 + kx`
/// holds input channel `c` shifted by `(ky-1, kx-1)`, zero outside the image.
fn im2col(d: &Dims, x: &[f32], n0: usize, chunk: usize, col: &mut [f32]) {
    let (s, h, w, c) = (d.s(), d.h, d.w, d.c);
    let len = chunk * s;
    col[..d.p() * len]
        .par_chunks_mut(len)
        .enumerate()
        .for_each(|(p, row)| {
            let (ci, ky, kx) = (p / 9, (p % 9) / 3, p % 3);
            for i in 0..chunk {
                let img = &x[((n0 + i) * c + ci) * s..][..s];
                for (y, dst) in row[i * s..(i + 1) * s].chunks_exact_mut(w).enumerate() {
                    let sy = y + ky;
                    if sy == 0 || sy > h {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &img[(sy - 1) * w..][..w];
                    match kx {
                        0 => {
                            dst[0] = 0.0;
                            dst[1..].copy_from_slice(&src[..w - 1]);
                        }
                        1 => dst.copy_from_slice(src),
                        _ => {
                            dst[..w - 1].copy_from_slice(&src[1..]);
                            dst[w - 1] = 0.0;
                        }
                    }
                }
            }
        });
}

/// Adds the columns of `dcol[P, chunk·S]` back into the input planes they came
/// from: `dx` holds the `chunk` images' `[C, H, W]` gradients.
fn col2im(d: &Dims, dcol: &[f32], chunk: usize, dx: &mut [f32]) {
    let (s, h, w, c) = (d.s(), d.h, d.w, d.c);
    let len = chunk * s;
    dx.par_chunks_mut(s).enumerate().for_each(|(idx, plane)| {
        let (i, ci) = (idx / c, idx % c);
        plane.fill(0.0);
        for ky in 0..3 {
            for kx in 0..3 {
                let row = &dcol[(ci * 9 + ky * 3 + kx) * len + i * s..][..s];
                for (y, src) in row.chunks_exact(w).enumerate() {
                    let sy = y + ky;
                    if sy == 0 || sy > h {
                        continue;
                    }
                    let dst = &mut plane[(sy - 1) * w..][..w];
                    let (dst, src) = match kx {
                        0 => (&mut dst[..w - 1], &src[1..]),
                        1 => (&mut dst[..], src),
                        _ => (&mut dst[1..], &src[..w - 1]),
                    };
                    for (a, b) in dst.iter_mut().zip(src) {
                        *a += b;
                    }
                }
            }
        }
    });
}

fn with_scratch<R>(
    col_len: usize,
    mat_len: usize,
    f: impl FnOnce(&mut [f32], &mut [f32]) -> R,
) -> R {
    SCRATCH.with(|cell| {
        let mut guard = cell.borrow_mut();
        let (col, mat) = &mut *guard;
        if col.len() < col_len {
            col.resize(col_len, 0.0);
        }
        if mat.len() < mat_len {
            mat.resize(mat_len, 0.0);
        }
        f(&mut col[..col_len], &mut mat[..mat_len])
    })
}

/// Process-wide switch of [`set_winograd`].
static WINOGRAD: AtomicBool = AtomicBool::new(true);

/// Turns Winograd F(2x2, 3x3) for the CPU 3x3 convolutions on (the default)
/// or off (im2col and GEMM only, e.g. to compare speed or rounding).
/// Process-wide; both give the same results up to f32 rounding (tested to
/// 1e-5 relative against candle's `conv2d`).
pub fn set_winograd(enabled: bool) {
    WINOGRAD.store(enabled, Ordering::Relaxed);
}

/// Whether a convolution goes through Winograd F(2x2, 3x3) rather than
/// im2col: not with few channels (the 3-channel first layer), where the
/// GEMMs over channels are too thin for the transforms to pay off.
fn use_winograd(d: &Dims) -> bool {
    WINOGRAD.load(Ordering::Relaxed) && d.c >= 16 && d.k >= 16
}

fn forward(d: &Dims, x: &[f32], w: &[f32], b: &[f32], relu: bool) -> Vec<f32> {
    let (s, k, p) = (d.s(), d.k, d.p());
    if d.n * k * s > 0 && use_winograd(d) {
        let filters = winograd::Filters::forward(w, k, d.c);
        let e = winograd::Epilogue {
            bias: Some(b),
            relu,
            input_mask: None,
        };
        return winograd::conv(&filters, x, d.n, d.h, d.w, &e);
    }
    let mut y = vec![0f32; d.n * k * s];
    if y.is_empty() {
        return y;
    }
    let chunk = d.chunk();
    with_scratch(p * chunk * s, k * chunk * s, |col, mat| {
        for n0 in (0..d.n).step_by(chunk) {
            let m = chunk.min(d.n - n0);
            let len = m * s;
            im2col(d, x, n0, m, col);
            Gemm {
                m: k,
                n: len,
                k: p,
                acc: false,
            }
            .run(&mut mat[..k * len], (w, p, 1), (&col[..p * len], len, 1));
            // [K, m·S] -> images' [K, S] planes, with bias and ReLU.
            let mat = &mat[..k * len];
            y[n0 * k * s..(n0 + m) * k * s]
                .par_chunks_mut(s)
                .enumerate()
                .for_each(|(idx, plane)| {
                    let (i, ki) = (idx / k, idx % k);
                    let src = &mat[ki * len + i * s..][..s];
                    let bias = b[ki];
                    if relu {
                        for (o, v) in plane.iter_mut().zip(src) {
                            *o = relu_f32(v + bias);
                        }
                    } else {
                        for (o, v) in plane.iter_mut().zip(src) {
                            *o = v + bias;
                        }
                    }
                });
        }
    });
    y
}

/// `dst = g` where the ReLU's output `y` is positive, else 0 (PyTorch's
/// `threshold_backward`); a plain copy without a ReLU.
fn relu_backward(dst: &mut [f32], g: &[f32], y: Option<&[f32]>) {
    match y {
        Some(y) => {
            for ((o, gv), yv) in dst.iter_mut().zip(g).zip(y) {
                *o = if *yv > 0.0 { *gv } else { 0.0 };
            }
        }
        None => dst.copy_from_slice(g),
    }
}

/// Sum of `v` in 16 independent f32 lanes (vectorised), combined in f64.
fn lane_sum(v: &[f32]) -> f64 {
    let mut acc = [0f32; 16];
    let chunks = v.chunks_exact(16);
    let tail: f64 = chunks.remainder().iter().map(|&x| x as f64).sum();
    for ch in chunks {
        for (a, x) in acc.iter_mut().zip(ch) {
            *a += x;
        }
    }
    tail + acc.iter().map(|&x| x as f64).sum::<f64>()
}

/// The backward pass through Winograd: the input gradient is itself a 3x3
/// convolution (of the masked output gradient with the flipped, transposed
/// filters), and the weight gradient the adjoint of the forward transforms;
/// neither needs im2col or col2im.
fn backward_winograd(
    d: &Dims,
    x: &[f32],
    w: &[f32],
    y: Option<&[f32]>,
    g: &[f32],
    need: Need,
) -> Grads {
    let (s, k) = (d.s(), d.k);
    let dx = need.x.then(|| {
        let filters = winograd::Filters::input_gradient(w, k, d.c);
        let e = winograd::Epilogue {
            bias: None,
            relu: false,
            input_mask: y,
        };
        winograd::conv(&filters, g, d.n, d.h, d.w, &e)
    });
    let dw = need
        .w
        .then(|| winograd::weight_gradient(x, g, y, d.n, d.c, k, d.h, d.w));
    // Bias: the masked gradient summed per channel, in f64 (N·H·W terms).
    let db = need.b.then(|| {
        (0..k)
            .into_par_iter()
            .map(|ki| {
                let mut sum = 0f64;
                let mut row = vec![0f32; s];
                for i in 0..d.n {
                    let at = (i * k + ki) * s;
                    relu_backward(&mut row, &g[at..at + s], y.map(|y| &y[at..at + s]));
                    sum += lane_sum(&row);
                }
                sum as f32
            })
            .collect()
    });
    Grads { dx, dw, db }
}

fn backward(d: &Dims, x: &[f32], w: &[f32], y: Option<&[f32]>, g: &[f32], need: Need) -> Grads {
    if use_winograd(d) {
        return backward_winograd(d, x, w, y, g, need);
    }
    let (s, k, p) = (d.s(), d.k, d.p());
    let mut dx = need.x.then(|| vec![0f32; d.n * d.c * s]);
    let mut dw = need.w.then(|| vec![0f32; k * p]);
    // Bias sums in f64: up to N·H·W terms per channel.
    let mut db = vec![0f64; k];
    let chunk = d.chunk();
    with_scratch(p * chunk * s, k * chunk * s, |col, dz| {
        for n0 in (0..d.n).step_by(chunk) {
            let m = chunk.min(d.n - n0);
            let len = m * s;
            let dz = &mut dz[..k * len];
            // dZ = dY masked by the ReLU (PyTorch: gradient where the output > 0),
            // gathered as [K, m·S]; each row's sum is the bias gradient.
            let sums: Vec<f64> = dz
                .par_chunks_mut(len)
                .enumerate()
                .map(|(ki, row)| {
                    let mut sum = 0f64;
                    for i in 0..m {
                        let at = ((n0 + i) * k + ki) * s;
                        let dst = &mut row[i * s..(i + 1) * s];
                        relu_backward(dst, &g[at..at + s], y.map(|y| &y[at..at + s]));
                        sum += lane_sum(dst);
                    }
                    sum
                })
                .collect();
            for (acc, v) in db.iter_mut().zip(sums) {
                *acc += v;
            }
            let col = &mut col[..p * len];
            if let Some(dw) = dw.as_mut() {
                // dW[K, P] += dZ[K, m·S] · col[P, m·S]ᵀ
                im2col(d, x, n0, m, col);
                Gemm {
                    m: k,
                    n: p,
                    k: len,
                    acc: n0 > 0,
                }
                .run(dw, (dz, len, 1), (col, 1, len));
            }
            if let Some(dx) = dx.as_mut() {
                // dcol[P, m·S] = Wᵀ[P, K] · dZ[K, m·S], then back onto the input planes.
                Gemm {
                    m: p,
                    n: len,
                    k,
                    acc: false,
                }
                .run(col, (w, 1, p), (dz, len, 1));
                col2im(d, col, m, &mut dx[n0 * d.c * s..(n0 + m) * d.c * s]);
            }
        }
    });
    Grads {
        dx,
        dw,
        db: need.b.then(|| db.into_iter().map(|v| v as f32).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::tests::{assert_same_forward_and_gradients, random};
    use candle_core::Var;

    /// Forward and all three gradients of the custom op against candle's
    /// conv2d + bias + ReLU on random inputs. Tolerance 1e-5 of each
    /// tensor's largest magnitude: both sides are f32 sums of at most a few
    /// thousand products, in different orders.
    #[test]
    fn matches_candle_forward_and_backward() -> Result<(), ModelError> {
        const TOL: f32 = 1e-5;
        // (N, C, H, W, K): odd sizes, 1-pixel maps, one channel, a batch that spans GEMM chunks;
        // from 16 channels in and out, Winograd.
        let shapes = [
            (2, 3, 8, 8, 4),
            (3, 5, 7, 9, 6),
            (1, 1, 1, 1, 1),
            (2, 16, 1, 3, 8),
            (4, 8, 13, 5, 3),
            (5, 8, 20, 20, 4),
            (3, 32, 24, 24, 16),
            // Winograd: one whole-batch group (small maps), odd sizes.
            (2, 16, 6, 6, 16),
            (2, 16, 9, 7, 24),
        ];
        for (seed, &(n, c, h, w, k)) in shapes.iter().enumerate() {
            for relu in [true, false] {
                let seed = seed as u64 * 3;
                let x = Var::from_tensor(&(random(&[n, c, h, w], seed) - 0.5)?)?;
                let wt = Var::from_tensor(&(random(&[k, c, 3, 3], seed + 1) - 0.5)?)?;
                let b = Var::from_tensor(&(random(&[k], seed + 2) - 0.5)?)?;
                let g = random(&[n, k, h, w], seed + 3);
                let ours = conv3x3(&x, &wt, &b, relu)?;
                let want = reference_conv3x3(&x, &wt, &b, relu)?;
                let tag = format!("{:?} relu {relu}", (n, c, h, w, k));
                let vars = [("x", &x), ("w", &wt), ("b", &b)];
                assert_same_forward_and_gradients((ours, want), &g, &vars, TOL, &tag);
            }
        }
        Ok(())
    }

    #[test]
    fn no_input_gradient_for_a_constant_input() -> Result<(), ModelError> {
        let x = random(&[2, 3, 6, 6], 1);
        let w = Var::from_tensor(&random(&[4, 3, 3, 3], 2))?;
        let b = Var::from_tensor(&random(&[4], 3))?;
        let grads = conv3x3(&x, &w, &b, true)?.sum_all()?.backward()?;
        assert!(grads.get(&x).is_none());
        assert!(grads.get(&w).is_some() && grads.get(&b).is_some());
        Ok(())
    }
}
