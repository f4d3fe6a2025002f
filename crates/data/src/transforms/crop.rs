//! `RandomCrop(size, padding)` with constant-0 padding (torchvision
//! `transforms.RandomCrop`, `padding_mode="constant"`, `fill=0`).

use rand::Rng;

use super::geometry::View;
use super::RgbImage;
use crate::DataError;

/// Pads every side with `padding` black pixels, then crops `size` = (height,
/// width) at a uniformly drawn offset (row offset and column offset drawn
/// independently, as torchvision's `RandomCrop.get_params` does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomCrop {
    /// Output (height, width).
    pub size: (usize, usize),
    /// Black border added on each side before cropping.
    pub padding: usize,
}

impl RandomCrop {
    /// A square crop of side `size` after `padding` pixels on each side.
    pub fn new(size: usize, padding: usize) -> RandomCrop {
        RandomCrop {
            size: (size, size),
            padding,
        }
    }

    /// The largest (top, left) offset into the padded image for an input of
    /// `dims`, or an error when the crop does not fit.
    pub fn max_offsets(&self, dims: (usize, usize)) -> Result<(usize, usize), DataError> {
        let padded = (dims.0 + 2 * self.padding, dims.1 + 2 * self.padding);
        if self.size.0 == 0 || self.size.1 == 0 || self.size.0 > padded.0 || self.size.1 > padded.1
        {
            return Err(DataError::TransformInput {
                transform: format!("RandomCrop(size={:?}, padding={})", self.size, self.padding),
                expected: format!(
                    "an image of at least {}x{} after padding",
                    self.size.0, self.size.1
                ),
                found_height: dims.0,
                found_width: dims.1,
            });
        }
        Ok((padded.0 - self.size.0, padded.1 - self.size.1))
    }

    /// Draws (top, left) into the padded image, each uniform over its range
    /// (torchvision: `torch.randint(0, h - th + 1)`, row first).
    pub fn sample<R: Rng + ?Sized>(
        &self,
        dims: (usize, usize),
        rng: &mut R,
    ) -> Result<(usize, usize), DataError> {
        let (max_top, max_left) = self.max_offsets(dims)?;
        let top = rng.random_range(0..=max_top);
        let left = rng.random_range(0..=max_left);
        Ok((top, left))
    }

    /// The crop at a given offset into the padded image: torchvision's
    /// `F.crop(F.pad(img, padding, fill=0), top, left, h, w)`.
    pub fn apply_at(
        &self,
        image: &RgbImage,
        top: usize,
        left: usize,
    ) -> Result<RgbImage, DataError> {
        let view = self.view(image.dims(), top, left, false)?;
        Ok(view.gather_u8(&image.data))
    }

    /// The source geometry of a crop at (top, left), optionally mirrored.
    pub(crate) fn view(
        &self,
        dims: (usize, usize),
        top: usize,
        left: usize,
        flip: bool,
    ) -> Result<View, DataError> {
        let (max_top, max_left) = self.max_offsets(dims)?;
        if top > max_top || left > max_left {
            return Err(DataError::TransformInput {
                transform: format!("RandomCrop at offset ({top}, {left})"),
                expected: format!("offsets at most ({max_top}, {max_left})"),
                found_height: dims.0,
                found_width: dims.1,
            });
        }
        let pad = self.padding as isize;
        Ok(View {
            src: dims,
            out: self.size,
            top: top as isize - pad,
            left: left as isize - pad,
            flip,
        })
    }
}
