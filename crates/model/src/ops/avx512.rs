//! A single-threaded f32 GEMM with an AVX-512 micro-kernel, for CPUs that
//! have AVX-512F (detected at run time).
//!
//! Why: the `gemm` crate, as candle builds it, runs 256-bit FMAs (its
//! AVX-512 kernels are behind its opt-in `x86-v4` feature). Measured on a
//! 2-core Xeon with AVX-512, its kernel took 28% of a training step's
//! samples and the step ran at 0.62x PyTorch's. With `x86-v4` on instead of
//! this kernel, the same machine gave steps within noise of ours (full
//! 7.8, 8.2, 7.5 against 7.9, 7.4, 9.1 images/s; head 23.9, 26.6, 21.5
//! against 26.8, 25.2, 26.4); this kernel also takes Winograd's filters
//! packed once per convolution ([`PackedA`]).
//!
//! How: the usual three-level blocking (Goto & van de Geijn, "Anatomy of
//! High-Performance Matrix Multiplication", 2008). `A` is packed in panels
//! of [`MR`] rows, `B` in panels of [`NR`] columns, both zero-padded, and an
//! `MR x NR` block of the destination lives in 24 vector registers for a
//! whole [`KC`]-long run of `k`. Edges are written with masked stores.
//!
//! Numerics: each output is `Σ_p a[i, p] b[p, j]`, accumulated in order of
//! `p` with one fused multiply-add per term (the first [`KC`] terms in the
//! register, each later block added to the stored value), so the result
//! does not depend on the shape of the blocks or on threading.

use std::arch::x86_64::*;
use std::cell::RefCell;

use super::simd::{lanes, store, transpose8x8};

/// Rows of `A` (and of the destination) per micro-kernel call.
pub(crate) const MR: usize = 8;
/// Columns of `B` (and of the destination) per micro-kernel call: 3 vectors.
pub(crate) const NR: usize = 48;
/// Length of the `k` runs: a packed `B` panel (`KC x NR`) is 48 KiB.
const KC: usize = 256;
/// Columns of `B` packed at once: about 1 MiB of `B` per block, in L2.
const NC: usize = 20 * NR;

/// Whether this CPU runs [`gemm`].
pub(crate) fn available() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx2")
    })
}

/// One cache line of floats, so that packed panels start on a line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

