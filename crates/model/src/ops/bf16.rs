//! The bfloat16 pieces of the AVX-512 GEMM ([`super::avx512`]), for CPUs
//! with AVX512_BF16 (Zen 4 and later, Intel's Cooper Lake and Sapphire
//! Rapids): operands rounded to bfloat16 once, when packed, and multiplied
//! by `VDPBF16PS`, which does 32 multiply-adds per instruction where an f32
//! FMA does 16, accumulating in f32.
//!
//! Layout: both operands are packed in pairs along `k`. A 32-bit word holds
//! the bfloat16 of `k = 2q` in its low half and of `k = 2q + 1` in its high
//! half (a missing last `k` is zero); `A` panels hold, for each pair `q`,
//! the [`MR`](super::avx512::MR) words of their rows, `B` panels the `NR`
//! words of their columns.
//!
//! Numerics (Intel's SDM for `VDPBF16PS` and `VCVTNEPS2BF16`; the tests
//! check the rounding against the CPU's): rounding to bfloat16 is to
//! nearest even, with subnormal inputs flushed to zero and NaN kept quiet;
//! each product of two bfloat16 is exact in f32; the pair's products are
//! added to the f32 accumulator one after the other (`k = 2q + 1` first),
//! each sum rounded to nearest even, subnormal results flushed to zero. So
//! a product differs from the f32 one by the rounding of its operands (up
//! to 2^-9 of each) and the order of its sums.

use std::arch::x86_64::*;

use super::simd::{lanes, store, transpose8x8};

/// Whether this CPU runs the bfloat16 kernel: AVX-512F with BF16, BW and VL.
pub(crate) fn available() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        super::avx512::available()
            && std::arch::is_x86_feature_detected!("avx512bf16")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
    })
}

