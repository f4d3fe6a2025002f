//! Bilinear `Resize` with the exact arithmetic of Pillow, which torchvision's
//! `transforms.Resize` calls on PIL images (`img.resize(size, BILINEAR)`).
//!
//! Pillow (`src/libImaging/Resample.c`) resamples separably, horizontal pass
//! first, with a triangle filter whose support widens by the scale factor when
//! shrinking (that is its antialiasing), coefficients computed in f64 then
//! rounded to 22-bit fixed point, and each pass rounding and clamping to u8.
//! Enlarging therefore equals classic half-pixel-centre bilinear, while
//! shrinking averages all covered pixels. This module repeats those steps, so
//! results equal Pillow's byte for byte (checked against fixtures in
//! `tests/golden.rs`).
//!
//! Known difference: Pillow 13 (python-pillow/Pillow#9549) runs the vertical
//! pass first when the height shrinks much more than the width; each pass
//! rounds to u8, so there some bytes can differ by 1 from this (Pillow <= 12)
//! order. Uniform scalings, such as square to square (STL10 96 -> 224), are
//! unaffected.

use super::RgbImage;
use crate::DataError;

/// Resizes to exactly `size` = (height, width) with Pillow's bilinear filter.
/// (torchvision's `Resize(int)` instead matches the shorter side; STL10 and
/// folder images here are square or resized to a fixed size, so only the
/// exact form is offered.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resize {
    /// Output (height, width).
    pub size: (usize, usize),
}

/// Pillow's `PRECISION_BITS`: 32 - 8 - 2.
const PRECISION_BITS: u32 = 22;

impl Resize {
    /// A square resize to `size` x `size`.
    pub fn new(size: usize) -> Resize {
        Resize { size: (size, size) }
    }

    /// The resized image (a copy when the size already matches, like Pillow).
    pub fn apply(&self, image: &RgbImage) -> Result<RgbImage, DataError> {
        let mut data = Vec::new();
        self.apply_into(&image.data, image.dims(), &mut data)?;
        Ok(RgbImage {
            height: self.size.0,
            width: self.size.1,
            data,
        })
    }

    /// Resizes the HWC u8 image `src` of `dims` into `out` (resized to fit).
    pub(crate) fn apply_into(
        &self,
        src: &[u8],
        dims: (usize, usize),
        out: &mut Vec<u8>,
    ) -> Result<(), DataError> {
        let (out_h, out_w) = self.size;
        if out_h == 0 || out_w == 0 || dims.0 == 0 || dims.1 == 0 {
            return Err(DataError::TransformInput {
                transform: format!("Resize(size={:?})", self.size),
                expected: "a non-empty input and output".to_string(),
                found_height: dims.0,
                found_width: dims.1,
            });
        }
        let (in_h, in_w) = dims;
        let horiz = Coefficients::new(in_w, out_w);
        let vert = Coefficients::new(in_h, out_h);
        // Like Pillow, the horizontal pass only computes the source rows the
        // vertical pass will read.
        let first_row = vert.bounds[0].0;
        let last = vert.bounds[out_h - 1];
        let rows = last.0 + last.1 - first_row;
        let mut temp = Vec::new();
        let (mid, mid_w, row_shift): (&[u8], usize, usize) = if out_w != in_w {
            temp.resize(rows * out_w * 3, 0);
            for (r, dst) in temp.chunks_exact_mut(out_w * 3).enumerate() {
                let y = first_row + r;
                let row = &src[y * in_w * 3..(y + 1) * in_w * 3];
                horizontal_row(row, &horiz, dst);
            }
            (&temp, out_w, first_row)
        } else {
            (src, in_w, 0)
        };
        out.clear();
        if out_h != in_h {
            out.resize(out_h * mid_w * 3, 0);
            for (y, dst) in out.chunks_exact_mut(mid_w * 3).enumerate() {
                let (start, len) = vert.bounds[y];
                let k = &vert.k[y * vert.ksize..y * vert.ksize + len];
                for (x, px) in dst.iter_mut().enumerate() {
                    let mut acc: i32 = 1 << (PRECISION_BITS - 1);
                    for (j, &w) in k.iter().enumerate() {
                        let row = start - row_shift + j;
                        acc += i32::from(mid[row * mid_w * 3 + x]) * w;
                    }
                    *px = clip8(acc);
                }
            }
        } else {
            out.extend_from_slice(&mid[..out_h * mid_w * 3]);
        }
        Ok(())
    }
}