thread_local! {
    /// Packed `A` and `B` blocks of the calling thread.
    static PACKED: RefCell<(Vec<Line>, Vec<Line>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Room for at least `floats` floats, as a pointer to the first.
fn room(v: &mut Vec<Line>, floats: usize) -> *mut f32 {
    let lines = floats.div_ceil(16);
    if v.len() < lines {
        v.resize(lines, Line([0.0; 16]));
    }
    v.as_mut_ptr().cast()
}

/// A matrix operand: element `(i, j)` is at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
pub(crate) struct Operand {
    pub(crate) ptr: *const f32,
    pub(crate) rs: usize,
    pub(crate) cs: usize,
}

/// A left operand packed once for many products (a convolution's
/// transformed filters): the panels [`gemm`] would pack on every call.
pub(crate) struct PackedA {
    m: usize,
    k: usize,
    /// f32 panels, or with `bf16` the words of [`super::bf16`]'s layout.
    panels: Vec<Line>,
    bf16: bool,
}

impl PackedA {
    /// Packs the row-major `[m, k]` matrix `a` (the way [`gemm`] packs it;
    /// for tests, which check [`PackedA::build`] against it).
    ///
    /// # Panics
    /// If `a` is not `m * k` long or [`available`] is false.
    #[cfg(test)]
    pub(crate) fn new(a: &[f32], m: usize, k: usize) -> PackedA {
        assert_eq!(a.len(), m * k, "packed operand size");
        assert!(available(), "AVX-512F is not available");
        let mut panels = Vec::new();
        let pa = room(&mut panels, m.next_multiple_of(MR) * k);
        let a = Operand {
            ptr: a.as_ptr(),
            rs: k,
            cs: 1,
        };
        // SAFETY: `pa` holds the padded panels; `a` is `m x k` (checked).
        unsafe { pack_a_all(a, m, k, pa, false) };
        PackedA {
            m,
            k,
            panels,
            bf16: false,
        }
    }

    /// `N` operands of `[m, k]`, packed as [`PackedA::new`] packs each, from
    /// `f(i0, p)`: column `p` of rows `i0..i0 + MR` of every operand,
    /// `f(i0, p)[j][i]` being element `(i0 + i, p)` of operand `j` (lanes at
    /// or past row `m` are ignored and packed as zeros; `f` must not read
    /// past its own data there). For operands that are computed rather than
    /// stored (a convolution's 16 transformed filters): each element is
    /// computed once, [`MR`] rows at a time (so the arithmetic runs across
    /// vector lanes, [`super::wide`]) and written once, straight into its
    /// panel, without a zero-filled matrix in between. Row panels in
    /// parallel on the rayon pool. With `bf16`, in [`super::bf16`]'s
    /// layout: each element rounded to bfloat16 once, there.
    ///
    /// # Panics
    /// If [`available`] is false, or `bf16` is asked for and
    /// [`super::bf16::available`] is false.
    pub(crate) fn build<const N: usize>(
        m: usize,
        k: usize,
        bf16: bool,
        f: impl Fn(usize, usize) -> [[f32; MR]; N] + Sync,
    ) -> Vec<PackedA> {
        use rayon::prelude::*;
        assert!(available(), "AVX-512F is not available");
        assert!(
            !bf16 || super::bf16::available(),
            "AVX512_BF16 is not available"
        );
        let m_pad = m.next_multiple_of(MR);
        // Words of the packed operand: all `KC` blocks but the last are even.
        let floats = if bf16 {
            m_pad * k.div_ceil(2)
        } else {
            m_pad * k
        };
        let lines = floats.div_ceil(16);
        let mut panels: Vec<Vec<Line>> = (0..N).map(|_| Vec::with_capacity(lines)).collect();
        // Addresses as integers, so that the row panels can cross threads.
        let dst: Vec<usize> = panels.iter_mut().map(|v| v.as_mut_ptr() as usize).collect();
        (0..m_pad / MR).into_par_iter().for_each(|panel| {
            let ir = panel * MR;
            let rows = MR.min(m - ir);
            if bf16 {
                // SAFETY: the CPU has AVX512_BF16 (asserted). The stores:
                // `at + MR <= m_pad * k.div_ceil(2)`, within the capacity;
                // each (panel, pc, q) is written by this iteration only.
                return unsafe {
                    super::bf16::wide(
                        #[inline(always)]
                        || {
                            for pc in (0..k).step_by(KC) {
                                let (kc, kq) = (KC.min(k - pc), KC.min(k - pc).div_ceil(2));
                                for q in 0..kq {
                                    let lo = column(&f, ir, rows, pc + 2 * q);
                                    let hi = if 2 * q + 1 < kc {
                                        column(&f, ir, rows, pc + 2 * q + 1)
                                    } else {
                                        [[0.0; MR]; N]
                                    };
                                    let at = m_pad * pc / 2 + ir * kq + q * MR;
                                    for ((lo, hi), &d) in lo.iter().zip(&hi).zip(&dst) {
                                        super::bf16::store_pairs(
                                            _mm256_loadu_ps(lo.as_ptr()),
                                            _mm256_loadu_ps(hi.as_ptr()),
                                            (d as *mut u32).add(at),
                                        );
                                    }
                                }
                            }
                        },
                    )
                };
            }
            super::wide(
                #[inline(always)]
                || {
                    for pc in (0..k).step_by(KC) {
                        let kc = KC.min(k - pc);
                        for p in 0..kc {
                            let col = column(&f, ir, rows, pc + p);
                            let at = m_pad * pc + ir * kc + p * MR;
                            for (lanes, &d) in col.iter().zip(&dst) {
                                // SAFETY: `at + MR <= m_pad * k`, within the
                                // capacity; each (panel, pc, p) is written by
                                // this iteration only, and nothing reads
                                // before `set_len`.
                                unsafe {
                                    std::ptr::copy_nonoverlapping(
                                        lanes.as_ptr(),
                                        (d as *mut f32).add(at),
                                        MR,
                                    )
                                };
                            }
                        }
                    }
                },
            )
        });
        panels
            .into_iter()
            .zip(&dst)
            .map(|(mut v, &d)| {
                // SAFETY: the loop above wrote words `0..floats` (every
                // row panel, every column); zero the rest of the last line,
                // then all `lines` lines are initialised.
                unsafe {
                    let tail = lines * 16 - floats;
                    std::ptr::write_bytes((d as *mut f32).add(floats), 0, tail);
                    v.set_len(lines);
                }
                PackedA {
                    m,
                    k,
                    panels: v,
                    bf16,
                }
            })
            .collect()
    }

    /// The bits of the padded panels, in order (f32 or bf16 words).
    #[cfg(test)]
    pub(crate) fn bits(&self) -> Vec<u32> {
        self.panels
            .iter()
            .flat_map(|l| l.0)
            .map(f32::to_bits)
            .collect()
    }

    /// Rows of the operand.
    pub(crate) fn rows(&self) -> usize {
        self.m
    }

    /// Columns of the operand.
    pub(crate) fn cols(&self) -> usize {
        self.k
    }
}

/// Column `p` of rows `ir..ir + rows` of [`PackedA::build`]'s operands,
/// zeros past row `rows` (inlined into [`super::wide`]'s instance).
#[inline(always)]
fn column<const N: usize>(
    f: &impl Fn(usize, usize) -> [[f32; MR]; N],
    ir: usize,
    rows: usize,
    p: usize,
) -> [[f32; MR]; N] {
    let mut col = f(ir, p);
    for lanes in &mut col {
        lanes[rows..].fill(0.0);
    }
    col
}

/// `dst[m, n] = (acc ? dst : 0) + a[m, k] · b[k, n]`, `dst` row-major with
/// row stride `ldc`, on the calling thread; with `bf16`, of the operands
/// rounded to bfloat16 (accumulated in f32, [`super::bf16`]).
///
/// # Safety
/// [`available`] must be true, and [`super::bf16::available`] with `bf16`;
/// every element of the three matrices must be in bounds of live
/// allocations, and `dst` must overlap neither operand.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    ldc: usize,
    acc: bool,
    a: Operand,
    b: Operand,
    bf16: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    PACKED.with(|cell| {
        let mut guard = cell.borrow_mut();
        let (pa_buf, pb_buf) = &mut *guard;
        let m_pad = m.next_multiple_of(MR);
        let pa = room(pa_buf, m_pad * k);
        // SAFETY: `pa` holds the padded panels (in words, at least as many
        // as either layout needs); the rest is the caller's.
        unsafe {
            pack_a_all(a, m, k, pa, bf16);
            let panels = Panels {
                ptr: pa,
                stride: m_pad,
                row0: 0,
                bf16,
            };
            run(panels, m, n, k, dst, ldc, acc, b, pb_buf);
        }
    });
}

/// [`gemm`] for rows `rows` of `a`, packed beforehand: `dst` is the first
/// of those rows.
///
/// # Safety
/// As for [`gemm`], with `k` that of `a`.
///
/// # Panics
/// If `rows` is not within `a` or does not start on a multiple of 8.
pub(crate) unsafe fn gemm_packed(
    a: &PackedA,
    rows: std::ops::Range<usize>,
    n: usize,
    dst: *mut f32,
    ldc: usize,
    acc: bool,
    b: Operand,
) {
    assert!(
        rows.end <= a.m && rows.start.is_multiple_of(MR),
        "packed rows"
    );
    if rows.is_empty() || n == 0 {
        return;
    }
    PACKED.with(|cell| {
        let pb_buf = &mut cell.borrow_mut().1;
        let pa = a.panels.as_ptr().cast::<f32>();
        let panels = Panels {
            ptr: pa,
            stride: a.m.next_multiple_of(MR),
            row0: rows.start,
            bf16: a.bf16,
        };
        // SAFETY: `a` holds its padded panels; the rest is the caller's.
        unsafe { run(panels, rows.len(), n, a.k, dst, ldc, acc, b, pb_buf) };
    });
}

/// Rows `row0..` of a packed `a` (see [`pack_a_all`]), whose `k` blocks are
/// `stride * kc` floats apart; with `bf16`, in [`super::bf16`]'s layout,
/// `stride * kc / 2` words apart.
#[derive(Clone, Copy)]
struct Panels {
    ptr: *const f32,
    stride: usize,
    row0: usize,
    bf16: bool,
}

/// Packs all of `a[m, k]`: the blocks of [`KC`] columns one after another,
/// each as [`pack_a`] lays it out (block `pc` starts at float `m_pad * pc`);
/// with `bf16`, as [`super::bf16::pack_a`] does (at word `m_pad * pc / 2`).
///
/// # Safety
/// `out` holds `m_pad * k` floats; `a` is `m x k`; with `bf16`, the CPU
/// has AVX512_BF16.
unsafe fn pack_a_all(a: Operand, m: usize, k: usize, out: *mut f32, bf16: bool) {
    let m_pad = m.next_multiple_of(MR);
    for pc in (0..k).step_by(KC) {
        let kc = KC.min(k - pc);
        // SAFETY: block `pc` lies within the `m_pad * k` floats (caller).
        unsafe {
            if bf16 {
                let out = out.cast::<u32>().add(m_pad * pc / 2);
                super::bf16::pack_a::<MR>((a.ptr, a.rs, a.cs), m, pc, kc, out);
            } else {
                pack_a(a, m, pc, kc, out.add(m_pad * pc));
            }
        }
    }
}

/// The blocked product over `m` rows of a packed `a`, f32 or bfloat16
/// (`Panels::bf16`: then `b` is rounded to bfloat16 as it is packed).
#[allow(clippy::too_many_arguments)]
unsafe fn run(
    pa: Panels,
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    ldc: usize,
    acc: bool,
    b: Operand,
    pb_buf: &mut Vec<Line>,
) {
    if k == 0 {
        if !acc {
            for i in 0..m {
                // SAFETY: row `i` of the destination is in bounds (caller).
                unsafe { std::ptr::write_bytes(dst.add(i * ldc), 0, n) };
            }
        }
        return;
    }
    for pc in (0..k).step_by(KC) {
        let kc = KC.min(k - pc);
        // Steps of `k` in the panels: floats, or pairs of bfloat16 words.
        let (steps, block) = if pa.bf16 {
            (kc.div_ceil(2), pa.stride * pc / 2)
        } else {
            (kc, pa.stride * pc)
        };
        // SAFETY: block `pc` of the packed `a`, from row `row0` (caller).
        let pa_block = unsafe { pa.ptr.add(block + pa.row0 * steps) };
        let load = acc || pc > 0;
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            let pb = room(pb_buf, nc.next_multiple_of(NR) * steps);
            // SAFETY: `pb` holds the padded, aligned panels; reads in
            // bounds (caller); the CPU has AVX512_BF16 where `a` is
            // bfloat16 (`PackedA::build`, or `gemm`'s caller).
            unsafe {
                if pa.bf16 {
                    super::bf16::pack_b::<NR>((b.ptr, b.rs, b.cs), pc, kc, jc, nc, pb.cast());
                } else {
                    pack_b(b, pc, kc, jc, nc, pb);
                }
            }
            for ir in (0..m).step_by(MR) {
                let rows = MR.min(m - ir);
                for jr in (0..nc).step_by(NR) {
                    let cols = NR.min(nc - jr);
                    let (a_panel, b_panel) = (
                        pa_block.wrapping_add(ir * steps),
                        pb.wrapping_add(jr * steps),
                    );
                    let c = dst.wrapping_add(ir * ldc + jc + jr);
                    // SAFETY: the panels are packed above; the block of
                    // `dst` is in bounds (caller); the CPU has AVX-512F
                    // (and AVX512_BF16 as above).
                    unsafe {
                        if pa.bf16 {
                            super::bf16::kernel::<MR, NR>(
                                steps,
                                a_panel.cast(),
                                b_panel.cast(),
                                c,
                                ldc,
                                rows,
                                cols,
                                load,
                            )
                        } else {
                            kernel(steps, a_panel, b_panel, c, ldc, rows, cols, load)
                        }
                    };
                }
            }
        }
    }
}

