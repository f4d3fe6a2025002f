//! Winograd F(2x2, 3x3) for VGG's 3x3, stride 1, padding 1 convolutions on
//! the CPU (Lavin & Gray, "Fast Algorithms for Convolutional Neural
//! Networks", 2015).
//!
//! Why: each 2x2 block of outputs costs 16 multiplications per (input,
//! output) channel pair instead of 36, so the GEMMs that dominate the
//! forward pass and the input gradient do 2.25x fewer flops than im2col's.
//! Per group of tiles: the inputs are transformed (`V = Bᵀ d B`), 16 GEMMs
//! `M_ξ[K, T] = U_ξ[K, C] · V_ξ[C, T]` run against the transformed filters
//! (`U = G g Gᵀ`), and the outputs come back with `Y = Aᵀ M A`, plus the bias
//! and the ReLU. Groups are sized so that `V` and `M` stay in cache, and run
//! in parallel, each on one thread.
//!
//! Numerics: the transforms only add, subtract and halve, so the result
//! differs from a direct sum by rounding alone (tested to 1e-5 relative
//! against candle's `conv2d`).

use std::cell::RefCell;

use rayon::prelude::*;

use super::blas::{Gemm, PackedLhs, BUILD_ROWS, PANEL_COLS};
use super::{relu_f32, wide};

/// Transformed filters of one convolution: one `[K, C]` matrix per position
/// ξ of the 4x4 Winograd tile, each prepared once for the GEMMs of every
/// group of tiles ([`PackedLhs`]).
pub(crate) struct Filters {
    k: usize,
    c: usize,
    u: Vec<PackedLhs>,
}

impl Filters {
    /// For `y = conv(x, w)` with `w: [K, C, 3, 3]`: row `ko`, column `ci`
    /// is `w[ko, ci]`.
    pub(crate) fn forward(w: &[f32], k: usize, c: usize) -> Filters {
        Filters::build(w, k, c, Taps::forward(c))
    }

    /// For the input gradient `dx = conv(dz, w')` where
    /// `w'[c, k] = rot180(w[k, c])`: output channels `C`, input channels `K`.
    pub(crate) fn input_gradient(w: &[f32], k: usize, c: usize) -> Filters {
        Filters::build(w, c, k, Taps::input_gradient(c))
    }

    /// `U = G g Gᵀ` for every (output, input) channel pair, with
    /// `G = [[1, 0, 0], [½, ½, ½], [½, -½, ½], [0, 0, 1]]`: computed once
    /// per pair and written straight into the 16 packed GEMM operands of
    /// `k` rows and `c` columns.
    ///
    /// `BUILD_ROWS` output channels at a time, across vector lanes: the
    /// same operations on each lane as [`transform_filter`] on one filter.
    fn build(w: &[f32], k: usize, c: usize, taps: Taps) -> Filters {
        assert!(
            k == 0 || c == 0 || taps.start(k - 1, c - 1) + 9 <= w.len(),
            "filters past the weights"
        );
        #[cfg(target_arch = "x86_64")]
        if k.is_multiple_of(BUILD_ROWS) && super::avx512::available() {
            // SAFETY: the CPU has the features; every filter is in `w`
            // (asserted above).
            return unsafe { Filters::build_avx512(w, k, c, taps) };
        }
        Filters::build_lanes(w, k, c, taps)
    }

    /// [`Filters::build`] in portable code: each lane's filter gathered
    /// element by element.
    fn build_lanes(w: &[f32], k: usize, c: usize, taps: Taps) -> Filters {
        let u = PackedLhs::build(k, c, |k0, ci| {
            let g: [[f32; 9]; BUILD_ROWS] = std::array::from_fn(|i| {
                if k0 + i < k {
                    taps.filter(w, k0 + i, ci)
                } else {
                    [0.0; 9]
                }
            });
            let taps: [Lanes; 9] = std::array::from_fn(|t| Lanes(g.map(|g| g[t])));
            transform_filter(&taps).map(|v| v.0)
        });
        Filters { k, c, u }
    }

    /// [`Filters::build`] for `k` a multiple of [`BUILD_ROWS`] on AVX-512:
    /// the 8 filters of a column read as 8 vectors and transposed (the
    /// ninth tap gathered), so that the transform runs in registers. The
    /// closure inherits this function's features and is inlined into the
    /// AVX-512 packing loop; the lanes see the operations of
    /// [`Filters::build_lanes`], so the bits are the same.
    ///
    /// # Safety
    /// The CPU has AVX2 and AVX-512F; `k` is a multiple of `BUILD_ROWS`;
    /// every filter `(row, column)` lies in `w`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,avx512f")]
    unsafe fn build_avx512(w: &[f32], k: usize, c: usize, taps: Taps) -> Filters {
        use std::arch::x86_64::*;
        const { assert!(BUILD_ROWS == 8) };
        // The gather's offsets: `i · row` for the 8 lanes, as i32.
        let stride = i32::try_from(7 * taps.row).expect("filter offsets fit in i32") / 7;
        let rows = _mm256_setr_epi32(
            0,
            stride,
            2 * stride,
            3 * stride,
            4 * stride,
            5 * stride,
            6 * stride,
            7 * stride,
        );
        let base = |k0: usize, ci: usize| w.as_ptr().wrapping_add(taps.start(k0, ci));
        // SAFETY (both): filters `(k0 + i, ci)`, `i < 8`, lie in `w`
        // (`k0 + 8 <= k`, caller); the CPU has the features.
        let u = if taps.flip {
            PackedLhs::build(
                k,
                c,
                #[inline(always)]
                |k0, ci| unsafe { transformed_column::<true>(base(k0, ci), taps.row, rows) },
            )
        } else {
            PackedLhs::build(
                k,
                c,
                #[inline(always)]
                |k0, ci| unsafe { transformed_column::<false>(base(k0, ci), taps.row, rows) },
            )
        };
        Filters { k, c, u }
    }
}

