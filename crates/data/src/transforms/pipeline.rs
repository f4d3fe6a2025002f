//! [`Pipeline`]: u8 steps, then `ToTensor` and `Normalize`, written straight
//! into a batch buffer with the trailing crop and flip fused into the
//! conversion.

use std::cell::RefCell;

use rand::Rng;

use super::geometry::View;
use super::tensor::Lut;
use super::{ImageRef, Normalize, RandomCrop, RandomHorizontalFlip, Resize};
use crate::DataError;

/// One u8 stage of a [`Pipeline`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// Bilinear resize (Pillow arithmetic).
    Resize(Resize),
    /// Pad with zeros, then crop at a random offset.
    Crop(RandomCrop),
    /// Mirror left-right with some probability.
    Flip(RandomHorizontalFlip),
}

/// The outcome of one random step, in step order: lets a caller replay a
/// pipeline with fixed crop offsets and flips (golden tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Crop offset (top, left) into the padded image.
    Crop {
        /// Row offset.
        top: usize,
        /// Column offset.
        left: usize,
    },
    /// Whether the flip fired.
    Flip(bool),
}

/// u8 steps (resize, crop, flip, in the given order) followed by `ToTensor`
/// and an optional `Normalize`. The trailing crop and flip are fused with the
/// conversion to f32: one pass per output row, no intermediate image.
#[derive(Debug, Clone)]
pub struct Pipeline {
    steps: Vec<Step>,
    normalize: Option<Normalize>,
    lut: Lut,
    /// Index of the first step fused into the f32 writer.
    fused_from: usize,
}

impl PartialEq for Pipeline {
    fn eq(&self, other: &Self) -> bool {
        self.steps == other.steps && self.normalize == other.normalize
    }
}

impl Default for Pipeline {
    /// `ToTensor` alone.
    fn default() -> Self {
        Pipeline::new(Vec::new(), None)
    }
}