/// Pillow's `clip8`: round-to-nearest was folded in by the 0.5 start value.
fn clip8(acc: i32) -> u8 {
    if acc >= (1 << PRECISION_BITS << 8) {
        255
    } else if acc <= 0 {
        0
    } else {
        (acc >> PRECISION_BITS) as u8
    }
}

fn horizontal_row(row: &[u8], c: &Coefficients, dst: &mut [u8]) {
    for (x, px) in dst.chunks_exact_mut(3).enumerate() {
        let (start, len) = c.bounds[x];
        let k = &c.k[x * c.ksize..x * c.ksize + len];
        let mut acc = [1i32 << (PRECISION_BITS - 1); 3];
        for (j, &w) in k.iter().enumerate() {
            let s = &row[(start + j) * 3..(start + j) * 3 + 3];
            acc[0] += i32::from(s[0]) * w;
            acc[1] += i32::from(s[1]) * w;
            acc[2] += i32::from(s[2]) * w;
        }
        px[0] = clip8(acc[0]);
        px[1] = clip8(acc[1]);
        px[2] = clip8(acc[2]);
    }
}

/// Per output position: the first source index, the tap count, and the taps
/// in fixed point (Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`).
struct Coefficients {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    k: Vec<i32>,
}

impl Coefficients {
    fn new(in_size: usize, out_size: usize) -> Coefficients {
        // Pillow passes the box edges as C `float`; whole sizes are exact.
        let (in0, in1) = (0.0f64, in_size as f32 as f64);
        let scale = (in1 - in0) / out_size as f64;
        let filterscale = scale.max(1.0);
        // The bilinear filter's support is 1.
        let support = filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut bounds = Vec::with_capacity(out_size);
        let mut k = vec![0i32; out_size * ksize];
        let mut weights = vec![0f64; ksize];
        for xx in 0..out_size {
            let center = in0 + (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            // C's `(int)` truncates toward zero; negatives clamp to 0 anyway.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) - xmin;
            let xmax = xmax.max(0) as usize;
            let mut ww = 0.0;
            for (x, w) in weights.iter_mut().enumerate().take(xmax) {
                let t = ((x as i64 + xmin) as f64 - center + 0.5) * ss;
                *w = triangle(t);
                ww += *w;
            }
            for (x, &w) in weights.iter().enumerate().take(xmax) {
                let w = if ww != 0.0 { w / ww } else { w };
                let fixed = w * f64::from(1u32 << PRECISION_BITS);
                k[xx * ksize + x] = if w < 0.0 {
                    (-0.5 + fixed) as i32
                } else {
                    (0.5 + fixed) as i32
                };
            }
            bounds.push((xmin as usize, xmax));
        }
        Coefficients { bounds, ksize, k }
    }
}

/// Pillow's `bilinear_filter`.
fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(h: usize, w: usize) -> RgbImage {
        let data = (0..h * w * 3).map(|k| (k * 37 % 256) as u8).collect();
        RgbImage {
            height: h,
            width: w,
            data,
        }
    }

    #[test]
    fn same_size_is_identity() {
        let img = image(7, 5);
        assert_eq!(Resize { size: (7, 5) }.apply(&img).unwrap(), img);
    }

    #[test]
    fn constant_image_stays_constant_both_ways() {
        let img = RgbImage {
            height: 9,
            width: 13,
            data: vec![200; 9 * 13 * 3],
        };
        for size in [(4, 4), (30, 17), (9, 40)] {
            let out = Resize { size }.apply(&img).unwrap();
            assert!(out.data.iter().all(|&v| v == 200), "{size:?}");
        }
    }

    #[test]
    fn doubling_interpolates_between_neighbours() {
        // A 1x2 row [0, 100] enlarged to 1x4 is [0, 25, 75, 100] in Pillow.
        let img = RgbImage {
            height: 1,
            width: 2,
            data: vec![0, 0, 0, 100, 100, 100],
        };
        let out = Resize { size: (1, 4) }.apply(&img).unwrap();
        let red: Vec<u8> = out.data.chunks(3).map(|p| p[0]).collect();
        assert_eq!(red, [0, 25, 75, 100]);
    }
}