/// The transformed filters of 8 rows of one column for
/// [`Filters::build_avx512`]: the filters at `base + i · row` (`i < 8`),
/// reversed with `FLIP`, read as 8 vectors and transposed, the ninth tap
/// gathered (`rows` = the lanes' offsets `i · row`), and transformed in
/// registers with the operations of [`transform_filter`] on each lane.
///
/// # Safety
/// The CPU has AVX2 and AVX-512F (this is inlined into code compiled for
/// them); the 8 filters lie in memory.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn transformed_column<const FLIP: bool>(
    base: *const f32,
    row: usize,
    rows: std::arch::x86_64::__m256i,
) -> [[f32; BUILD_ROWS]; 16] {
    use super::simd::{transpose8x8, F32x8};
    use std::arch::x86_64::*;
    // SAFETY: the 8 filters are in memory, the CPU has the features (caller).
    let (t, last) = unsafe {
        let v = std::array::from_fn(|i| _mm256_loadu_ps(base.add(i * row)));
        (transpose8x8(v), _mm256_i32gather_ps::<4>(base.add(8), rows))
    };
    let g = if FLIP {
        [last, t[7], t[6], t[5], t[4], t[3], t[2], t[1], t[0]]
    } else {
        [t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], last]
    };
    // SAFETY: the CPU has AVX (caller).
    let g = g.map(|v| unsafe { F32x8::new(v) });
    transform_filter(&g).map(F32x8::to_array)
}

/// Where the 3x3 filter of row `r`, column `p` of [`Filters`]' operands
/// starts in the weights (`r · row + p · col`), and whether it is read
/// rotated by 180° (taps in reverse order).
#[derive(Clone, Copy)]
struct Taps {
    row: usize,
    col: usize,
    flip: bool,
}

impl Taps {
    /// Row `ko`, column `ci` is `w[ko, ci]` of `w: [K, C, 3, 3]`.
    fn forward(c: usize) -> Taps {
        Taps {
            row: c * 9,
            col: 9,
            flip: false,
        }
    }

    /// Row `ci`, column `ko` is `rot180(w[ko, ci])`.
    fn input_gradient(c: usize) -> Taps {
        Taps {
            row: 9,
            col: c * 9,
            flip: true,
        }
    }

    fn start(self, r: usize, p: usize) -> usize {
        r * self.row + p * self.col
    }

    /// The filter of row `r`, column `p`, row-major.
    fn filter(self, w: &[f32], r: usize, p: usize) -> [f32; 9] {
        let g = &w[self.start(r, p)..][..9];
        std::array::from_fn(|i| if self.flip { g[8 - i] } else { g[i] })
    }
}

/// One value per output channel of a row block, for [`transform_filter`]
/// across lanes (element by element, in the same order as on one `f32`).
#[derive(Clone, Copy)]
struct Lanes([f32; BUILD_ROWS]);

impl std::ops::Add for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn add(self, o: Lanes) -> Lanes {
        Lanes(std::array::from_fn(|i| self.0[i] + o.0[i]))
    }
}

impl std::ops::Sub for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn sub(self, o: Lanes) -> Lanes {
        Lanes(std::array::from_fn(|i| self.0[i] - o.0[i]))
    }
}

impl std::ops::Mul<f32> for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn mul(self, v: f32) -> Lanes {
        Lanes(self.0.map(|x| x * v))
    }
}

/// `G g Gᵀ` of one 3x3 filter (row-major), as a row-major 4x4; on `f32`,
/// or on [`Lanes`] of several filters at once.
#[inline(always)]
fn transform_filter<T>(g: &[T; 9]) -> [T; 16]
where
    T: Copy
        + std::ops::Add<Output = T>
        + std::ops::Sub<Output = T>
        + std::ops::Mul<f32, Output = T>,
{
    let col = |a: T, b: T, c: T| [a, (a + b + c) * 0.5, (a - b + c) * 0.5, c];
    // G g: 4 rows of 3, held as its 3 columns.
    let gg: [[T; 4]; 3] = std::array::from_fn(|j| col(g[j], g[3 + j], g[6 + j]));
    // (G g) Gᵀ, row by row.
    let rows: [[T; 4]; 4] = std::array::from_fn(|i| col(gg[0][i], gg[1][i], gg[2][i]));
    std::array::from_fn(|e| rows[e / 4][e % 4])
}

/// Output gradient `dg = Gᵀ D G` of one transformed-filter gradient `D`
/// (row-major 4x4), as a row-major 3x3: the adjoint of [`transform_filter`].
fn filter_gradient(d: &[f32; 16]) -> [f32; 9] {
    let row =
        |a: f32, b: f32, c: f32, e: f32| [a + (b + c) * 0.5, (b - c) * 0.5, (b + c) * 0.5 + e];
    // Gᵀ D: 3 rows of 4.
    let mut gd = [[0f32; 4]; 3];
    for j in 0..4 {
        let t = row(d[j], d[4 + j], d[8 + j], d[12 + j]);
        for i in 0..3 {
            gd[i][j] = t[i];
        }
    }
    let mut out = [0f32; 9];
    for i in 0..3 {
        let t = row(gd[i][0], gd[i][1], gd[i][2], gd[i][3]);
        out[i * 3..i * 3 + 3].copy_from_slice(&t);
    }
    out
}

/// What happens to the convolution's input as it is read and to its output
/// as it is written.
pub(crate) struct Epilogue<'a> {
    /// Per-output-channel bias added before the ReLU.
    pub(crate) bias: Option<&'a [f32]>,
    /// Clamp the output at zero.
    pub(crate) relu: bool,
    /// Zero the input where this tensor (same shape) is not positive: the
    /// ReLU's backward, applied while reading the output gradient.
    pub(crate) input_mask: Option<&'a [f32]>,
}

/// The tiling of `n` maps of `h x w` into 2x2 output tiles: `n · th` tile
/// rows of `tw` tiles each; tile row `r` is image `r / th`, row `r % th`.
#[derive(Clone, Copy)]
struct Tiling {
    h: usize,
    w: usize,
    th: usize,
    tw: usize,
}

impl Tiling {
    fn new(h: usize, w: usize) -> Tiling {
        Tiling {
            h,
            w,
            th: h.div_ceil(2),
            tw: w.div_ceil(2),
        }
    }
}

