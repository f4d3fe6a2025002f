//! `ToTensor` and `Normalize`, and the fused writer that applies crop, flip,
//! `ToTensor` and `Normalize` in one pass from u8 pixels to f32.

use super::geometry::View;
use super::tiles;
use super::{ImageRef, RgbImage, IMAGENET_MEAN, IMAGENET_STD, STL10_MEAN, STL10_STD};
use crate::DataError;

/// HWC u8 -> CHW f32 divided by 255 (torchvision `transforms.ToTensor`:
/// `img.permute(2, 0, 1).float().div(255)`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ToTensor;

impl ToTensor {
    /// The image as CHW f32 in [0, 1].
    pub fn apply(&self, image: &RgbImage) -> Vec<f32> {
        let mut out = vec![0f32; image.data.len()];
        let src = ImageRef::hwc(&image.data, image.dims());
        Lut::new(None).write(&src, &View::identity(image.dims()), &mut out);
        out
    }
}

/// Per-channel `(x - mean) / std` on a CHW f32 tensor (torchvision
/// `transforms.Normalize`: `tensor.sub_(mean).div_(std)`, in f32).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalize {
    /// Per-channel mean (R, G, B).
    pub mean: [f32; 3],
    /// Per-channel standard deviation (R, G, B).
    pub std: [f32; 3],
}

impl Normalize {
    /// STL10's statistics, the recipe's ([`STL10_MEAN`], [`STL10_STD`]).
    pub fn stl10() -> Normalize {
        Normalize {
            mean: STL10_MEAN,
            std: STL10_STD,
        }
    }

