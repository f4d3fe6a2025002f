//! The fused writer's fast path for sources whose columns are contiguous
//! (STL10's column-major planes), on x86-64 with AVX2: 16 columns of 16
//! bytes are transposed in registers into 16 output rows, and `ToTensor` and
//! `Normalize` are computed eight lanes at a time with the same f32
//! divisions and subtraction as the scalar `(x / 255 - mean) / std`
//! (torchvision's `ToTensor` then `Normalize`), so every value is bit for
//! bit the lookup table's.
//!
//! The lookup walk reads one byte and writes one f32 per step, hopping
//! between 16 output rows; here each step writes 16 consecutive floats of
//! one row.

use super::geometry::View;

/// Whether [`write_plane`] can run on this CPU.
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Rows and columns of one tile.
const TILE: usize = 16;

/// The output rows of one channel that read the source: rows
/// `[first_row, first_row + rows)`, columns `[span.x0, span.x1)` of
/// `out_plane` (row length `view.out.1`), from `channel` (a column-major
/// plane: byte (row, col) at `col * col_stride + row`), each byte `x` becoming
/// `x / 255`, then `(v - mean) / std` where `normalize` is that channel's
/// `Some((mean, std))`. Returns `false`, having written nothing, where this
/// path does not apply (fewer than 16 rows or columns, or no AVX2): the
/// caller then writes the plane itself.
///
/// Tiles overlap at the right and bottom edges when the sizes are not
/// multiples of 16: the overlapping values are computed twice, identically.
pub(crate) fn write_plane(
    channel: &[u8],
    col_stride: usize,
    view: &View,
    first_row: usize,
    rows: usize,
    normalize: Option<(f32, f32)>,
    out_plane: &mut [f32],
) -> bool {
    let span = view.span();
    let n = span.x1 - span.x0;
    if rows < TILE || n < TILE || !available() {
        return false;
    }
    let ow = view.out.1;
    let Some(sy0) = view.src_row(first_row) else {
        return false;
    };
    // Every read and write below stays inside these bounds.
    let last_read = (span.src_x + n - 1) * col_stride + sy0 + rows;
    let last_write = (first_row + rows - 1) * ow + span.x1;
    assert!(
        last_read <= channel.len() && last_write <= out_plane.len(),
        "tiles::write_plane: view does not fit its buffers"
    );
    let geometry = Geometry {
        col_stride,
        src_x: span.src_x,
        x0: span.x0,
        n,
        flip: view.flip,
        ow,
        sy0,
        first_row,
        rows,
    };
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: AVX2 was detected above; `geometry` was checked against
        // both buffers by the assertion.
        unsafe { x86::write_plane(channel, &geometry, normalize, out_plane) };
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (geometry, normalize);
        false
    }
}

/// Where a plane's tiles read and write (see [`write_plane`]).
#[allow(dead_code)] // only read by the x86-64 kernel
struct Geometry {
    col_stride: usize,
    src_x: usize,
    x0: usize,
    n: usize,
    flip: bool,
    ow: usize,
    sy0: usize,
    first_row: usize,
    rows: usize,
}