thread_local! {
    /// Transformed inputs `[16][C][T]` and products `[16][K][T]` of one group.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Largest `V` plus `M` (bytes) transformed as one group with threaded
/// GEMMs rather than in per-thread groups; also the budget of one chunk of
/// the weight gradient. Tests use a small one so that both ways run.
const WHOLE_BATCH_BYTES: usize = if cfg!(test) { 256 << 10 } else { 16 << 20 };

/// Target size of one group's `V` plus `M`: about the L2 cache of one core.
const GROUP_BYTES: usize = 2 << 20;

/// Tile rows per group: big enough for efficient GEMMs, small enough that a
/// group's `V` and `M` (16 · (C + K) · T floats) stay in cache, and with a
/// tile count `T` that fills the GEMM kernel's column panels
/// ([`PANEL_COLS`]): a last panel that is partly padding costs as much as a
/// full one, so 60 tiles (24x24 maps, 5 rows of 12) ran at 60/96 of the
/// kernel's speed where 48 (4 rows) waste nothing.
fn group_rows(rows: usize, tw: usize, c: usize, k: usize) -> usize {
    let budget = GROUP_BYTES / 4 / (16 * (c + k));
    let target = budget.clamp(48, 2048);
    let per_group = (target / tw).max(1);
    // Leave work for every thread: at least 4 groups per thread if possible.
    let min_groups = 4 * rayon::current_num_threads();
    let limit = per_group.min(rows.div_ceil(min_groups).max(48usize.div_ceil(tw)));
    // The fullest panels among the sizes down to half the limit, and the
    // largest such size (fewer groups, fewer passes over the filters).
    let filled = |r: usize| {
        let t = r * tw;
        t * 1024 / t.next_multiple_of(PANEL_COLS)
    };
    (limit.div_ceil(2)..=limit)
        .max_by_key(|&r| (filled(r), r))
        .unwrap_or(1)
}

/// Runs `f(i)` for every `i` in `0..n`, on the rayon pool when `parallel`.
fn for_each(n: usize, parallel: bool, f: impl Fn(usize) + Send + Sync) {
    if parallel {
        (0..n).into_par_iter().for_each(f);
    } else {
        (0..n).for_each(f);
    }
}

/// `y = relu?(conv3x3(x, w, padding 1) + bias)` for `x: [N, C, H, W]`,
/// returning `y: [N, K, H, W]`, with `f` from [`Filters`]. `y` is not
/// zero-filled first: the output transform writes each element once.
pub(crate) fn conv(f: &Filters, x: &[f32], n: usize, h: usize, w: usize, e: &Epilogue) -> Vec<f32> {
    let (c, k) = (f.c, f.k);
    let s = h * w;
    assert_eq!(x.len(), n * c * s, "winograd: input size");
    if let Some(m) = e.input_mask {
        assert_eq!(m.len(), x.len(), "winograd: mask size");
    }
    if let Some(b) = e.bias {
        assert_eq!(b.len(), k, "winograd: bias size");
    }
    let len = n * k * s;
    let mut y: Vec<f32> = Vec::with_capacity(len);
    if len == 0 {
        return y;
    }
    let out = SyncPtr(y.as_mut_ptr(), len);
    convolve(f, x, n, h, w, e, out);
    // SAFETY: `convolve` ran `output_transform` over tile rows `0..n · th`,
    // all of them, and each tile row writes both of its output rows (the
    // second when it is inside the map), in full, for every channel of its
    // image: so all `n · k · h · w` elements within the capacity are written.
    unsafe { y.set_len(len) };
    y
}

thread_local! {
    /// `V` and `M` of a whole batch of few tiles (see [`convolve`]), and `V`
    /// and `Z` of the weight gradient's chunks, kept between calls so that
    /// they are not zero-filled each time.
    static WHOLE: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// [`conv`] into `out` (`[N, K, H, W]`), every element of which it writes.
fn convolve(f: &Filters, x: &[f32], n: usize, h: usize, w: usize, e: &Epilogue, out: SyncPtr) {
    let (c, k) = (f.c, f.k);
    let tiling = Tiling::new(h, w);
    let rows = n * tiling.th;
    let tiles = rows * tiling.tw;
    if 16 * (c + k) * tiles * 4 <= WHOLE_BATCH_BYTES {
        // Few tiles (small maps, e.g. 6x6): one group, so that each of the 16
        // GEMMs is wide enough to split across threads. The buffers are taken
        // out of the cell: a nested call on this thread (rayon may run one
        // while this one waits) finds it empty and allocates its own.
        let (mut v, mut m) = WHOLE.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
        transform_group(f, x, e, tiling, 0..rows, (&mut v, &mut m), out, true);
        WHOLE.with(|cell| *cell.borrow_mut() = (v, m));
        return;
    }
    let per_group = group_rows(rows, tiling.tw, c, k);
    let groups = rows.div_ceil(per_group);
    (0..groups).into_par_iter().for_each(|gi| {
        let r0 = gi * per_group;
        let r1 = (r0 + per_group).min(rows);
        SCRATCH.with(|cell| {
            let (v, m) = &mut *cell.borrow_mut();
            transform_group(f, x, e, tiling, r0..r1, (v, m), out, false);
        });
    });
}

/// One group of [`convolve`]: the tiles of tile rows `rows` through the
/// input transform into `v`, the 16 GEMMs into `m` (both grown as needed,
/// never shrunk) and the output transform into `out`; transforms and GEMMs
/// on the rayon pool when `parallel`.
#[allow(clippy::too_many_arguments)]
fn transform_group(
    f: &Filters,
    x: &[f32],
    e: &Epilogue,
    tiling: Tiling,
    rows: std::ops::Range<usize>,
    (v, m): (&mut Vec<f32>, &mut Vec<f32>),
    out: SyncPtr,
    parallel: bool,
) {
    let (c, k) = (f.c, f.k);
    let t = rows.len() * tiling.tw;
    v.resize(v.len().max(16 * c * t), 0.0);
    m.resize(m.len().max(16 * k * t), 0.0);
    let (v, m) = (&mut v[..16 * c * t], &mut m[..16 * k * t]);
    input_transform(x, e.input_mask, c, tiling, rows.clone(), v, parallel);
    for (xi, u) in f.u.iter().enumerate() {
        Gemm {
            m: k,
            n: t,
            k: c,
            acc: false,
        }
        .run_packed(
            &mut m[xi * k * t..][..k * t],
            u,
            (&v[xi * c * t..][..c * t], t, 1),
            parallel,
        );
    }
    output_transform(m, e, k, tiling, rows, out, parallel);
}

/// `dw[K, C, 3, 3] = Σ over images and positions of dz[k] · shifted x[c]`
/// (the weight gradient of [`conv`]'s forward use, `dz` masked by
/// `mask > 0` when given), as `Gᵀ (Σ_tiles (A dz Aᵀ) ⊙ (Bᵀ x B)) G`: 16
/// GEMMs `dU_ξ[K, C] += Z_ξ[K, T] · V_ξ[C, T]ᵀ` over chunks of images.
#[allow(clippy::too_many_arguments)]
pub(crate) fn weight_gradient(
    x: &[f32],
    dz: &[f32],
    mask: Option<&[f32]>,
    n: usize,
    c: usize,
    k: usize,
    h: usize,
    w: usize,
) -> Vec<f32> {
    let s = h * w;
    assert_eq!(x.len(), n * c * s, "winograd: input size");
    assert_eq!(dz.len(), n * k * s, "winograd: gradient size");
    if let Some(m) = mask {
        assert_eq!(m.len(), dz.len(), "winograd: mask size");
    }
    let tiling = Tiling::new(h, w);
    let per_image = tiling.th * tiling.tw;
    if n == 0 || s == 0 || k * c == 0 {
        return vec![0f32; k * c * 9];
    }
    let images = (WHOLE_BATCH_BYTES / 4 / (16 * (c + k) * per_image)).clamp(1, n);
    // `V` and `Z` of a chunk in the buffers the whole-batch forward keeps
    // (taken, as there; grown, never zero-filled again).
    let (mut v, mut z) = WHOLE.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
    // dU: the first chunk's products write it in full (not zero-filled
    // first), the later ones add to it.
    let mut du: Vec<f32> = Vec::with_capacity(16 * k * c);
    for i0 in (0..n).step_by(images) {
        let i1 = (i0 + images).min(n);
        let rows = i0 * tiling.th..i1 * tiling.th;
        let t = (i1 - i0) * per_image;
        v.resize(v.len().max(16 * c * t), 0.0);
        z.resize(z.len().max(16 * k * t), 0.0);
        let (v, z) = (&mut v[..16 * c * t], &mut z[..16 * k * t]);
        input_transform(x, None, c, tiling, rows.clone(), v, true);
        gradient_transform(dz, mask, k, tiling, rows, z, true);
        let (v, z) = (&*v, &*z);
        let gemm = |xi: usize| {
            let g = Gemm {
                m: k,
                n: c,
                k: t,
                acc: i0 > 0,
            };
            (
                g,
                (&z[xi * k * t..][..k * t], t, 1),
                (&v[xi * c * t..][..c * t], 1, t),
            )
        };
        if i0 == 0 {
            let spare = &mut du.spare_capacity_mut()[..16 * k * c];
            spare
                .par_chunks_mut(k * c)
                .enumerate()
                .for_each(|(xi, du)| {
                    let (g, z, v) = gemm(xi);
                    g.run_uninit(du, z, v, false);
                });
            // SAFETY: each of the 16 chunks of `k · c` was written in full.
            unsafe { du.set_len(16 * k * c) };
        } else {
            du.par_chunks_mut(k * c).enumerate().for_each(|(xi, du)| {
                let (g, z, v) = gemm(xi);
                g.run_serial(du, z, v);
            });
        }
    }
    WHOLE.with(|cell| *cell.borrow_mut() = (v, z));
    let len = k * c * 9;
    let mut dw: Vec<f32> = Vec::with_capacity(len);
    let du = &du;
    dw.spare_capacity_mut()[..len]
        .par_chunks_mut(9)
        .enumerate()
        .for_each(|(kc, out)| {
            let d: [f32; 16] = std::array::from_fn(|xi| du[xi * k * c + kc]);
            for (o, g) in out.iter_mut().zip(filter_gradient(&d)) {
                o.write(g);
            }
        });
    // SAFETY: every chunk of 9 (all `k · c` of them) was written above.
    unsafe { dw.set_len(len) };
    dw
}

/// A buffer written by several threads at once, each to its own elements.
#[derive(Clone, Copy)]
struct SyncPtr(*mut f32, usize);
// SAFETY: only used to write disjoint ranges of one buffer from several
// threads while the buffer (a mutably borrowed slice, or the capacity of a
// vector that [`conv`] owns) is not otherwise touched by the function that
// made it; the writes go through the raw pointer, so the capacity may be
// uninitialised until then.
unsafe impl Sync for SyncPtr {}
unsafe impl Send for SyncPtr {}

impl SyncPtr {
    /// `self[at..at + len]`, initialised.
    ///
    /// # Safety
    /// The buffer is initialised there, and no other reference to that range
    /// is alive while the returned one is (each range one thread's).
    unsafe fn segment<'a>(self, at: usize, len: usize) -> &'a mut [f32] {
        assert!(at + len <= self.1, "winograd: write out of bounds");
        // SAFETY: in bounds (checked); initialised and unaliased (caller).
        unsafe { std::slice::from_raw_parts_mut(self.0.add(at), len) }
    }

    /// `self[at..at + len]`, to be written (it may be uninitialised).
    ///
    /// # Safety
    /// No other reference to that range is alive while the returned one is,
    /// and nothing reads the buffer until every writer is done.
    unsafe fn uninit_segment<'a>(
        self,
        at: usize,
        len: usize,
    ) -> &'a mut [std::mem::MaybeUninit<f32>] {
        assert!(at + len <= self.1, "winograd: write out of bounds");
        // SAFETY: in bounds (checked); `MaybeUninit` makes no claim about
        // the contents; unaliased (caller).
        unsafe { std::slice::from_raw_parts_mut(self.0.add(at).cast(), len) }
    }
}