    /// ImageNet's statistics, those torchvision's pretrained weights expect
    /// ([`IMAGENET_MEAN`], [`IMAGENET_STD`]).
    pub fn imagenet() -> Normalize {
        Normalize {
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    /// The statistics that have a name.
    pub const NAMES: [&'static str; 2] = ["stl10", "imagenet"];

    /// The statistics called `name`, one of [`Normalize::NAMES`].
    pub fn named(name: &str) -> Option<Normalize> {
        match name {
            "stl10" => Some(Normalize::stl10()),
            "imagenet" => Some(Normalize::imagenet()),
            _ => None,
        }
    }

    /// `"stl10"` or `"imagenet"` when these are one of the named statistics.
    pub fn name(&self) -> Option<&'static str> {
        Normalize::NAMES
            .into_iter()
            .find(|name| Normalize::named(name) == Some(*self))
    }

    /// Normalises `chw` (3 equal planes) in place.
    pub fn apply(&self, chw: &mut [f32]) -> Result<(), DataError> {
        if !chw.len().is_multiple_of(3) {
            return Err(DataError::BufferSize {
                what: "Normalize input (3 channel planes)".to_string(),
                expected: chw.len() / 3 * 3,
                found: chw.len(),
            });
        }
        let plane = chw.len() / 3;
        for (c, values) in chw.chunks_exact_mut(plane.max(1)).enumerate() {
            for v in values {
                *v = (*v - self.mean[c]) / self.std[c];
            }
        }
        Ok(())
    }

    /// The image a normalised CHW tensor of `dims` shows: the inverse of
    /// this normalisation and `ToTensor`, rounded to bytes (for looking at
    /// what the network is fed).
    pub fn invert(&self, chw: &[f32], dims: (usize, usize)) -> RgbImage {
        let plane = dims.0 * dims.1;
        let mut data = vec![0u8; 3 * plane];
        for c in 0..3 {
            let (mean, std) = (self.mean[c], self.std[c]);
            for (p, &v) in chw[c * plane..(c + 1) * plane].iter().enumerate() {
                data[3 * p + c] = ((v * std + mean) * 255.0).round().clamp(0.0, 255.0) as u8;
            }
        }
        RgbImage {
            height: dims.0,
            width: dims.1,
            data,
        }
    }

    /// One channel value the way torchvision computes it from a byte.
    fn of_byte(&self, channel: usize, byte: u8) -> f32 {
        (to_unit(byte) - self.mean[channel]) / self.std[channel]
    }
}

/// `ToTensor`'s value for a byte: f32 division, as ATen's `div` does (a
/// multiplication by 1/255 would differ in the last bit for some bytes).
fn to_unit(byte: u8) -> f32 {
    f32::from(byte) / 255.0
}

/// The f32 value of every (channel, byte) pair after `ToTensor` and an optional
/// `Normalize`: a 3 KB table that turns the per-pixel arithmetic into a lookup
/// with results identical to computing it.
#[derive(Debug, Clone)]
pub(crate) struct Lut {
    table: [[f32; 256]; 3],
    /// Per-channel (mean, std) of the table's `Normalize`, for the vector
    /// path, which computes the same arithmetic.
    normalize: Option<([f32; 3], [f32; 3])>,
    /// Whether column-major sources take the vector path (`tiles.rs`).
    tiles: bool,
}

impl Lut {
    pub fn new(normalize: Option<&Normalize>) -> Lut {
        let mut table = [[0f32; 256]; 3];
        for (c, row) in table.iter_mut().enumerate() {
            for (byte, v) in row.iter_mut().enumerate() {
                let byte = byte as u8;
                *v = match normalize {
                    Some(n) => n.of_byte(c, byte),
                    None => to_unit(byte),
                };
            }
        }
        Lut {
            table,
            normalize: normalize.map(|n| (n.mean, n.std)),
            tiles: tiles::available(),
        }
    }

    /// Writes the view of `src` into CHW `out` (3 * out.0 * out.1). Padding
    /// gets the value of byte 0, as torchvision pads with 0 before `ToTensor`
    /// and `Normalize`.
    pub fn write(&self, src: &ImageRef<'_>, view: &View, out: &mut [f32]) {
        if src.row_stride == 1 {
            self.write_column_major(src, view, out);
        } else {
            self.write_row_major(src, view, out);
        }
    }

    /// Sources whose columns are contiguous (STL10's planes): walking output
    /// rows would read one byte per cache line, so this walks blocks of
    /// `BLOCK` output rows column by column instead, reading `BLOCK`
    /// consecutive bytes and writing them down the block's rows.
    fn write_column_major(&self, src: &ImageRef<'_>, view: &View, out: &mut [f32]) {
        // The block walk jumps a whole column between reads; copying the
        // image first (one sequential, prefetch-friendly pass into a buffer
        // that stays in L1/L2) keeps those jumps out of main memory.
        SOURCE_COPY.with(|copy| {
            let copy = &mut *copy.borrow_mut();
            copy.clear();
            copy.extend_from_slice(src.data);
            let local = ImageRef { data: copy, ..*src };
            self.write_column_major_cached(&local, view, out);
        });
    }

    fn write_column_major_cached(&self, src: &ImageRef<'_>, view: &View, out: &mut [f32]) {
        // 16 rows: one 16-byte read per column; measured 2-4% faster than 8
        // through the loader, 32 slower (too many rows written at once).
        const BLOCK: usize = 16;
        let (oh, ow) = view.out;
        let plane = oh * ow;
        let span = view.span();
        let n = span.x1 - span.x0;
        // Padding first: whole rows outside the source, and each row's margins.
        let mut first_row = None;
        let mut rows_with_source = 0;
        for (c, out_plane) in out.chunks_exact_mut(plane).enumerate() {
            let pad = self.table[c][0];
            for (y, row) in out_plane.chunks_exact_mut(ow).enumerate() {
                if view.src_row(y).is_some() {
                    if c == 0 {
                        first_row.get_or_insert(y);
                        rows_with_source += 1;
                    }
                    row[..span.x0].fill(pad);
                    row[span.x1..].fill(pad);
                } else {
                    row.fill(pad);
                }
            }
        }
        let Some(first_row) = first_row else { return };
        if n == 0 {
            return;
        }
        let (cs, chs) = (src.col_stride, src.channel_stride);
        for (c, out_plane) in out.chunks_exact_mut(plane).enumerate() {
            let lut = &self.table[c];
            let channel = &src.data[c * chs..];
            if self.tiles
                && tiles::write_plane(
                    channel,
                    cs,
                    view,
                    first_row,
                    rows_with_source,
                    self.normalize.map(|(mean, std)| (mean[c], std[c])),
                    out_plane,
                )
            {
                continue;
            }
            let mut y = first_row;
            while y < first_row + rows_with_source {
                let rows = BLOCK.min(first_row + rows_with_source - y);
                let sy = view.src_row(y).unwrap_or_default();
                let block = &mut out_plane[y * ow..(y + rows) * ow];
                let columns = (0..n).map(|k| {
                    let sx = if view.flip {
                        span.src_x + n - 1 - k
                    } else {
                        span.src_x + k
                    };
                    sx * cs + sy
                });
                if rows == BLOCK {
                    // Full blocks: fixed-size reads and rows let the compiler
                    // drop most bounds checks from the hot loop.
                    let mut lines = block.chunks_exact_mut(ow);
                    let mut dst: [&mut [f32]; BLOCK] = std::array::from_fn(|_| {
                        let line = lines.next().unwrap_or_default();
                        &mut line[span.x0..span.x1]
                    });
                    for (k, at) in columns.enumerate() {
                        let Some(bytes) = channel.get(at..at + BLOCK) else {
                            break;
                        };
                        for (line, &v) in dst.iter_mut().zip(bytes) {
                            line[k] = lut[usize::from(v)];
                        }
                    }
                } else {
                    for (k, at) in columns.enumerate() {
                        let x = span.x0 + k;
                        for (j, &v) in channel[at..at + rows].iter().enumerate() {
                            block[j * ow + x] = lut[usize::from(v)];
                        }
                    }
                }
                y += rows;
            }
        }
    }

    fn write_row_major(&self, src: &ImageRef<'_>, view: &View, out: &mut [f32]) {
        let (oh, ow) = view.out;
        let plane = oh * ow;
        let (r_plane, rest) = out.split_at_mut(plane);
        let (g_plane, b_plane) = rest.split_at_mut(plane);
        let [lr, lg, lb] = &self.table;
        let pad = [lr[0], lg[0], lb[0]];
        let span = view.span();
        let n = span.x1 - span.x0;
        let (cs, chs) = (src.col_stride, src.channel_stride);
        let rows = r_plane
            .chunks_exact_mut(ow)
            .zip(g_plane.chunks_exact_mut(ow))
            .zip(b_plane.chunks_exact_mut(ow));
        for (y, ((r, g), b)) in rows.enumerate() {
            let Some(sy) = view.src_row(y) else {
                r.fill(pad[0]);
                g.fill(pad[1]);
                b.fill(pad[2]);
                continue;
            };
            for (c, row) in [&mut *r, &mut *g, &mut *b].into_iter().enumerate() {
                row[..span.x0].fill(pad[c]);
                row[span.x1..].fill(pad[c]);
            }
            if n == 0 {
                continue;
            }
            // The row's source pixels, one slice per channel, each starting
            // at the span's leftmost pixel.
            let start = sy * src.row_stride + span.src_x * cs;
            let len = (n - 1) * cs + 1;
            let sr = &src.data[start..start + len];
            let sg = &src.data[start + chs..start + chs + len];
            let sb = &src.data[start + 2 * chs..start + 2 * chs + len];
            let (r, g, b) = (
                &mut r[span.x0..span.x1],
                &mut g[span.x0..span.x1],
                &mut b[span.x0..span.x1],
            );
            let pixels = r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut());
            if view.flip {
                for (k, ((r, g), b)) in pixels.enumerate() {
                    let s = (n - 1 - k) * cs;
                    *r = lr[usize::from(sr[s])];
                    *g = lg[usize::from(sg[s])];
                    *b = lb[usize::from(sb[s])];
                }
            } else {
                for (k, ((r, g), b)) in pixels.enumerate() {
                    let s = k * cs;
                    *r = lr[usize::from(sr[s])];
                    *g = lg[usize::from(sg[s])];
                    *b = lb[usize::from(sb[s])];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_equals_to_tensor_then_normalize() {
        let n = Normalize {
            mean: [0.1, 0.5, 0.9],
            std: [0.2, 0.3, 0.7],
        };
        let img = RgbImage {
            height: 1,
            width: 256,
            data: (0..=255u8).flat_map(|b| [b, 255 - b, b / 2]).collect(),
        };
        let mut two_step = ToTensor.apply(&img);
        n.apply(&mut two_step).unwrap();
        let mut fused = vec![0f32; two_step.len()];
        let src = ImageRef::hwc(&img.data, img.dims());
        Lut::new(Some(&n)).write(&src, &View::identity(img.dims()), &mut fused);
        assert_eq!(fused, two_step);
        assert_eq!(ToTensor.apply(&img)[255], 1.0);
    }

    /// A column-major 3-plane image (STL10's layout) holding every byte.
    fn column_major(h: usize, w: usize) -> Vec<u8> {
        (0..3 * h * w)
            .map(|k| ((k * 37 + k / 97) % 256) as u8)
            .collect()
    }

    #[test]
    fn vector_path_equals_the_lookup_table_bit_for_bit() {
        let normalizations = [None, Some(Normalize::stl10()), Some(Normalize::imagenet())];
        let mut vector_runs = 0;
        for ((h, w), (oh, ow)) in [
            ((96, 96), (96, 96)),
            ((40, 33), (36, 30)),
            ((17, 16), (17, 16)),
            ((20, 15), (20, 15)),
            ((12, 40), (12, 40)),
        ] {
            let data = column_major(h, w);
            let src = ImageRef {
                data: &data,
                height: h,
                width: w,
                row_stride: 1,
                col_stride: h,
                channel_stride: h * w,
            };
            for normalize in &normalizations {
                let vector = Lut::new(normalize.as_ref());
                let scalar = Lut {
                    tiles: false,
                    ..vector.clone()
                };
                for top in -5..=5 {
                    for left in -5..=5 {
                        for flip in [false, true] {
                            let view = View {
                                src: (h, w),
                                out: (oh, ow),
                                top,
                                left,
                                flip,
                            };
                            let mut want = vec![f32::NAN; 3 * oh * ow];
                            scalar.write(&src, &view, &mut want);
                            let mut got = vec![f32::NAN; 3 * oh * ow];
                            vector.write(&src, &view, &mut got);
                            let bits =
                                |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                            assert_eq!(bits(&got), bits(&want), "{view:?} {normalize:?}");
                            let span = view.span();
                            let rows = (0..oh).filter(|&y| view.src_row(y).is_some()).count();
                            if tiles::available() && rows >= 16 && span.x1 - span.x0 >= 16 {
                                vector_runs += 1;
                            }
                        }
                    }
                }
            }
        }
        // The 96x96 and 40x33 views all take the vector path where AVX2 is.
        if tiles::available() {
            assert!(vector_runs >= 2 * 3 * 121 * 2, "{vector_runs}");
        }
    }

    #[test]
    fn invert_gives_the_bytes_back() {
        let img = RgbImage {
            height: 2,
            width: 128,
            data: (0..=255u8).flat_map(|b| [b, 255 - b, b / 2]).collect(),
        };
        for n in [Normalize::stl10(), Normalize::imagenet()] {
            let mut t = ToTensor.apply(&img);
            n.apply(&mut t).unwrap();
            assert_eq!(n.invert(&t, img.dims()), img);
        }
    }
}

thread_local! {
    /// Per-thread copy of the image being written (see `write_column_major`).
    static SOURCE_COPY: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}
