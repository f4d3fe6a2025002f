//! The two image types the transforms work on: an owned HWC image and a
//! borrowed view in any layout.

use std::path::Path;

use crate::DataError;

/// An owned HWC u8 RGB image, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `height * width * 3` bytes, R G B per pixel.
    pub data: Vec<u8>,
}

impl RgbImage {
    /// (height, width).
    pub fn dims(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    /// Decodes an image file to RGB as torchvision's `pil_loader` does
    /// (`Image.open(f).convert("RGB")`), the format told by the file's
    /// content (JPEG, PNG and WebP are built in).
    pub fn open(path: &Path) -> Result<RgbImage, DataError> {
        let unreadable = |e: String| DataError::UnreadableImage {
            path: path.to_path_buf(),
            reason: e,
        };
        let rgb = image::ImageReader::open(path)
            .map_err(|e| unreadable(e.to_string()))?
            .with_guessed_format()
            .map_err(|e| unreadable(e.to_string()))?
            .decode()
            .map_err(|e| unreadable(e.to_string()))?;
        let rgb = pil_rgb(rgb);
        let (w, h) = rgb.dimensions();
        Ok(RgbImage {
            height: h as usize,
            width: w as usize,
            data: rgb.into_raw(),
        })
    }
}

/// `image.convert("RGB")` as PIL does it, which differs from the `image`
/// crate's scaling for 16-bit files: PIL opens a 16-bit grey PNG as mode
/// `I;16` and clips it to 0..=255 when converting (30000 becomes 255), and
/// reads 16-bit colour channels by their high byte (30000 becomes 117).
fn pil_rgb(decoded: image::DynamicImage) -> image::RgbImage {
    use image::DynamicImage as D;
    let (w, h) = (decoded.width(), decoded.height());
    let from = |channels: &[u16], per_pixel: usize, to_u8: fn(u16) -> u8| {
        let mut out = Vec::with_capacity(w as usize * h as usize * 3);
        for pixel in channels.chunks_exact(per_pixel) {
            match per_pixel {
                1 | 2 => out.extend([to_u8(pixel[0]); 3]),
                _ => out.extend(pixel[..3].iter().map(|&v| to_u8(v))),
            }
        }
        image::RgbImage::from_raw(w, h, out).expect("the buffer holds w*h pixels")
    };
    let high_byte = |v: u16| (v >> 8) as u8;
    match &decoded {
        D::ImageLuma16(b) => from(b.as_raw(), 1, |v| v.min(255) as u8),
        D::ImageLumaA16(b) => from(b.as_raw(), 2, high_byte),
        D::ImageRgb16(b) => from(b.as_raw(), 3, high_byte),
        D::ImageRgba16(b) => from(b.as_raw(), 4, high_byte),
        _ => decoded.into_rgb8(),
    }
}

/// A borrowed u8 RGB image in any layout: byte (row y, column x, channel c)
/// is `data[y * row_stride + x * col_stride + c * channel_stride]`. Lets the
/// pipeline read STL10's column-major planes straight from the memory map.
#[derive(Debug, Clone, Copy)]
pub struct ImageRef<'a> {
    /// The bytes.
    pub data: &'a [u8],
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Bytes between vertically adjacent pixels.
    pub row_stride: usize,
    /// Bytes between horizontally adjacent pixels.
    pub col_stride: usize,
    /// Bytes between the channels of one pixel.
    pub channel_stride: usize,
}

impl<'a> ImageRef<'a> {
    /// A row-major HWC image (`data.len()` must be `3 * h * w`).
    pub fn hwc(data: &'a [u8], dims: (usize, usize)) -> ImageRef<'a> {
        ImageRef {
            data,
            height: dims.0,
            width: dims.1,
            row_stride: 3 * dims.1,
            col_stride: 3,
            channel_stride: 1,
        }
    }

    /// (height, width).
    pub fn dims(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    pub(super) fn is_hwc(&self) -> bool {
        self.col_stride == 3 && self.channel_stride == 1 && self.row_stride == 3 * self.width
    }

    /// Checks every addressed byte lies inside `data`.
    pub(super) fn check(&self) -> Result<(), DataError> {
        let last = if self.height == 0 || self.width == 0 {
            0
        } else {
            (self.height - 1) * self.row_stride
                + (self.width - 1) * self.col_stride
                + 2 * self.channel_stride
                + 1
        };
        if self.data.len() < last {
            return Err(DataError::BufferSize {
                what: format!("input image of {}x{}", self.height, self.width),
                expected: last,
                found: self.data.len(),
            });
        }
        Ok(())
    }

    /// The image as an owned HWC copy.
    pub fn to_hwc(&self) -> RgbImage {
        let mut data = vec![0u8; 3 * self.height * self.width];
        let (rs, cs, chs) = (self.row_stride, self.col_stride, self.channel_stride);
        for (y, row) in data.chunks_exact_mut(3 * self.width.max(1)).enumerate() {
            for (x, px) in row.chunks_exact_mut(3).enumerate() {
                let at = y * rs + x * cs;
                px[0] = self.data[at];
                px[1] = self.data[at + chs];
                px[2] = self.data[at + 2 * chs];
            }
        }
        RgbImage {
            height: self.height,
            width: self.width,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_bit_pngs_convert_as_pil_does() {
        let dir = tempfile::tempdir().unwrap();
        let gray = dir.path().join("gray16.png");
        image::ImageBuffer::<image::Luma<u16>, _>::from_raw(2, 1, vec![30000u16, 100])
            .unwrap()
            .save(&gray)
            .unwrap();
        // PIL: Image.open(f).convert("RGB") clips mode I;16 to 255.
        assert_eq!(
            RgbImage::open(&gray).unwrap().data,
            [255, 255, 255, 100, 100, 100]
        );
        let rgb = dir.path().join("rgb16.png");
        image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(1, 1, vec![30000u16, 255, 65535])
            .unwrap()
            .save(&rgb)
            .unwrap();
        // PIL reads 16-bit colour by the high byte.
        assert_eq!(RgbImage::open(&rgb).unwrap().data, [117, 0, 255]);
    }
}