/// Reads row `sy` of plane `at` of `x` (zeros outside the map; masked)
/// split by column parity as the padded row `[0, x0, x1, ...]` is: `even[i]`
/// holds padded column `2i` (= `x[2i - 1]`), `odd[i]` padded column `2i + 1`
/// (= `x[2i]`), both `tw + 2` long.
#[inline(always)]
fn split_row(
    x: &[f32],
    mask: Option<&[f32]>,
    at: usize,
    sy: isize,
    t: Tiling,
    even: &mut [f32],
    odd: &mut [f32],
) {
    if sy < 0 || sy >= t.h as isize {
        even.fill(0.0);
        odd.fill(0.0);
        return;
    }
    let at = at + sy as usize * t.w;
    let src = &x[at..at + t.w];
    // `x[2i]` to `odd[i]`, `x[2i + 1]` to `even[i + 1]`, zero where the mask
    // is not positive (a ReLU's backward: `m <= 0`, so a NaN mask keeps).
    let pairs = t.w / 2;
    match mask {
        None => lanes::deinterleave(&src[..2 * pairs], &mut odd[..pairs], &mut even[1..=pairs]),
        Some(m) => {
            let m = &m[at..at + t.w];
            lanes::deinterleave_masked(
                &src[..2 * pairs],
                &m[..2 * pairs],
                &mut odd[..pairs],
                &mut even[1..=pairs],
            )
        }
    }
    if t.w % 2 == 1 {
        odd[pairs] = match mask {
            Some(m) if m[at + t.w - 1] <= 0.0 => 0.0,
            _ => src[t.w - 1],
        };
    }
    // What the row does not reach: padded column 0 and the right padding.
    even[0] = 0.0;
    even[t.w / 2 + 1..].fill(0.0);
    odd[t.tw..].fill(0.0);
}