/// Packs `a[0..m, pc..pc + kc]` as panels of [`MR`] rows: panel `r` holds,
/// for each `p`, the `MR` values of column `pc + p` (zeros below row `m`).
#[target_feature(enable = "avx2,avx512f")]
unsafe fn pack_a(a: Operand, m: usize, pc: usize, kc: usize, out: *mut f32) {
    for ir in (0..m).step_by(MR) {
        let rows = MR.min(m - ir);
        // SAFETY: `out` holds `m_pad * kc` floats (caller); reads are in bounds.
        unsafe {
            let panel = out.add(ir * kc);
            let origin = a.ptr.add(ir * a.rs + pc * a.cs);
            let mut p0 = 0;
            if rows == MR && a.cs == 1 {
                // Row-major: 8 rows of 8 columns at a time, transposed.
                while p0 + 8 <= kc {
                    transpose8(origin.add(p0), a.rs, panel.add(p0 * MR), MR);
                    p0 += 8;
                }
            } else if rows == MR && a.rs == 1 {
                // Column-major: each column's 8 rows are already contiguous.
                while p0 < kc {
                    let col = _mm256_loadu_ps(origin.add(p0 * a.cs));
                    _mm256_storeu_ps(panel.add(p0 * MR), col);
                    p0 += 1;
                }
            }
            for p in p0..kc {
                for i in 0..MR {
                    *panel.add(p * MR + i) = if i < rows {
                        *origin.add(i * a.rs + p * a.cs)
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

/// Packs `b[pc..pc + kc, jc..jc + nc]` as panels of [`NR`] columns: panel
/// `j` holds, for each `p`, the `NR` values of row `pc + p` (zeros right of
/// column `nc`).
#[target_feature(enable = "avx2,avx512f")]
unsafe fn pack_b(b: Operand, pc: usize, kc: usize, jc: usize, nc: usize, out: *mut f32) {
    for jr in (0..nc).step_by(NR) {
        let cols = NR.min(nc - jr);
        // SAFETY: `out` holds `n_pad * kc` floats (caller); reads are in bounds.
        unsafe {
            let panel = out.add(jr * kc);
            let origin = b.ptr.add(pc * b.rs + (jc + jr) * b.cs);
            if b.cs == 1 {
                let masks = [lanes(cols, 0), lanes(cols, 1), lanes(cols, 2)];
                for p in 0..kc {
                    let (src, dst) = (origin.add(p * b.rs), panel.add(p * NR));
                    for (v, &mask) in masks.iter().enumerate() {
                        let row = _mm512_maskz_loadu_ps(mask, src.add(16 * v));
                        _mm512_store_ps(dst.add(16 * v), row);
                    }
                }
                continue;
            }
            if cols < NR {
                std::ptr::write_bytes(panel, 0, NR * kc);
            }
            let mut j0 = 0;
            if b.rs == 1 {
                // Transposed row-major (contiguous along `p`): 8x8 blocks.
                let p8 = kc - kc % 8;
                while j0 + 8 <= cols {
                    for p0 in (0..p8).step_by(8) {
                        transpose8(
                            origin.add(p0 + j0 * b.cs),
                            b.cs,
                            panel.add(p0 * NR + j0),
                            NR,
                        );
                    }
                    for p in p8..kc {
                        for j in j0..j0 + 8 {
                            *panel.add(p * NR + j) = *origin.add(p + j * b.cs);
                        }
                    }
                    j0 += 8;
                }
            }
            for j in j0..cols {
                let col = origin.add(j * b.cs);
                for p in 0..kc {
                    *panel.add(p * NR + j) = *col.add(p * b.rs);
                }
            }
        }
    }
}

/// `dst[r * dst_stride + c] = src[c * src_stride + r]` for `r, c < 8`.
#[target_feature(enable = "avx2")]
unsafe fn transpose8(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize) {
    // SAFETY: the 8x8 blocks are in bounds (caller).
    unsafe {
        let r: [__m256; 8] = std::array::from_fn(|c| _mm256_loadu_ps(src.add(c * src_stride)));
        for (row, v) in transpose8x8(r).into_iter().enumerate() {
            _mm256_storeu_ps(dst.add(row * dst_stride), v);
        }
    }
}

/// `c[0..rows, 0..cols] = (load ? c : 0) + pa · pb` for one packed `MR x kc`
/// panel of `A` and one packed `kc x NR` panel of `B`: only the vectors of
/// columns that exist are computed (a last panel of 16 columns, as in the
/// weight gradient of a 64-channel layer, costs a third of a full one), each
/// with the same FMAs in the same order, so the bits do not depend on it.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(
    kc: usize,
    pa: *const f32,
    pb: *const f32,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    load: bool,
) {
    // SAFETY: as for `kernel_cols` (caller).
    unsafe {
        match cols.div_ceil(16) {
            1 => kernel_cols::<1>(kc, pa, pb, c, ldc, rows, cols, load),
            2 => kernel_cols::<2>(kc, pa, pb, c, ldc, rows, cols, load),
            _ => kernel_cols::<3>(kc, pa, pb, c, ldc, rows, cols, load),
        }
    }
}

/// [`kernel`] with `V` vectors of 16 columns (`cols <= 16 V`).
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn kernel_cols<const V: usize>(
    kc: usize,
    pa: *const f32,
    pb: *const f32,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    load: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); V]; MR];
    for p in 0..kc {
        // SAFETY: both panels hold `kc` steps (caller).
        unsafe {
            let b = pb.add(p * NR);
            let bv: [__m512; V] = std::array::from_fn(|v| _mm512_load_ps(b.add(16 * v)));
            let a = pa.add(p * MR);
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(*a.add(i));
                for (r, &b) in row.iter_mut().zip(&bv) {
                    *r = _mm512_fmadd_ps(ai, b, *r);
                }
            }
        }
    }
    // SAFETY: the `rows x cols` block of `c` is in bounds (caller).
    unsafe { store(&acc, c, ldc, rows, cols, load) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The product in f64, for `a` and `b` given by strides.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        (ars, acs): (usize, usize),
        b: &[f32],
        (brs, bcs): (usize, usize),
    ) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|p| a[i * ars + p * acs] as f64 * b[p * brs + j * bcs] as f64)
                    .sum();
            }
        }
        out
    }

    fn values(len: usize, seed: u64) -> Vec<f32> {
        (0..len)
            .map(|i| (((i as f64 + 0.5) * 0.6180339 + seed as f64 * 0.137).sin() * 2.0) as f32)
            .collect()
    }

    /// Every edge case of the blocking (rows and columns past a panel,
    /// several `k` and `n` blocks), both layouts of each operand, and
    /// accumulation, against an f64 sum: within f32 rounding of the sum of
    /// absolute terms.
    #[test]
    fn matches_an_f64_product_for_every_blocking_edge() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        check_every_blocking_edge(false);
    }

    /// The same in bfloat16, against the f64 product of the operands
    /// rounded to bfloat16 (each product of two is exact in f32, so only
    /// the f32 sums round): within the same bound, which the unrounded
    /// operands would miss by far on the short sums. Odd `k` included.
    #[test]
    fn bf16_matches_an_f64_product_of_the_rounded_operands() {
        if !super::super::bf16::available() {
            eprintln!("skipped: this CPU has no AVX512_BF16");
            return;
        }
        check_every_blocking_edge(true);
    }

    fn check_every_blocking_edge(bf16: bool) {
        let round = |v: Vec<f32>| -> Vec<f32> {
            if bf16 {
                v.into_iter().map(super::super::bf16::round).collect()
            } else {
                v
            }
        };
        let shapes = [
            (1, 1, 1),
            (3, 5, 7),
            (8, 48, 256),
            (9, 49, 257),
            (17, 1000, 3),
            (64, 240, 64),
            (13, 7, 600),
            (5, 2000, 20),
        ];
        for (s, &(m, n, k)) in shapes.iter().enumerate() {
            for (a_t, b_t, acc) in [
                (false, false, false),
                (true, false, true),
                (false, true, false),
                (true, true, true),
            ] {
                let a = values(m * k, s as u64);
                let b = values(k * n, s as u64 + 100);
                let a_st = if a_t { (1, m) } else { (k, 1) };
                let b_st = if b_t { (1, k) } else { (n, 1) };
                // Padding around the destination catches stray writes.
                let ldc = n + 3;
                let start = values(m * ldc, 7);
                let mut dst = start.clone();
                // SAFETY: the strides describe the slices exactly; AVX-512F checked.
                unsafe {
                    gemm(
                        m,
                        n,
                        k,
                        dst.as_mut_ptr(),
                        ldc,
                        acc,
                        Operand {
                            ptr: a.as_ptr(),
                            rs: a_st.0,
                            cs: a_st.1,
                        },
                        Operand {
                            ptr: b.as_ptr(),
                            rs: b_st.0,
                            cs: b_st.1,
                        },
                        bf16,
                    )
                };
                let (a, b) = (round(a), round(b));
                let want = reference(m, n, k, &a, a_st, &b, b_st);
                for i in 0..m {
                    for j in 0..ldc {
                        let got = dst[i * ldc + j] as f64;
                        if j >= n {
                            assert_eq!(dst[i * ldc + j], start[i * ldc + j], "stray write");
                            continue;
                        }
                        let base = if acc { start[i * ldc + j] as f64 } else { 0.0 };
                        let scale: f64 = (0..k)
                            .map(|p| {
                                (a[i * a_st.0 + p * a_st.1] * b[p * b_st.0 + j * b_st.1]).abs()
                                    as f64
                            })
                            .sum::<f64>()
                            + base.abs();
                        let err = (got - base - want[i * n + j]).abs();
                        assert!(
                            err <= 2.0 * k as f64 * f32::EPSILON as f64 * scale + 1e-30,
                            "{:?} a_t {a_t} b_t {b_t} acc {acc} at ({i}, {j}): {got} vs {}",
                            (m, n, k),
                            base + want[i * n + j]
                        );
                    }
                }
            }
        }
    }

    /// Operands computed into their panels ([`PackedA::build`]) are the
    /// ones [`PackedA::new`] packs from the same matrices, padding included,
    /// over row and column edges and more than one `KC` block.
    #[test]
    fn built_operands_are_the_packed_matrices() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        for &(m, k) in &[(21, 5), (64, 300), (3, 1), (512, 513)] {
            let f = |i: usize, p: usize| [(i * 1000 + p) as f32, -((i + 7 * p) as f32) * 0.5];
            // NaN past the last row: the builder must pack zeros there.
            let built = PackedA::build::<2>(m, k, false, |i0, p| {
                std::array::from_fn(|j| {
                    std::array::from_fn(|i| {
                        if i0 + i < m {
                            f(i0 + i, p)[j]
                        } else {
                            f32::NAN
                        }
                    })
                })
            });
            for (j, got) in built.iter().enumerate() {
                let a: Vec<f32> = (0..m * k).map(|e| f(e / k, e % k)[j]).collect();
                let want = PackedA::new(&a, m, k);
                assert_eq!((got.m, got.k), (m, k));
                assert_eq!(got.bits(), want.bits(), "{:?} operand {j}", (m, k));
            }
        }
    }

    /// A packed operand gives the same bits as packing on the fly, whole or
    /// split into row blocks (as the threaded caller splits it), in f32 and
    /// (where the CPU has it) in bfloat16, packed or built.
    #[test]
    fn packed_operand_gives_the_same_bits_whole_and_split() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        let precisions: &[bool] = if super::super::bf16::available() {
            &[false, true]
        } else {
            &[false]
        };
        for &bf16 in precisions {
            for &(m, n, k) in &[(64, 100, 300), (21, 5, 9), (512, 37, 520)] {
                packed_matches_on_the_fly(m, n, k, bf16);
            }
        }
    }

    fn packed_matches_on_the_fly(m: usize, n: usize, k: usize, bf16: bool) {
        {
            let a = values(m * k, 1);
            let b = values(k * n, 2);
            let b_op = Operand {
                ptr: b.as_ptr(),
                rs: n,
                cs: 1,
            };
            let mut want = vec![0f32; m * n];
            // SAFETY: the operands are exactly `m x k` and `k x n`.
            unsafe {
                gemm(
                    m,
                    n,
                    k,
                    want.as_mut_ptr(),
                    n,
                    false,
                    Operand {
                        ptr: a.as_ptr(),
                        rs: k,
                        cs: 1,
                    },
                    b_op,
                    bf16,
                )
            };
            let built = PackedA::build::<1>(m, k, bf16, |i0, p| {
                [std::array::from_fn(|i| {
                    if i0 + i < m {
                        a[(i0 + i) * k + p]
                    } else {
                        f32::NAN
                    }
                })]
            });
            let packed = if bf16 {
                built.into_iter().next().unwrap()
            } else {
                PackedA::new(&a, m, k)
            };
            for split in [m, 16, 8] {
                let mut got = vec![f32::NAN; m * n];
                for r0 in (0..m).step_by(split) {
                    let r1 = (r0 + split).min(m);
                    // SAFETY: rows `r0..r1` of the destination, as above.
                    unsafe {
                        gemm_packed(
                            &packed,
                            r0..r1,
                            n,
                            got.as_mut_ptr().add(r0 * n),
                            n,
                            false,
                            b_op,
                        )
                    };
                }
                assert!(
                    got.iter()
                        .zip(&want)
                        .all(|(g, w)| g.to_bits() == w.to_bits()),
                    "{:?} split {split} bf16 {bf16}",
                    (m, n, k)
                );
            }
        }
    }
}
