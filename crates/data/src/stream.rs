//! Copying finished images into a batch buffer with non-temporal stores.
//!
//! A batch of 128 STL10 images is 14 MB of f32: more than the caches keep, so
//! ordinary stores first read every destination line from memory ("read for
//! ownership") only to overwrite it, which doubles the memory traffic of the
//! loader. Non-temporal stores write whole lines without reading them.

/// Copies `src` into `dst` (same length) bypassing the caches where the CPU
/// supports it (x86-64 with AVX: 32-byte stores, which the CPU combines
/// into whole lines), else with a plain copy. The stores are fenced before
/// returning, so the data is visible to any thread that synchronises with
/// this one afterwards.
pub(crate) fn copy_streaming(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len(), "copy_streaming: length mismatch");
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the feature was detected at run time.
            unsafe { x86::copy_avx(dst, src) };
            return;
        }
    }
    dst.copy_from_slice(src);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Elements of `dst` before its first `align`-byte boundary (copied with
    /// plain stores; the rest goes out in aligned vectors).
    fn head_len(dst: &[f32], align: usize) -> usize {
        let misalign = dst.as_ptr() as usize % align;
        if misalign == 0 {
            0
        } else {
            ((align - misalign) / 4).min(dst.len())
        }
    }

    #[target_feature(enable = "avx")]
    pub(super) unsafe fn copy_avx(dst: &mut [f32], src: &[f32]) {
        let head = head_len(dst, 32);
        dst[..head].copy_from_slice(&src[..head]);
        let (dst, src) = (&mut dst[head..], &src[head..]);
        let body = dst.len() / 8 * 8;
        let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
        let mut i = 0;
        while i < body {
            // SAFETY: i + 8 <= body <= len for both slices; `d + i` is
            // 32-byte aligned (head skipped, i a multiple of 8 floats).
            unsafe { _mm256_stream_ps(d.add(i), _mm256_loadu_ps(s.add(i))) };
            i += 8;
        }
        dst[body..].copy_from_slice(&src[body..]);
        _mm_sfence();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_every_length_and_alignment() {
        let src: Vec<f32> = (0..300).map(|i| i as f32 * 0.5 - 7.0).collect();
        for offset in 0..17 {
            for len in [0, 1, 15, 16, 17, 31, 64, 100, 283 - offset] {
                let mut dst = vec![f32::NAN; 300];
                copy_streaming(&mut dst[offset..offset + len], &src[..len]);
                assert_eq!(
                    &dst[offset..offset + len],
                    &src[..len],
                    "offset {offset} len {len}"
                );
                assert!(
                    dst[..offset].iter().all(|v| v.is_nan()),
                    "wrote before the slice"
                );
                assert!(
                    dst[offset + len..].iter().all(|v| v.is_nan()),
                    "wrote after the slice"
                );
            }
        }
    }
}