/// Tile starts covering `[0, len)` (len >= TILE): every TILE, the last one
/// moved back so that it ends at `len`.
fn starts(len: usize) -> impl Iterator<Item = usize> {
    (0..len.div_ceil(TILE)).map(move |t| (t * TILE).min(len - TILE))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{starts, Geometry, TILE};
    use std::arch::x86_64::*;

    /// Transposes 16 columns of 16 bytes into 16 rows of 16 bytes (four
    /// rounds of interleaving: bytes, pairs, quads, halves).
    #[target_feature(enable = "avx2")]
    fn transpose(c: [__m128i; TILE]) -> [__m128i; TILE] {
        let mut a = [_mm_setzero_si128(); TILE];
        let mut b = [_mm_setzero_si128(); TILE];
        // After round 1, a[2i] holds rows 0-7 of columns 2i, 2i+1 (byte
        // pairs), a[2i+1] rows 8-15.
        for i in 0..8 {
            a[2 * i] = _mm_unpacklo_epi8(c[2 * i], c[2 * i + 1]);
            a[2 * i + 1] = _mm_unpackhi_epi8(c[2 * i], c[2 * i + 1]);
        }
        // Round 2: groups of 4 columns, 4 rows per register.
        for g in 0..4 {
            for h in 0..2 {
                let (p, q) = (a[4 * g + h], a[4 * g + 2 + h]);
                b[4 * g + 2 * h] = _mm_unpacklo_epi16(p, q);
                b[4 * g + 2 * h + 1] = _mm_unpackhi_epi16(p, q);
            }
        }
        // b[4g + r] holds rows 4r..4r+3 of columns 4g..4g+3.
        // Round 3: groups of 8 columns, 2 rows per register.
        for g in 0..2 {
            for r in 0..4 {
                let (p, q) = (b[8 * g + r], b[8 * g + 4 + r]);
                a[8 * g + 2 * r] = _mm_unpacklo_epi32(p, q);
                a[8 * g + 2 * r + 1] = _mm_unpackhi_epi32(p, q);
            }
        }
        // a[8g + s] holds rows 2s, 2s+1 of columns 8g..8g+7.
        // Round 4: all 16 columns, one row per register.
        let mut rows = [_mm_setzero_si128(); TILE];
        for s in 0..8 {
            rows[2 * s] = _mm_unpacklo_epi64(a[s], a[8 + s]);
            rows[2 * s + 1] = _mm_unpackhi_epi64(a[s], a[8 + s]);
        }
        rows
    }

    /// # Safety
    /// AVX2 must be available, and `g` must fit `channel` and `out` (see
    /// the assertion in `write_plane`).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn write_plane(
        channel: &[u8],
        g: &Geometry,
        normalize: Option<(f32, f32)>,
        out: &mut [f32],
    ) {
        let by = _mm256_set1_ps(255.0);
        let (mean, std) = normalize.unwrap_or((0.0, 1.0));
        let (m, s) = (_mm256_set1_ps(mean), _mm256_set1_ps(std));
        let convert = |bytes: __m128i| {
            let v = _mm256_div_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)), by);
            match normalize {
                Some(_) => _mm256_div_ps(_mm256_sub_ps(v, m), s),
                None => v,
            }
        };
        let src = channel.as_ptr();
        let dst = out.as_mut_ptr();
        for dy in starts(g.rows) {
            let sy = g.sy0 + dy;
            let y = g.first_row + dy;
            for k0 in starts(g.n) {
                let columns = std::array::from_fn(|i| {
                    let k = k0 + i;
                    let sx = if g.flip {
                        g.src_x + g.n - 1 - k
                    } else {
                        g.src_x + k
                    };
                    // SAFETY: sx <= src_x + n - 1 and sy + 16 <= sy0 + rows,
                    // so the 16 bytes end within the checked bound.
                    unsafe { _mm_loadu_si128(src.add(sx * g.col_stride + sy).cast()) }
                });
                for (j, row) in transpose(columns).into_iter().enumerate() {
                    let at = (y + j) * g.ow + g.x0 + k0;
                    // SAFETY: y + j < first_row + rows and x0 + k0 + 16 <= x1.
                    unsafe {
                        _mm256_storeu_ps(dst.add(at), convert(row));
                        _mm256_storeu_ps(dst.add(at + 8), convert(_mm_srli_si128(row, 8)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_starts_cover_the_range_and_end_at_its_end() {
        assert_eq!(starts(16).collect::<Vec<_>>(), [0]);
        assert_eq!(starts(17).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(starts(40).collect::<Vec<_>>(), [0, 16, 24]);
        assert_eq!(starts(96).collect::<Vec<_>>(), [0, 16, 32, 48, 64, 80]);
    }
}