/// `V = Bᵀ d B` for the 4x4 input patches of tile rows `rows`, written as
/// `v[16][C][T]` (`T = rows.len() · tw`), with
/// `Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]`.
/// Channels in parallel when `parallel`. Columns are kept split by parity so
/// that every loop runs over contiguous memory (vectorised, 16 wide where
/// the CPU allows: [`wide`]).
fn input_transform(
    x: &[f32],
    mask: Option<&[f32]>,
    c: usize,
    tiling: Tiling,
    rows: std::ops::Range<usize>,
    v: &mut [f32],
    parallel: bool,
) {
    let tw = tiling.tw;
    let t = rows.len() * tw;
    assert_eq!(v.len(), 16 * c * t, "winograd: transformed input size");
    let dst = SyncPtr(v.as_mut_ptr(), v.len());
    let s = tiling.h * tiling.w;
    let wp = tw + 2;
    for_each(c, parallel, |ci| {
        wide(
            #[inline(always)]
            || {
                // The 4 input rows of a tile row, even and odd columns: p[2j], p[2j+1].
                let mut p = vec![0f32; 8 * wp];
                // Bᵀ d, same layout.
                let mut r = vec![0f32; 8 * wp];
                for (lr, row) in rows.clone().enumerate() {
                    let (img, ty) = (row / tiling.th, row % tiling.th);
                    let plane = (img * c + ci) * s;
                    for (j, pair) in p.chunks_exact_mut(2 * wp).enumerate() {
                        let (even, odd) = pair.split_at_mut(wp);
                        split_row(x, mask, plane, (2 * ty + j) as isize - 1, tiling, even, odd);
                    }
                    // Rows of Bᵀ d, for both parities at once (same arithmetic).
                    {
                        let (p0, rest) = p.split_at(2 * wp);
                        let (p1, rest) = rest.split_at(2 * wp);
                        let (p2, p3) = rest.split_at(2 * wp);
                        let (r0, rest) = r.split_at_mut(2 * wp);
                        let (r1, rest) = rest.split_at_mut(2 * wp);
                        let (r2, r3) = rest.split_at_mut(2 * wp);
                        lanes::map4([p0, p1, p2, p3], r0, r1, r2, r3, |[p0, p1, p2, p3]| {
                            [p0 - p2, p1 + p2, p2 - p1, p1 - p3]
                        });
                    }
                    // Columns: tile tx reads padded columns 2tx..2tx+4, i.e.
                    // even[tx], odd[tx], even[tx + 1], odd[tx + 1]; position
                    // ξ = 4i + j goes straight to its row of `v`.
                    for (i, ri) in r.chunks_exact(2 * wp).enumerate() {
                        let (even, odd) = ri.split_at(wp);
                        // SAFETY: channel `ci` alone writes these 4 segments of
                        // `v` (initialised, borrowed mutably by this function).
                        let [o0, o1, o2, o3] = std::array::from_fn(|j| unsafe {
                            dst.segment(((4 * i + j) * c + ci) * t + lr * tw, tw)
                        });
                        let ins = [&even[..tw], &odd[..tw], &even[1..=tw], &odd[1..=tw]];
                        lanes::map4(ins, o0, o1, o2, o3, |[e0, d0, e1, d1]| {
                            [e0 - e1, d0 + e1, e1 - d0, d0 - d1]
                        });
                    }
                }
            },
        )
    });
}