/// The bits of `x` rounded to bfloat16 as `VCVTNEPS2BF16` rounds it: to
/// nearest even, subnormals to a zero of the same sign, NaN quiet.
#[inline(always)]
pub(crate) fn bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    if b & 0x7f80_0000 == 0 {
        return ((b >> 16) & 0x8000) as u16;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// The f32 value of `x` rounded to bfloat16 (see [`bits`]).
#[cfg(test)]
pub(crate) fn round(x: f32) -> f32 {
    f32::from_bits((bits(x) as u32) << 16)
}

/// One packed word: `lo` (the even `k`) and `hi` (the odd one) as bfloat16.
#[inline(always)]
pub(crate) fn pair(lo: f32, hi: f32) -> u32 {
    bits(lo) as u32 | (bits(hi) as u32) << 16
}

/// `f()`, with `f` inlined and compiled for the bfloat16 kernel's
/// features (as [`super::wide`] compiles for AVX-512F alone).
///
/// # Safety
/// [`available`] must be true.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512bf16")]
pub(super) unsafe fn wide<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Writes the 8 words pairing lane `i` of `lo` (the low half, even `k`)
/// with lane `i` of `hi` (the high half) at `out`, rounded as [`pair`]
/// rounds.
///
/// # Safety
/// [`available`] must be true; `out` has room for 8 words.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512bf16")]
#[inline]
pub(super) unsafe fn store_pairs(lo: __m256, hi: __m256, out: *mut u32) {
    let (lo, hi) = (_mm256_cvtneps_pbh(lo), _mm256_cvtneps_pbh(hi));
    // SAFETY: same size; `out` has room for 8 words (caller).
    unsafe {
        let (lo, hi) = (
            std::mem::transmute::<__m128bh, __m128i>(lo),
            std::mem::transmute::<__m128bh, __m128i>(hi),
        );
        let at = out.cast::<__m128i>();
        _mm_storeu_si128(at, _mm_unpacklo_epi16(lo, hi));
        _mm_storeu_si128(at.add(1), _mm_unpackhi_epi16(lo, hi));
    }
}

/// Packs `a[0..m, pc..pc + kc]` (element `(i, p)` at `ptr + i * rs + p * cs`)
/// as panels of `MR` rows: panel `r` holds, for each pair `q`, the words of
/// its `MR` rows (zeros below row `m` and past column `kc`).
///
/// # Safety
/// [`available`] must be true; `out` holds `m.next_multiple_of(MR) *
/// kc.div_ceil(2)` words; every element read is in bounds.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512bf16")]
pub(super) unsafe fn pack_a<const MR: usize>(
    (ptr, rs, cs): (*const f32, usize, usize),
    m: usize,
    pc: usize,
    kc: usize,
    out: *mut u32,
) {
    let kq = kc.div_ceil(2);
    for ir in (0..m).step_by(MR) {
        let rows = MR.min(m - ir);
        // SAFETY: in bounds of `a` and of `out` (caller).
        unsafe {
            let panel = out.add(ir * kq);
            let origin = ptr.add(ir * rs + pc * cs);
            if MR == 8 && rows == MR && cs == 1 {
                // Row-major: each row is contiguous along `k`.
                pairs_across(origin, rs, kc, panel, MR);
                continue;
            }
            if MR == 8 && rows == MR && rs == 1 {
                // Column-major: a column's 8 rows are contiguous; the two
                // columns of a pair are interleaved.
                for q in 0..kq {
                    let lo = _mm256_loadu_ps(origin.add(2 * q * cs));
                    let hi = if 2 * q + 1 < kc {
                        _mm256_loadu_ps(origin.add((2 * q + 1) * cs))
                    } else {
                        _mm256_setzero_ps()
                    };
                    store_pairs(lo, hi, panel.add(q * MR));
                }
                continue;
            }
            for q in 0..kq {
                for i in 0..MR {
                    let at = |p: usize| {
                        if i < rows && p < kc {
                            *origin.add(i * rs + p * cs)
                        } else {
                            0.0
                        }
                    };
                    *panel.add(q * MR + i) = pair(at(2 * q), at(2 * q + 1));
                }
            }
        }
    }
}

/// Packs `b[pc..pc + kc, jc..jc + nc]` (element `(p, j)` at
/// `ptr + p * rs + j * cs`) as panels of `NR` columns: panel `j` holds, for
/// each pair `q`, the words of its `NR` columns (zeros right of column `nc`
/// and past row `kc`).
///
/// # Safety
/// [`available`] must be true; `out` holds `nc.next_multiple_of(NR) *
/// kc.div_ceil(2)` words, 64-byte aligned; every element read is in bounds.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512bf16")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn pack_b<const NR: usize>(
    (ptr, rs, cs): (*const f32, usize, usize),
    pc: usize,
    kc: usize,
    jc: usize,
    nc: usize,
    out: *mut u32,
) {
    let kq = kc.div_ceil(2);
    // Word 2j of the interleaved pair is lo[j], word 2j + 1 is hi[j]; the
    // converted vector holds lo in words 0..16 and hi in 16..32.
    let order: [u16; 32] = std::array::from_fn(|w| (w / 2 + 16 * (w % 2)) as u16);
    // SAFETY: 64 bytes read from a 64-byte array.
    let order = unsafe { _mm512_loadu_si512(order.as_ptr().cast()) };
    for jr in (0..nc).step_by(NR) {
        let cols = NR.min(nc - jr);
        // SAFETY: in bounds of `b` and of `out` (caller).
        unsafe {
            let panel = out.add(jr * kq);
            let origin = ptr.add(pc * rs + (jc + jr) * cs);
            if cs == 1 {
                for q in 0..kq {
                    let lo_row = origin.add(2 * q * rs);
                    let has_hi = 2 * q + 1 < kc;
                    for v in 0..NR / 16 {
                        let mask = lanes(cols, v);
                        let lo = _mm512_maskz_loadu_ps(mask, lo_row.add(16 * v));
                        let hi = if has_hi {
                            _mm512_maskz_loadu_ps(mask, lo_row.add(rs + 16 * v))
                        } else {
                            _mm512_setzero_ps()
                        };
                        let both: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                        let words = _mm512_permutexvar_epi16(order, both);
                        _mm512_store_si512(panel.add(q * NR + 16 * v).cast(), words);
                    }
                }
                continue;
            }
            let mut j0 = 0;
            if rs == 1 {
                // Each column is contiguous along `k`: 8 at a time.
                while j0 + 8 <= cols {
                    pairs_across(origin.add(j0 * cs), cs, kc, panel.add(j0), NR);
                    j0 += 8;
                }
            }
            for q in 0..kq {
                for j in j0..NR {
                    let at = |p: usize| {
                        if j < cols && p < kc {
                            *origin.add(p * rs + j * cs)
                        } else {
                            0.0
                        }
                    };
                    *panel.add(q * NR + j) = pair(at(2 * q), at(2 * q + 1));
                }
            }
        }
    }
}

