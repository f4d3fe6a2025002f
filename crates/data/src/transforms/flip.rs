//! `RandomHorizontalFlip(p)` (torchvision `transforms.RandomHorizontalFlip`).

use rand::Rng;

use super::geometry::View;
use super::RgbImage;

/// Mirrors the image left-right with probability `p`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomHorizontalFlip {
    /// Probability of flipping.
    pub p: f32,
}

impl RandomHorizontalFlip {
    /// Draws whether to flip: `uniform[0, 1) < p`, as torchvision's
    /// `torch.rand(1) < self.p`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> bool {
        rng.random::<f32>() < self.p
    }

    /// The image mirrored when `flip`, else a copy (torchvision `F.hflip`).
    pub fn apply_with(&self, image: &RgbImage, flip: bool) -> RgbImage {
        View::identity(image.dims())
            .mirrored(flip)
            .gather_u8(&image.data)
    }
}

impl Default for RandomHorizontalFlip {
    /// torchvision's default, `p = 0.5`.
    fn default() -> Self {
        RandomHorizontalFlip { p: 0.5 }
    }
}
