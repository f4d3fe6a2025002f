//! Register-level helpers shared by the AVX-512 GEMM's f32 and bfloat16
//! packing and kernels.

use std::arch::x86_64::*;

/// The 8x8 transpose of 32-bit lanes: lane `c` of output `r` is lane `r`
/// of input `c`.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn transpose8x8(r: [__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}

/// The mask of the valid lanes of vector `v` (16 lanes each) of a row of
/// which `cols` columns exist.
pub(super) fn lanes(cols: usize, v: usize) -> __mmask16 {
    let n = cols.saturating_sub(16 * v).min(16);
    ((1u32 << n) - 1) as __mmask16
}

/// `c[0..rows, 0..cols] = (load ? c : 0) + acc`: a micro-kernel's
/// accumulators (row `i`, vector `v` holding columns `16 v..16 v + 16`)
/// written out with masked stores at the edges.
///
/// # Safety
/// The `rows x cols` block of `c` (row stride `ldc`) is in bounds, with
/// `rows <= MR` and `cols <= 16 V`.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) unsafe fn store<const MR: usize, const V: usize>(
    acc: &[[__m512; V]; MR],
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    load: bool,
) {
    let masks: [__mmask16; V] = std::array::from_fn(|v| lanes(cols, v));
    for (i, row) in acc.iter().enumerate().take(rows) {
        for (v, (&sum, &mask)) in row.iter().zip(&masks).enumerate() {
            if mask == 0 {
                continue;
            }
            // SAFETY: only the `rows x cols` block of `c` is touched (caller).
            unsafe {
                let at = c.add(i * ldc + 16 * v);
                let out = if load {
                    _mm512_add_ps(_mm512_maskz_loadu_ps(mask, at), sum)
                } else {
                    sum
                };
                _mm512_mask_storeu_ps(at, mask, out);
            }
        }
    }
}

/// 8 floats in a register, with the element-wise `+`, `-` and `* f32` of
/// IEEE single precision (so generic arithmetic on it gives, lane by lane,
/// the bits it gives on `f32`). Made only through [`F32x8::new`], by code
/// that runs where the CPU has AVX, into which its operations are inlined.
#[derive(Clone, Copy)]
pub(super) struct F32x8(__m256);

impl F32x8 {
    /// # Safety
    /// The CPU has AVX (every `F32x8`'s operations rely on it).
    #[inline(always)]
    pub(super) unsafe fn new(v: __m256) -> F32x8 {
        F32x8(v)
    }

    /// The 8 lanes.
    #[inline(always)]
    pub(super) fn to_array(self) -> [f32; 8] {
        // SAFETY: same size, every bit pattern valid.
        unsafe { std::mem::transmute::<__m256, [f32; 8]>(self.0) }
    }
}

impl std::ops::Add for F32x8 {
    type Output = F32x8;
    #[inline(always)]
    fn add(self, o: F32x8) -> F32x8 {
        // SAFETY: the CPU has AVX (an `F32x8` exists).
        F32x8(unsafe { _mm256_add_ps(self.0, o.0) })
    }
}

impl std::ops::Sub for F32x8 {
    type Output = F32x8;
    #[inline(always)]
    fn sub(self, o: F32x8) -> F32x8 {
        // SAFETY: the CPU has AVX (an `F32x8` exists).
        F32x8(unsafe { _mm256_sub_ps(self.0, o.0) })
    }
}

impl std::ops::Mul<f32> for F32x8 {
    type Output = F32x8;
    #[inline(always)]
    fn mul(self, v: f32) -> F32x8 {
        // SAFETY: the CPU has AVX (an `F32x8` exists).
        F32x8(unsafe { _mm256_mul_ps(self.0, _mm256_set1_ps(v)) })
    }
}
