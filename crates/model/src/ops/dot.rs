//! `y = x · Wᵀ` for a few rows of `x` (the classifier's forward at training
//! batch sizes) on AVX-512: dot products along the rows of `W`, which is
//! read once, in its own layout.
//!
//! Why: with 16 rows of `x`, the GEMM ([`super::avx512`]) spends more time
//! packing `Wᵀ` into column panels (a transposition of the 411 MB
//! `classifier.0` weight on every call) than multiplying: 42 ms per forward,
//! 9.5 GB/s of `W`, measured on the 2-core Zen 4. Here each output is the
//! dot product of a row of `x` with a row of `W`: a block of [`WB`] rows of
//! `W` is read from memory once, a chunk of [`KB`] columns at a time, and
//! used against every row of `x` while it is in the core's caches.
//!
//! Numerics: each output sums its products in 16 lanes (lane `l` takes the
//! `p ≡ l (mod 16)` terms in order, one fused multiply-add each, from zero
//! in each chunk of [`KB`] columns, the chunk's sum then added to the
//! lane's total), then adds the lanes pairwise (`l` and `l + 8`, then
//! `l + 4`, `l + 2`, `l + 1`): a fixed order, whatever the threading. It is
//! not the GEMM's order (a running sum per output in blocks of 256 terms),
//! so the last bits differ from it; on a `classifier.0` row it is the closer
//! of the two to the float64 sum (tested).

use std::arch::x86_64::*;

use rayon::prelude::*;

/// Rows of `W` per block: each row of `x` keeps `WB` accumulators.
const WB: usize = 4;
/// Rows of `x` per pass over a chunk: `XB · WB` = 16 accumulators.
const XB: usize = 4;
/// Columns per chunk: a block's chunk of `W` (`WB · KB` floats, 32 KiB, an
/// L1's size) stays in cache while every row of `x` goes over it (256, 512
/// and 4096 measured slower on the Zen 4).
const KB: usize = 2048;
/// Rows of `W` per task on the thread pool.
const TASK_ROWS: usize = 16;

/// Largest number of rows of `x` sent here rather than to the GEMM: where
/// this was clearly faster on the 2-core Zen 4 (`classifier.0` at 32 rows:
/// 43-45 ms against 52-70; at 48 and 64 the two were within a few percent
/// of each other, at 128 the GEMM took 160-173 ms and this 197-232).
pub(crate) const MAX_ROWS: usize = 32;

/// `y[r, j] = Σ_p x[r, p] · w[j, p]` for row-major `x: [n, k]` and
/// `w: [o, k]`, as a row-major `[n, o]`; threaded over rows of `w`.
///
/// # Panics
/// If a slice is shorter than its shape, `n` exceeds [`MAX_ROWS`] or the
/// CPU has no AVX-512F.
pub(crate) fn x_wt(x: &[f32], w: &[f32], n: usize, k: usize, o: usize) -> Vec<f32> {
    assert!(x.len() >= n * k && w.len() >= o * k, "x_wt operands");
    assert!(n <= MAX_ROWS, "x_wt takes at most {MAX_ROWS} rows");
    assert!(super::avx512::available(), "AVX-512F is not available");
    // yᵀ, so that each task writes one contiguous piece.
    let mut yt = vec![0f32; o * n];
    if n == 0 {
        return yt;
    }
    yt.par_chunks_mut(TASK_ROWS * n)
        .enumerate()
        .for_each(|(t, out)| {
            for (b, out) in out.chunks_mut(WB * n).enumerate() {
                let j0 = t * TASK_ROWS + b * WB;
                // SAFETY: rows `j0..j0 + out.len() / n` of `w` exist (`out`
                // is their part of `yᵀ`), `x` holds `n` rows (asserted); the
                // CPU has AVX-512F.
                unsafe { block(x, n, &w[j0 * k..], k, out) };
            }
        });
    let mut y = vec![0f32; n * o];
    for (j, col) in yt.chunks(n).enumerate() {
        for (r, &v) in col.iter().enumerate() {
            y[r * o + j] = v;
        }
    }
    y
}