/// The words of 8 lines that are each contiguous along `k` (line `l`
/// starts at `src + l * stride`, `kc` floats long), written pair by pair:
/// pair `q` of line `l` goes to `dst[q * dst_stride + l]`. A line's 16
/// floats convert to its 8 words at once; 8 lines' words are then
/// transposed.
///
/// # Safety
/// [`available`] must be true; the 8 lines and the `kc.div_ceil(2)` rows
/// of 8 words at `dst` are in bounds.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn pairs_across(
    src: *const f32,
    stride: usize,
    kc: usize,
    dst: *mut u32,
    dst_stride: usize,
) {
    let kq = kc.div_ceil(2);
    for q0 in (0..kq).step_by(8) {
        let p0 = 2 * q0;
        let mask = lanes(kc - p0, 0);
        // SAFETY: within the lines and rows (caller); the casts only rename
        // 16 bfloat16 as 8 words.
        unsafe {
            let words: [__m256; 8] = std::array::from_fn(|l| {
                let line = src.add(l * stride + p0);
                std::mem::transmute(_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, line)))
            });
            for (dq, v) in transpose8x8(words).into_iter().enumerate().take(kq - q0) {
                _mm256_storeu_ps(dst.add((q0 + dq) * dst_stride).cast(), v);
            }
        }
    }
}

/// `c[0..rows, 0..cols] = (load ? c : 0) + pa · pb` for one packed panel of
/// `MR` rows and one of `NR` columns, `kq` pairs long: only the vectors of
/// columns that exist are computed, as in the f32 kernel.
///
/// # Safety
/// [`available`] must be true; both panels hold `kq` pairs (the `B` panel
/// 64-byte aligned); the `rows x cols` block of `c` is in bounds.
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn kernel<const MR: usize, const NR: usize>(
    kq: usize,
    pa: *const u32,
    pb: *const u32,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    load: bool,
) {
    // SAFETY: as for `kernel_cols` (caller).
    unsafe {
        match cols.div_ceil(16) {
            1 => kernel_cols::<MR, NR, 1>(kq, pa, pb, c, ldc, rows, cols, load),
            2 => kernel_cols::<MR, NR, 2>(kq, pa, pb, c, ldc, rows, cols, load),
            _ => kernel_cols::<MR, NR, 3>(kq, pa, pb, c, ldc, rows, cols, load),
        }
    }
}

/// [`kernel`] with `V` vectors of 16 columns (`cols <= 16 V`, `16 V <= NR`).
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn kernel_cols<const MR: usize, const NR: usize, const V: usize>(
    kq: usize,
    pa: *const u32,
    pb: *const u32,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    load: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); V]; MR];
    for q in 0..kq {
        // SAFETY: both panels hold `kq` pairs (caller); the casts only
        // rename 512 bits as 32 bfloat16.
        unsafe {
            let b = pb.add(q * NR);
            let bv: [__m512bh; V] = std::array::from_fn(|v| {
                std::mem::transmute(_mm512_load_si512(b.add(16 * v).cast()))
            });
            let a = pa.add(q * MR);
            for (i, row) in acc.iter_mut().enumerate() {
                let ai: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(i) as i32));
                for (r, &b) in row.iter_mut().zip(&bv) {
                    *r = _mm512_dpbf16_ps(*r, ai, b);
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

    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn instruction(x: &[f32; 16]) -> [u16; 16] {
        // SAFETY: 16 floats read; the result is 16 bfloat16.
        unsafe { std::mem::transmute(_mm512_cvtneps_pbh(_mm512_loadu_ps(x.as_ptr()))) }
    }

    /// The scalar rounding (used where `A` is packed) gives the bits of the
    /// CPU's conversion (used where `B` is packed) on ties, subnormals,
    /// NaN, infinities, overflow and a spread of ordinary values.
    #[test]
    fn scalar_rounding_is_the_instructions() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX512_BF16");
            return;
        }
        let mut xs: Vec<f32> = [
            1,
            0x8000_0001,
            0x007f_ffff,
            0x0080_0000,
            0x7fc0_0000,
            0x7f80_0001,
            0xff80_0001,
            0x7f80_0000,
            0x7f7f_ffff,
            0x3f80_8000,
            0x3f81_8000,
            0x3f80_8001,
            0x8000_0000,
            0,
        ]
        .map(f32::from_bits)
        .to_vec();
        let mut s = 0x9e37_79b9_u32;
        for _ in 0..20_000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            xs.push(f32::from_bits(s));
        }
        for chunk in xs.chunks(16) {
            let mut x = [0f32; 16];
            x[..chunk.len()].copy_from_slice(chunk);
            // SAFETY: the CPU has AVX512_BF16 (checked).
            let want = unsafe { instruction(&x) };
            for (v, w) in x.iter().zip(want) {
                assert_eq!(bits(*v), w, "{:08x}", v.to_bits());
            }
        }
    }
}