/// `Z = A dz Aᵀ` (the adjoint of the output transform) for the 2x2 output
/// gradient tiles of `rows`, masked, written as `z[16][K][T]`.
fn gradient_transform(
    dz: &[f32],
    mask: Option<&[f32]>,
    k: usize,
    tiling: Tiling,
    rows: std::ops::Range<usize>,
    z: &mut [f32],
    parallel: bool,
) {
    let tw = tiling.tw;
    let t = rows.len() * tw;
    assert_eq!(z.len(), 16 * k * t, "winograd: transformed gradient size");
    let dst = SyncPtr(z.as_mut_ptr(), z.len());
    let s = tiling.h * tiling.w;
    let wp = tw + 2;
    for_each(k, parallel, |ko| {
        wide(
            #[inline(always)]
            || {
                // The tile row's two gradient rows, split by column parity as
                // [`split_row`] does: dz[2tx] = odd[tx], dz[2tx + 1] = even[tx + 1].
                let mut p = vec![0f32; 4 * wp];
                for (lr, row) in rows.clone().enumerate() {
                    let (img, ty) = (row / tiling.th, row % tiling.th);
                    let plane = (img * k + ko) * s;
                    for (j, pair) in p.chunks_exact_mut(2 * wp).enumerate() {
                        let (even, odd) = pair.split_at_mut(wp);
                        split_row(dz, mask, plane, (2 * ty + j) as isize, tiling, even, odd);
                    }
                    let (top, bottom) = p.split_at(2 * wp);
                    let (a, b) = (&top[wp..wp + tw], &top[1..=tw]);
                    let (c, d) = (&bottom[wp..wp + tw], &bottom[1..=tw]);
                    // Rows of A dz: (a, b), (a + c, b + d), (a - c, b - d),
                    // (-c, -d); then each row (p, q) -> (p, p + q, p - q, -q),
                    // position ξ = 4i + j straight to its row of `z`.
                    // SAFETY: channel `ko` alone writes these 16 segments of
                    // `z` (initialised, borrowed mutably by this function).
                    let o: [&mut [f32]; 16] = std::array::from_fn(|xi| unsafe {
                        dst.segment((xi * k + ko) * t + lr * tw, tw)
                    });
                    let [o0, o1, o2, o3, o4, o5, o6, o7, o8, o9, o10, o11, o12, o13, o14, o15] = o;
                    let cols = |p: f32, q: f32| [p, p + q, p - q, -q];
                    lanes::map4([a, b], o0, o1, o2, o3, |[a, b]| cols(a, b));
                    lanes::map4([a, b, c, d], o4, o5, o6, o7, |[a, b, c, d]| {
                        cols(a + c, b + d)
                    });
                    lanes::map4([a, b, c, d], o8, o9, o10, o11, |[a, b, c, d]| {
                        cols(a - c, b - d)
                    });
                    lanes::map4([c, d], o12, o13, o14, o15, |[c, d]| cols(-c, -d));
                }
            },
        )
    });
}

/// `Y = Aᵀ M A` with `Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]`, plus bias and
/// ReLU, for the tiles of `rows`, from `m[16][K][T]` into `y: [N, K, H, W]`.
/// Output channels in parallel when `parallel`. Loops run along the tiles
/// (contiguous in `m`, vectorised); even and odd output columns are
/// interleaved as they are stored.
fn output_transform(
    m: &[f32],
    e: &Epilogue,
    k: usize,
    tiling: Tiling,
    rows: std::ops::Range<usize>,
    y: SyncPtr,
    parallel: bool,
) {
    let (h, w, tw) = (tiling.h, tiling.w, tiling.tw);
    let s = h * w;
    let t = rows.len() * tw;
    assert_eq!(m.len(), 16 * k * t, "winograd: product size");
    for_each(k, parallel, |ko| {
        wide(
            #[inline(always)]
            || {
                // Aᵀ M: rows 0 and 1 of each column j, along all the tiles of
                // the group at once (long loops even when rows are short),
                // as acc[2j + row][T].
                let mut acc = vec![0f32; 8 * t];
                let q = |xi: usize| &m[(xi * k + ko) * t..][..t];
                for (j, pair) in acc.chunks_exact_mut(2 * t).enumerate() {
                    let (s0, s1) = pair.split_at_mut(t);
                    let ins = [q(j), q(4 + j), q(8 + j), q(12 + j)];
                    lanes::map2(ins, s0, s1, |[a, b, c, d]| [a + b + c, b - c - d]);
                }
                let bias = e.bias.map_or(0.0, |b| b[ko]);
                let finish = |v: f32| {
                    let v = v + bias;
                    if e.relu {
                        relu_f32(v)
                    } else {
                        v
                    }
                };
                for (lr, row) in rows.clone().enumerate() {
                    let (img, ty) = (row / tiling.th, row % tiling.th);
                    // (Aᵀ M) A: output row 2ty from the s0 rows, 2ty + 1 (when
                    // inside the map) from the s1 rows.
                    let plane = (img * k + ko) * s;
                    for second in [false, true] {
                        let oy = 2 * ty + usize::from(second);
                        if oy >= h {
                            continue;
                        }
                        let col =
                            |j: usize| &acc[(2 * j + usize::from(second)) * t + lr * tw..][..tw];
                        let (c0, c1, c2, c3) = (col(0), col(1), col(2), col(3));
                        // SAFETY: channel `ko` of image `img` alone writes row
                        // `oy` of its plane; `y` is not read until all are done.
                        let out = unsafe { y.uninit_segment(plane + oy * w, w) };
                        lanes::interleave([c0, c1, c2, c3], out, |[c0, c1, c2, c3]| {
                            [finish(c0 + c1 + c2), finish(c1 - c2 - c3)]
                        });
                        if w % 2 == 1 {
                            let tx = w / 2;
                            out[w - 1].write(finish(c0[tx] + c1[tx] + c2[tx]));
                        }
                    }
                }
            },
        )
    });
}

/// The element-wise loops of the transforms, each over slices of one
/// length. Outputs are separate `&mut` arguments, so that the compiler knows
/// they overlap nothing else (and vectorises without runtime overlap
/// checks, which it gives up on beyond a few pointers) once these are
/// inlined; inputs are cut to the outputs' length, so that no index is
/// checked inside a loop.
mod lanes {
    use std::mem::MaybeUninit;

    /// `(o0, o1, o2, o3)[i] = f(ins[..][i])`.
    #[inline(always)]
    pub(super) fn map4<const I: usize>(
        ins: [&[f32]; I],
        o0: &mut [f32],
        o1: &mut [f32],
        o2: &mut [f32],
        o3: &mut [f32],
        f: impl Fn([f32; I]) -> [f32; 4],
    ) {
        let n = o0.len();
        let ins = ins.map(|a| &a[..n]);
        let (o1, o2, o3) = (&mut o1[..n], &mut o2[..n], &mut o3[..n]);
        for i in 0..n {
            [o0[i], o1[i], o2[i], o3[i]] = f(ins.map(|a| a[i]));
        }
    }

    /// `(o0, o1)[i] = f(ins[..][i])`.
    #[inline(always)]
    pub(super) fn map2<const I: usize>(
        ins: [&[f32]; I],
        o0: &mut [f32],
        o1: &mut [f32],
        f: impl Fn([f32; I]) -> [f32; 2],
    ) {
        let n = o0.len();
        let ins = ins.map(|a| &a[..n]);
        let o1 = &mut o1[..n];
        for i in 0..n {
            [o0[i], o1[i]] = f(ins.map(|a| a[i]));
        }
    }