/// `out[j · n + r] = x[r] · w[j]` for the `out.len() / n` (at most [`WB`])
/// rows `j` at the start of `w`.
///
/// # Safety
/// The CPU has AVX-512F; `x` holds `n <= MAX_ROWS` rows of `k` and `w` the
/// rows written.
#[target_feature(enable = "avx512f")]
unsafe fn block(x: &[f32], n: usize, w: &[f32], k: usize, out: &mut [f32]) {
    let rows_w = out.len() / n;
    // Missing rows (the last block of `W`, the last pass over `x`) repeat
    // row 0, and their sums are dropped.
    let w_row: [*const f32; WB] =
        std::array::from_fn(|c| w.as_ptr().wrapping_add(if c < rows_w { c * k } else { 0 }));
    let passes = n.div_ceil(XB);
    let mut sums = [[[_mm512_setzero_ps(); WB]; XB]; MAX_ROWS.div_ceil(XB)];
    for p0 in (0..k).step_by(KB) {
        let len = KB.min(k - p0);
        for (pass, acc) in sums.iter_mut().enumerate().take(passes) {
            let x_row: [*const f32; XB] = std::array::from_fn(|i| {
                let r = pass * XB + i;
                x.as_ptr().wrapping_add(if r < n { r * k } else { 0 })
            });
            // SAFETY: every pointer is a row of `k` floats (caller); the
            // loads stay within `p0..p0 + len <= k`.
            unsafe { chunk(acc, &x_row, &w_row, p0, len) };
        }
    }
    for (pass, acc) in sums.iter().enumerate().take(passes) {
        for (i, acc) in acc.iter().enumerate() {
            let r = pass * XB + i;
            if r >= n {
                break;
            }
            for (c, v) in acc.iter().enumerate().take(rows_w) {
                out[c * n + r] = lane_sum(*v);
            }
        }
    }
}

/// `acc[i][c] += Σ x_row[i][p] · w_row[c][p]` lane by lane over
/// `p in p0..p0 + len`, 16 at a time (the last, partial vector masked:
/// zeros on both sides, which add nothing): the chunk's sum from zero,
/// then added to `acc`.
///
/// # Safety
/// The CPU has AVX-512F; each row holds `p0 + len` floats.
#[target_feature(enable = "avx512f")]
unsafe fn chunk(
    acc: &mut [[__m512; WB]; XB],
    x_row: &[*const f32; XB],
    w_row: &[*const f32; WB],
    p0: usize,
    len: usize,
) {
    // The chunk's own sums, added to the running totals at the end: each
    // lane adds `KB / 16` products before its total does (closer to the
    // exact sum than one running sum per lane over all of `k`).
    let mut a = [[_mm512_setzero_ps(); WB]; XB];
    let mut step = |p: usize, mask: __mmask16| {
        // SAFETY: `p + 16` or the masked lanes are within the rows (caller).
        let (wv, xv): ([__m512; WB], [__m512; XB]) = unsafe {
            (
                std::array::from_fn(|c| _mm512_maskz_loadu_ps(mask, w_row[c].add(p))),
                std::array::from_fn(|i| _mm512_maskz_loadu_ps(mask, x_row[i].add(p))),
            )
        };
        for (a, &x) in a.iter_mut().zip(&xv) {
            for (a, &w) in a.iter_mut().zip(&wv) {
                *a = _mm512_fmadd_ps(x, w, *a);
            }
        }
    };
    let whole = len - len % 16;
    for p in (p0..p0 + whole).step_by(16) {
        step(p, !0);
    }
    if whole < len {
        step(p0 + whole, ((1u32 << (len - whole)) - 1) as __mmask16);
    }
    for (acc, a) in acc.iter_mut().zip(&a) {
        for (acc, &a) in acc.iter_mut().zip(a) {
            *acc = _mm512_add_ps(*acc, a);
        }
    }
}