thread_local! {
    /// Per-thread scratch for unfused u8 steps, so no sample allocates.
    static SCRATCH: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

impl Pipeline {
    /// Builds a pipeline from u8 steps and an optional normalisation.
    pub fn new(steps: Vec<Step>, normalize: Option<Normalize>) -> Pipeline {
        // The f32 writer can absorb a trailing `[Crop] [Flip]`.
        let mut fused_from = steps.len();
        if fused_from > 0 && matches!(steps[fused_from - 1], Step::Flip(_)) {
            fused_from -= 1;
        }
        if fused_from > 0 && matches!(steps[fused_from - 1], Step::Crop(_)) {
            fused_from -= 1;
        }
        Pipeline {
            lut: Lut::new(normalize.as_ref()),
            steps,
            normalize,
            fused_from,
        }
    }

    /// The recipe's training transforms at side `size`: `Resize(size)` (a
    /// no-op on images already that size, e.g. STL10 at 96),
    /// `RandomCrop(size, padding=4)`, `RandomHorizontalFlip(0.5)`, `ToTensor`,
    /// `Normalize(STL10_MEAN, STL10_STD)`.
    pub fn recipe_train(size: usize) -> Pipeline {
        Pipeline::new(
            vec![
                Step::Resize(Resize::new(size)),
                Step::Crop(RandomCrop::new(size, 4)),
                Step::Flip(RandomHorizontalFlip::default()),
            ],
            Some(Normalize::stl10()),
        )
    }

    /// The recipe's test transforms: `ToTensor`, `Normalize(STL10_MEAN, STL10_STD)`.
    pub fn recipe_test() -> Pipeline {
        Pipeline::new(Vec::new(), Some(Normalize::stl10()))
    }

    /// The recipe's test transforms at side `size`: `Resize(size)` first.
    pub fn recipe_test_at(size: usize) -> Pipeline {
        Pipeline::new(
            vec![Step::Resize(Resize::new(size))],
            Some(Normalize::stl10()),
        )
    }

    /// The recipe's training transforms for images of `source` (height,
    /// width) fed to a network at side `size`: `Resize(size)` when the images
    /// have another size, then, with `augment`, `RandomCrop(size, padding=4)`
    /// and `RandomHorizontalFlip(0.5)`; then `ToTensor` and `normalize`.
    pub fn training(
        source: (usize, usize),
        size: usize,
        normalize: Normalize,
        augment: bool,
    ) -> Pipeline {
        let mut steps = resize_to(source, size);
        if augment {
            steps.push(Step::Crop(RandomCrop::new(size, 4)));
            steps.push(Step::Flip(RandomHorizontalFlip::default()));
        }
        Pipeline::new(steps, Some(normalize))
    }

    /// The evaluation transforms for the same images and network: the resize
    /// when needed, `ToTensor` and `normalize`.
    pub fn evaluation(source: (usize, usize), size: usize, normalize: Normalize) -> Pipeline {
        Pipeline::new(resize_to(source, size), Some(normalize))
    }

    /// Whether two passes over the same image can differ: any random crop
    /// (conservatively, even one with no room to move) or a flip that can fire. A deterministic pipeline lets the
    /// training loop cache what a frozen network computes from its output.
    pub fn is_random(&self) -> bool {
        self.steps.iter().any(|step| match step {
            Step::Resize(_) => false,
            Step::Crop(_) => true,
            Step::Flip(f) => f.p > 0.0,
        })
    }

    /// The u8 steps, in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The final normalisation, if any.
    pub fn normalize(&self) -> Option<&Normalize> {
        self.normalize.as_ref()
    }

    /// (height, width) of the output for an input of `dims`, or an error when
    /// a step cannot take its input (e.g. a crop larger than the padded image).
    pub fn output_dims(&self, dims: (usize, usize)) -> Result<(usize, usize), DataError> {
        let mut dims = dims;
        for step in &self.steps {
            dims = match step {
                Step::Resize(r) => r.size,
                Step::Crop(c) => {
                    c.max_offsets(dims)?;
                    c.size
                }
                Step::Flip(_) => dims,
            };
        }
        Ok(dims)
    }

    /// Transforms one HWC u8 image of `dims` into CHW f32 `out`
    /// (`3 * output height * output width` values), drawing crop offsets and
    /// flips from `rng` in step order.
    pub fn apply<R: Rng + ?Sized>(
        &self,
        image: &[u8],
        dims: (usize, usize),
        rng: &mut R,
        out: &mut [f32],
    ) -> Result<(), DataError> {
        self.run(ImageRef::hwc(image, dims), &mut RandomDraws(rng), out)
    }

    /// Like [`apply`](Pipeline::apply) for an image in any layout (e.g.
    /// STL10's column-major planes, read without copying).
    pub fn apply_ref<R: Rng + ?Sized>(
        &self,
        image: ImageRef<'_>,
        rng: &mut R,
        out: &mut [f32],
    ) -> Result<(), DataError> {
        self.run(image, &mut RandomDraws(rng), out)
    }

    /// Like [`apply`](Pipeline::apply) with the random outcomes given, one
    /// [`Choice`] per crop or flip step, in step order.
    pub fn apply_choices(
        &self,
        image: &[u8],
        dims: (usize, usize),
        choices: &[Choice],
        out: &mut [f32],
    ) -> Result<(), DataError> {
        let mut draws = FixedDraws {
            choices: choices.iter(),
        };
        self.run(ImageRef::hwc(image, dims), &mut draws, out)?;
        match draws.choices.next() {
            Some(extra) => Err(DataError::BadPipeline {
                description: self.to_string(),
                problem: format!("more choices than random steps: {extra:?} left over"),
            }),
            None => Ok(()),
        }
    }

    fn run(
        &self,
        image: ImageRef<'_>,
        draws: &mut dyn Draws,
        out: &mut [f32],
    ) -> Result<(), DataError> {
        image.check()?;
        let dims = image.dims();
        let out_dims = self.output_dims(dims)?;
        if out.len() != 3 * out_dims.0 * out_dims.1 {
            return Err(DataError::BufferSize {
                what: format!("CHW output of {}x{}", out_dims.0, out_dims.1),
                expected: 3 * out_dims.0 * out_dims.1,
                found: out.len(),
            });
        }
        // Resizes to the size the image already has are no-ops (Pillow returns
        // a copy), e.g. `recipe_train(96)` on STL10: skip straight to the
        // fused writer.
        let noop_prefix = self.steps[..self.fused_from]
            .iter()
            .all(|step| matches!(step, Step::Resize(r) if r.size == dims));
        if noop_prefix {
            let view = self.fused_view(dims, draws)?;
            self.lut.write(&image, &view, out);
            return Ok(());
        }
        // The u8 steps work on HWC; other layouts are copied once (rare:
        // only pipelines that resize or chain crops pay for it).
        let owned;
        let image: &[u8] = if image.is_hwc() {
            image.data
        } else {
            owned = image.to_hwc();
            &owned.data
        };
        SCRATCH.with(|scratch| {
            let (a, b) = &mut *scratch.borrow_mut();
            let mut dims = dims;
            // `a` holds the current image once the first unfused step ran.
            let mut in_scratch = false;
            for step in &self.steps[..self.fused_from] {
                let src: &[u8] = if in_scratch { a } else { image };
                let next = match step {
                    Step::Resize(r) => {
                        if r.size == dims {
                            continue;
                        }
                        r.apply_into(src, dims, b)?;
                        r.size
                    }
                    Step::Crop(c) => {
                        let (top, left) = draws.crop(c, dims)?;
                        gather_into(&c.view(dims, top, left, false)?, src, b)
                    }
                    Step::Flip(f) => {
                        if !draws.flip(f)? {
                            continue;
                        }
                        gather_into(&View::identity(dims).mirrored(true), src, b)
                    }
                };
                std::mem::swap(a, b);
                in_scratch = true;
                dims = next;
            }
            let src: &[u8] = if in_scratch { a } else { image };
            let view = self.fused_view(dims, draws)?;
            self.lut.write(&ImageRef::hwc(src, dims), &view, out);
            Ok(())
        })
    }

    /// The geometry of the fused trailing `[Crop] [Flip]`.
    fn fused_view(&self, dims: (usize, usize), draws: &mut dyn Draws) -> Result<View, DataError> {
        let mut view = View::identity(dims);
        for step in &self.steps[self.fused_from..] {
            view = match step {
                Step::Crop(c) => {
                    let (top, left) = draws.crop(c, dims)?;
                    c.view(dims, top, left, false)?
                }
                Step::Flip(f) => view.mirrored(draws.flip(f)?),
                Step::Resize(_) => unreachable!("resize is never fused"),
            };
        }
        Ok(view)
    }
}
/// `Resize(size)` for images of `source`, or nothing when they already have that size.
fn resize_to(source: (usize, usize), size: usize) -> Vec<Step> {
    if source == (size, size) {
        Vec::new()
    } else {
        vec![Step::Resize(Resize::new(size))]
    }
}

fn gather_into(view: &View, src: &[u8], dst: &mut Vec<u8>) -> (usize, usize) {
    // Rare path (a crop or flip followed by more u8 steps): allocating here
    // keeps the geometry in one place.
    let image = view.gather_u8(src);
    dst.clear();
    dst.extend_from_slice(&image.data);
    view.out
}
/// Where the random outcomes come from.
trait Draws {
    fn crop(
        &mut self,
        crop: &RandomCrop,
        dims: (usize, usize),
    ) -> Result<(usize, usize), DataError>;
    fn flip(&mut self, flip: &RandomHorizontalFlip) -> Result<bool, DataError>;
}

struct RandomDraws<'a, R: ?Sized>(&'a mut R);