    /// `out[2i], out[2i + 1] = f(ins[..][i])` for the whole pairs of `out`.
    #[inline(always)]
    pub(super) fn interleave<const I: usize>(
        ins: [&[f32]; I],
        out: &mut [MaybeUninit<f32>],
        f: impl Fn([f32; I]) -> [f32; 2],
    ) {
        let n = out.len() / 2;
        let ins = ins.map(|a| &a[..n]);
        let out = &mut out[..2 * n];
        for i in 0..n {
            let [a, b] = f(ins.map(|s| s[i]));
            out[2 * i].write(a);
            out[2 * i + 1].write(b);
        }
    }

    /// `odd[i] = src[2i]`, `even[i] = src[2i + 1]`.
    #[inline(always)]
    pub(super) fn deinterleave(src: &[f32], odd: &mut [f32], even: &mut [f32]) {
        let n = odd.len();
        let (src, even) = (&src[..2 * n], &mut even[..n]);
        for i in 0..n {
            odd[i] = src[2 * i];
            even[i] = src[2 * i + 1];
        }
    }

    /// [`deinterleave`], with zeros where `mask` is not positive (NaN keeps).
    #[inline(always)]
    pub(super) fn deinterleave_masked(
        src: &[f32],
        mask: &[f32],
        odd: &mut [f32],
        even: &mut [f32],
    ) {
        let n = odd.len();
        let (src, mask, even) = (&src[..2 * n], &mask[..2 * n], &mut even[..n]);
        let keep = |m: f32, v: f32| if m <= 0.0 { 0.0 } else { v };
        for i in 0..n {
            odd[i] = keep(mask[2 * i], src[2 * i]);
            even[i] = keep(mask[2 * i + 1], src[2 * i + 1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::tests::{random, rel_diff};
    use candle_core::{Device, Tensor};

    fn run(x: &Tensor, w: &Tensor, b: &Tensor, relu: bool) -> Tensor {
        let (n, c, h, wd) = x.dims4().unwrap();
        let k = w.dim(0).unwrap();
        let xs = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let ws = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let bs = b.to_vec1::<f32>().unwrap();
        let f = Filters::forward(&ws, k, c);
        // NaN first: an element `convolve` failed to write (which `conv`
        // would leave uninitialised) fails the comparison.
        let mut y = vec![f32::NAN; n * k * h * wd];
        let e = Epilogue {
            bias: Some(&bs),
            relu,
            input_mask: None,
        };
        convolve(&f, &xs, n, h, wd, &e, SyncPtr(y.as_mut_ptr(), y.len()));
        Tensor::from_vec(y, (n, k, h, wd), &Device::Cpu).unwrap()
    }

    /// VGG16's grouped layers at 96x96, batch 16 (12 to 48 tiles a row,
    /// 64 to 512 channels): each group's tiles fill whole GEMM panels, the
    /// group is no bigger than the cache budget alone allows, and not under
    /// half of it.
    #[test]
    fn groups_fill_whole_gemm_panels() {
        for (side, c, k) in [
            (96, 64, 64),
            (48, 64, 128),
            (48, 128, 128),
            (24, 256, 256),
            (12, 512, 512),
        ] {
            let tw: usize = side / 2;
            let rows = 16 * tw;
            // As on 2 threads (the minimum group count depends on them).
            let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build();
            let r = pool.expect("pool").install(|| group_rows(rows, tw, c, k));
            let budget = (GROUP_BYTES / 4 / (16 * (c + k))).clamp(48, 2048) / tw;
            assert_eq!(
                (r * tw) % PANEL_COLS,
                0,
                "{side}x{side}, {c} -> {k}: {r} rows"
            );
            assert!(
                r <= budget.max(1) && 2 * r >= budget,
                "{side}x{side}: {r} of {budget}"
            );
        }
    }

    /// Against candle's conv2d, odd and tiny sizes included. Tolerance 1e-5
    /// of the largest output: only rounding differs.
    #[test]
    fn forward_matches_candle_conv2d() {
        for (seed, &(n, c, h, w, k)) in [
            (2, 3, 8, 8, 4),
            (3, 5, 7, 9, 6),
            (1, 1, 1, 1, 1),
            (2, 16, 1, 3, 8),
            (4, 8, 13, 5, 3),
            (3, 64, 24, 24, 32),
            (17, 16, 6, 6, 8),
        ]
        .iter()
        .enumerate()
        {
            let seed = seed as u64 * 5;
            let x = (random(&[n, c, h, w], seed) - 0.5).unwrap();
            let wt = (random(&[k, c, 3, 3], seed + 1) - 0.5).unwrap();
            let b = (random(&[k], seed + 2) - 0.5).unwrap();
            for relu in [false, true] {
                let ours = run(&x, &wt, &b, relu);
                let want = crate::ops::conv::reference_conv3x3(&x, &wt, &b, relu).unwrap();
                let d = rel_diff(&ours, &want);
                assert!(d < 1e-5, "{:?} relu {relu}: {d}", (n, c, h, w, k));
            }
        }
    }

    /// The filter transform across lanes (as [`Filters`] builds it) gives
    /// each lane the bits of the one-filter transform.
    #[test]
    fn filter_transform_across_lanes_is_the_one_filter_transform() {
        let g: [[f32; 9]; BUILD_ROWS] = std::array::from_fn(|i| {
            std::array::from_fn(|t| ((i * 31 + t * 17) % 23) as f32 * 0.37 - 4.1)
        });
        let taps: [Lanes; 9] = std::array::from_fn(|t| Lanes(g.map(|g| g[t])));
        let lanes = transform_filter(&taps);
        for (i, g) in g.iter().enumerate() {
            let one = transform_filter(g);
            for (e, v) in one.iter().enumerate() {
                assert_eq!(
                    v.to_bits(),
                    lanes[e].0[i].to_bits(),
                    "lane {i}, element {e}"
                );
            }
        }
    }

    /// The filters [`Filters::build`] reads as vectors on AVX-512 are
    /// the bits of the lane-by-lane build, forward and flipped for the
    /// input gradient, from one to several `KC` blocks of columns and with
    /// NaN, infinities and subnormals among the weights.
    #[test]
    fn vector_filter_build_is_the_lane_by_lane_one() {
        for (k, c) in [(8, 1), (16, 3), (64, 24), (24, 300), (264, 16)] {
            let mut w = random(&[k * c * 9], 5).to_vec1::<f32>().unwrap();
            let specials = [f32::NAN, f32::INFINITY, -f32::INFINITY, 1e-40, -0.0];
            let n = w.len();
            for (i, v) in specials.iter().enumerate() {
                w[(i * 97) % n] = *v;
            }
            for (rows, cols, taps) in [(k, c, Taps::forward(c)), (c, k, Taps::input_gradient(c))] {
                let got = Filters::build(&w, rows, cols, taps);
                let want = Filters::build_lanes(&w, rows, cols, taps);
                assert_eq!((got.k, got.c), (want.k, want.c));
                for (xi, (g, e)) in got.u.iter().zip(&want.u).enumerate() {
                    assert_eq!(
                        g.bits(),
                        e.bits(),
                        "{rows}x{cols}, flip {}, ξ {xi}",
                        taps.flip
                    );
                }
            }
        }
    }

    /// The transforms give the same bits compiled for AVX-512 as for the
    /// baseline target ([`crate::ops::wide`]): forward with bias and ReLU,
    /// the masked input gradient and the weight gradient, odd widths too.
    #[test]
    fn wide_and_baseline_transforms_agree_bit_for_bit() {
        use std::sync::atomic::Ordering;
        let (n, c, h, w, k) = (3, 5, 7, 9, 6);
        let x = (random(&[n, c, h, w], 21) - 0.5).unwrap();
        let wt = (random(&[k, c, 3, 3], 22) - 0.5).unwrap();
        let b = (random(&[k], 23) - 0.5).unwrap();
        let g = (random(&[n, k, h, w], 24) - 0.5).unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (xs, ws, gs) = (flat(&x), flat(&wt), flat(&g));
        let all = || {
            let y = flat(&run(&x, &wt, &b, true));
            let e = Epilogue {
                bias: None,
                relu: false,
                input_mask: Some(&y),
            };
            let dx = conv(&Filters::input_gradient(&ws, k, c), &gs, n, h, w, &e);
            let dw = weight_gradient(&xs, &gs, Some(&y), n, c, k, h, w);
            [y, dx, dw].map(|v| v.into_iter().map(f32::to_bits).collect::<Vec<_>>())
        };
        let wide = all();
        crate::ops::NARROW.store(true, Ordering::Relaxed);
        let narrow = all();
        crate::ops::NARROW.store(false, Ordering::Relaxed);
        assert!(wide == narrow, "the two builds of the transforms differ");
    }

    /// The input-gradient filters and the mask give conv_transpose's result
    /// on the masked gradient.
    #[test]
    fn input_gradient_matches_conv_transpose() {
        for &(n, c, h, w, k) in &[(2, 3, 8, 8, 4), (3, 5, 7, 9, 6), (2, 16, 12, 12, 32)] {
            let g = (random(&[n, k, h, w], 7) - 0.5).unwrap();
            let mask = (random(&[n, k, h, w], 8) - 0.5).unwrap();
            let wt = (random(&[k, c, 3, 3], 9) - 0.5).unwrap();
            let masked = (&g
                * mask
                    .gt(0f32)
                    .unwrap()
                    .to_dtype(candle_core::DType::F32)
                    .unwrap())
            .unwrap();
            let want = masked.conv_transpose2d(&wt, 1, 0, 1, 1).unwrap();
            let gs = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let ms = mask.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let ws = wt.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let f = Filters::input_gradient(&ws, k, c);
            assert_eq!((f.k, f.c), (c, k));
            let e = Epilogue {
                bias: None,
                relu: false,
                input_mask: Some(&ms),
            };
            let dx = conv(&f, &gs, n, h, w, &e);
            let ours = Tensor::from_vec(dx, (n, c, h, w), &Device::Cpu).unwrap();
            let d = rel_diff(&ours, &want);
            assert!(d < 1e-5, "{:?}: {d}", (n, c, h, w, k));
        }
    }

    /// The weight gradient against candle's conv2d backward, with and
    /// without the ReLU mask, one chunk or several.
    #[test]
    fn weight_gradient_matches_candle() {
        for (seed, &(n, c, h, w, k)) in [
            (2, 3, 8, 8, 4),
            (3, 5, 7, 9, 6),
            (1, 1, 1, 1, 1),
            (5, 16, 12, 12, 32),
        ]
        .iter()
        .enumerate()
        {
            let seed = seed as u64 * 7;
            let x = candle_core::Var::from_tensor(&(random(&[n, c, h, w], seed) - 0.5).unwrap())
                .unwrap();
            let wt =
                candle_core::Var::from_tensor(&(random(&[k, c, 3, 3], seed + 1) - 0.5).unwrap())
                    .unwrap();
            let g = (random(&[n, k, h, w], seed + 2) - 0.5).unwrap();
            let mask = (random(&[n, k, h, w], seed + 3) - 0.5).unwrap();
            let keep = mask
                .gt(0f32)
                .unwrap()
                .to_dtype(candle_core::DType::F32)
                .unwrap();
            let xs = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let gs = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let ms = mask.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for masked in [false, true] {
                let upstream = if masked {
                    (&g * &keep).unwrap()
                } else {
                    g.clone()
                };
                let y = x.conv2d(&wt, 1, 1, 1, 1).unwrap();
                let want = (y * &upstream)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                let want = want.get(&wt).unwrap();
                let ours =
                    weight_gradient(&xs, &gs, masked.then_some(ms.as_slice()), n, c, k, h, w);
                let ours = Tensor::from_vec(ours, (k, c, 3, 3), &Device::Cpu).unwrap();
                let d = rel_diff(&ours, want);
                assert!(d < 1e-5, "{:?} masked {masked}: {d}", (n, c, h, w, k));
            }
        }
    }
}