/// The sum of the 16 lanes, pairwise: lane `l` plus lane `l + 8`, then
/// `+ 4`, `+ 2`, `+ 1`.
#[inline]
fn lane_sum(v: __m512) -> f32 {
    // SAFETY: same size, every bit pattern valid.
    let mut l: [f32; 16] = unsafe { std::mem::transmute::<__m512, [f32; 16]>(v) };
    let mut width = 8;
    while width > 0 {
        for i in 0..width {
            l[i] += l[i + width];
        }
        width /= 2;
    }
    l[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(i: usize, seed: usize) -> f32 {
        ((i * 7919 + seed * 104_729) % 2001) as f32 / 1000.0 - 1.0
    }

    /// Against a float64 sum of the same products, over every edge of the
    /// blocking: rows of `x` and of `W` that do not fill a block, columns
    /// that do not fill a vector or a chunk; within f32 rounding of the
    /// sum of magnitudes.
    #[test]
    fn products_are_the_float64_dot_products_to_rounding() {
        if !crate::ops::avx512::available() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        for (n, k, o) in [
            (1, 1, 1),
            (3, 15, 5),
            (4, 16, 4),
            (5, 17, 17),
            (16, 2049, 21),
            (32, 4100, 35),
            (7, 0, 3),
        ] {
            let x: Vec<f32> = (0..n * k).map(|i| value(i, 1)).collect();
            let w: Vec<f32> = (0..o * k).map(|i| value(i, 2)).collect();
            let y = x_wt(&x, &w, n, k, o);
            assert_eq!(y.len(), n * o);
            for r in 0..n {
                for j in 0..o {
                    let (mut exact, mut size) = (0f64, 0f64);
                    for p in 0..k {
                        let t = x[r * k + p] as f64 * w[j * k + p] as f64;
                        exact += t;
                        size += t.abs();
                    }
                    let err = (y[r * o + j] as f64 - exact).abs();
                    assert!(
                        err <= 1e-6 * size.max(1e-30) + 1e-30,
                        "{:?} y[{r}, {j}] = {} vs {exact}",
                        (n, k, o),
                        y[r * o + j]
                    );
                }
            }
        }
    }

    /// On a `classifier.0`-long row (25 088 terms, post-ReLU inputs in
    /// `[0, 1)`, weights in `[-0.01, 0.01)`), the lane sums are closer to
    /// the float64 sum than the GEMM's running sum of the same products,
    /// in rms and in max over the outputs (printed with `--nocapture`;
    /// `tools/bench/linear_rounding.py` prints PyTorch's for the same
    /// values).
    #[test]
    fn lane_sums_are_closer_to_float64_than_a_running_sum() {
        if !crate::ops::avx512::available() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        let (n, k, o) = (16, 25088, 64);
        let x: Vec<f32> = (0..n * k).map(|i| (value(i, 5) + 1.0) / 2.0).collect();
        let w: Vec<f32> = (0..o * k).map(|i| value(i, 6) / 100.0).collect();
        let exact: Vec<f64> = (0..n * o)
            .map(|e| {
                let (r, j) = (e / o, e % o);
                (0..k)
                    .map(|p| x[r * k + p] as f64 * w[j * k + p] as f64)
                    .sum()
            })
            .collect();
        let scale = exact.iter().fold(0f64, |m, v| m.max(v.abs()));
        let error = |y: &[f32]| {
            let d: Vec<f64> = y.iter().zip(&exact).map(|(&a, b)| a as f64 - b).collect();
            let rms = (d.iter().map(|d| d * d).sum::<f64>() / d.len() as f64).sqrt();
            let max = d.iter().fold(0f64, |m, d| m.max(d.abs()));
            (rms / scale, max / scale)
        };
        let lanes = error(&x_wt(&x, &w, n, k, o));
        let running = error(
            &crate::ops::blas::Gemm {
                m: n,
                n: o,
                k,
                acc: false,
            }
            .product((&x, k, 1), (&w, 1, k)),
        );
        eprintln!(
            "relative to the largest output, rms | max: lane sums {:.1e} | {:.1e}, running sum {:.1e} | {:.1e}",
            lanes.0, lanes.1, running.0, running.1
        );
        assert!(
            lanes.0 < running.0 && lanes.1 < running.1,
            "{lanes:?} vs {running:?}"
        );
    }

    /// The lanes' order is fixed: the same bits on one thread as on several,
    /// and NaN and infinities in an input reach the outputs they belong to
    /// (and only those).
    #[test]
    fn results_do_not_depend_on_threads_and_keep_nan() {
        if !crate::ops::avx512::available() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        let (n, k, o) = (9, 3000, 70);
        let mut x: Vec<f32> = (0..n * k).map(|i| value(i, 3)).collect();
        let w: Vec<f32> = (0..o * k).map(|i| value(i, 4)).collect();
        x[2 * k + 2999] = f32::NAN;
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let three = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let a = one.install(|| x_wt(&x, &w, n, k, o));
        let b = three.install(|| x_wt(&x, &w, n, k, o));
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b));
        for r in 0..n {
            for j in 0..o {
                assert_eq!(a[r * o + j].is_nan(), r == 2, "y[{r}, {j}]");
            }
        }
    }
}