impl<R: Rng + ?Sized> Draws for RandomDraws<'_, R> {
    fn crop(
        &mut self,
        crop: &RandomCrop,
        dims: (usize, usize),
    ) -> Result<(usize, usize), DataError> {
        crop.sample(dims, self.0)
    }
    fn flip(&mut self, flip: &RandomHorizontalFlip) -> Result<bool, DataError> {
        Ok(flip.sample(self.0))
    }
}

struct FixedDraws<'a> {
    choices: std::slice::Iter<'a, Choice>,
}

impl FixedDraws<'_> {
    fn missing(&self, wanted: &str, found: Option<&Choice>) -> DataError {
        DataError::BadPipeline {
            description: format!("{found:?}"),
            problem: format!("expected a {wanted} choice for the next random step"),
        }
    }
}

impl Draws for FixedDraws<'_> {
    fn crop(&mut self, _: &RandomCrop, _: (usize, usize)) -> Result<(usize, usize), DataError> {
        match self.choices.next() {
            Some(Choice::Crop { top, left }) => Ok((*top, *left)),
            other => Err(self.missing("crop", other)),
        }
    }
    fn flip(&mut self, _: &RandomHorizontalFlip) -> Result<bool, DataError> {
        match self.choices.next() {
            Some(Choice::Flip(flip)) => Ok(*flip),
            other => Err(self.missing("flip", other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::{RgbImage, ToTensor, STL10_MEAN, STL10_STD};
    use rand::SeedableRng;

    fn image(h: usize, w: usize, salt: usize) -> RgbImage {
        let data = (0..h * w * 3)
            .map(|k| ((k * 31 + salt * 7 + k / 5) % 256) as u8)
            .collect();
        RgbImage {
            height: h,
            width: w,
            data,
        }
    }

    /// The unfused composition of the standalone transforms.
    fn reference(p: &Pipeline, img: &RgbImage, choices: &[Choice]) -> Vec<f32> {
        let mut img = img.clone();
        let mut choices = choices.iter();
        for step in p.steps() {
            img = match step {
                Step::Resize(r) => r.apply(&img).unwrap(),
                Step::Crop(c) => match choices.next() {
                    Some(Choice::Crop { top, left }) => c.apply_at(&img, *top, *left).unwrap(),
                    other => panic!("{other:?}"),
                },
                Step::Flip(f) => match choices.next() {
                    Some(Choice::Flip(flip)) => f.apply_with(&img, *flip),
                    other => panic!("{other:?}"),
                },
            };
        }
        let mut t = ToTensor.apply(&img);
        if let Some(n) = p.normalize() {
            n.apply(&mut t).unwrap();
        }
        t
    }

    #[test]
    fn fused_path_equals_step_by_step_for_every_offset_and_flip() {
        let p = Pipeline::parse("crop:6x5:2,flip,normalize").unwrap();
        let img = image(6, 5, 1);
        for top in 0..=4 {
            for left in 0..=4 {
                for flip in [false, true] {
                    let choices = [Choice::Crop { top, left }, Choice::Flip(flip)];
                    let mut out = vec![0f32; 3 * 6 * 5];
                    p.apply_choices(&img.data, img.dims(), &choices, &mut out)
                        .unwrap();
                    assert_eq!(out, reference(&p, &img, &choices), "{choices:?}");
                }
            }
        }
    }

    #[test]
    fn unfused_steps_equal_step_by_step() {
        let p = Pipeline::parse("flip:1,crop:4:1,resize:7x9,crop:5:3,flip:0.5,normalize:imagenet")
            .unwrap();
        let img = image(5, 6, 2);
        let choices = [
            Choice::Flip(true),
            Choice::Crop { top: 2, left: 0 },
            Choice::Crop { top: 5, left: 1 },
            Choice::Flip(true),
        ];
        let dims = p.output_dims(img.dims()).unwrap();
        assert_eq!(dims, (5, 5));
        let mut out = vec![0f32; 3 * 25];
        p.apply_choices(&img.data, img.dims(), &choices, &mut out)
            .unwrap();
        assert_eq!(out, reference(&p, &img, &choices));
    }

    #[test]
    fn crop_pads_with_zero_before_normalize() {
        let img = image(3, 3, 0);
        let p = Pipeline::parse("crop:3:2,normalize").unwrap();
        let mut out = vec![0f32; 27];
        // Offset (0, 0) of the 7x7 padded image: everything but pixel (2, 2) is padding.
        p.apply_choices(
            &img.data,
            (3, 3),
            &[Choice::Crop { top: 0, left: 0 }],
            &mut out,
        )
        .unwrap();
        assert_eq!(out[0], -STL10_MEAN[0] / STL10_STD[0]);
        assert_eq!(out[9], -STL10_MEAN[1] / STL10_STD[1]);
        assert_eq!(
            out[8],
            (img.data[0] as f32 / 255.0 - STL10_MEAN[0]) / STL10_STD[0]
        );
    }

    #[test]
    fn random_draws_cover_all_offsets_and_both_flips() {
        let crop = RandomCrop::new(96, 4);
        let flip = RandomHorizontalFlip::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut seen = [[false; 9]; 2];
        let mut flips = 0;
        for _ in 0..2000 {
            let (top, left) = crop.sample((96, 96), &mut rng).unwrap();
            seen[0][top] = true;
            seen[1][left] = true;
            flips += usize::from(flip.sample(&mut rng));
        }
        assert!(seen.iter().flatten().all(|&s| s));
        assert!((800..1200).contains(&flips), "{flips}");
    }

    #[test]
    fn crop_larger_than_padded_image_is_an_error() {
        let p = Pipeline::parse("crop:10:1").unwrap();
        let err = p.output_dims((7, 8)).unwrap_err().to_string();
        assert!(err.contains("7x8") && err.contains("10x10"), "{err}");
    }
}
