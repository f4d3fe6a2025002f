//! torchvision's transforms on u8 RGB images, and [`Pipeline`], which chains
//! them and writes the normalised CHW f32 result straight into a batch buffer.
//!
//! Each transform also has a standalone, deterministic form
//! ([`RandomCrop::apply_at`], [`RandomHorizontalFlip::apply_with`],
//! [`Resize::apply`], [`ToTensor::apply`], [`Normalize::apply`]) that golden
//! tests compare with torchvision.

mod crop;
mod flip;
mod geometry;
mod resize;
mod tensor;

use std::cell::RefCell;
use std::fmt;

use rand::Rng;

pub use crop::RandomCrop;
pub use flip::RandomHorizontalFlip;
pub use resize::Resize;
pub use tensor::{Normalize, ToTensor};

use crate::DataError;
use geometry::View;
use tensor::Lut;

/// STL10 per-channel mean used by the recipe (f32).
pub const STL10_MEAN: [f32; 3] = [0.446_711_03, 0.439_808_82, 0.406_645_75];
/// STL10 per-channel standard deviation used by the recipe (f32).
pub const STL10_STD: [f32; 3] = [0.260_340_8, 0.256_577_43, 0.271_267_1];
/// ImageNet mean (torchvision's pretrained-model documentation).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet standard deviation (torchvision's pretrained-model documentation).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

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

    fn is_hwc(&self) -> bool {
        self.col_stride == 3 && self.channel_stride == 1 && self.row_stride == 3 * self.width
    }

    /// Checks every addressed byte lies inside `data`.
    fn check(&self) -> Result<(), DataError> {
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
            Some(stl10_normalize()),
        )
    }

    /// The recipe's test transforms: `ToTensor`, `Normalize(STL10_MEAN, STL10_STD)`.
    pub fn recipe_test() -> Pipeline {
        Pipeline::new(Vec::new(), Some(stl10_normalize()))
    }

    /// The recipe's test transforms at side `size`: `Resize(size)` first.
    pub fn recipe_test_at(size: usize) -> Pipeline {
        Pipeline::new(
            vec![Step::Resize(Resize::new(size))],
            Some(stl10_normalize()),
        )
    }

    /// Parses a comma-separated description; steps run in the order given:
    /// `resize:S` or `resize:HxW`; `crop:S[:PAD]` or `crop:HxW[:PAD]` (PAD
    /// defaults to 0); `flip[:P]` (P defaults to 0.5); `totensor` (optional,
    /// implied); `normalize[:stl10|:imagenet|:M/M/M:S/S/S]` (last, default
    /// stl10). Example: `"crop:96:4,flip:0.5,normalize"`. The empty string is
    /// `ToTensor` alone. [`Pipeline`]'s `Display` prints this form back.
    pub fn parse(description: &str) -> Result<Pipeline, DataError> {
        let bad = |step: &str, problem: &str| DataError::BadPipeline {
            description: step.to_string(),
            problem: problem.to_string(),
        };
        let mut steps = Vec::new();
        let mut normalize = None;
        let mut tensor = false;
        for step in description
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let mut parts = step.split(':');
            let name = parts.next().unwrap_or_default();
            let args: Vec<&str> = parts.collect();
            if normalize.is_some() {
                return Err(bad(step, "expected nothing after normalize"));
            }
            if tensor && name != "normalize" {
                return Err(bad(step, "expected only normalize after totensor"));
            }
            match (name, args.as_slice()) {
                ("resize", [size]) => {
                    let size = parse_size(size).ok_or_else(|| {
                        bad(step, "expected resize:S or resize:HxW with positive sizes")
                    })?;
                    steps.push(Step::Resize(Resize { size }));
                }
                ("crop", [size, rest @ ..]) if rest.len() <= 1 => {
                    let size = parse_size(size).ok_or_else(|| {
                        bad(step, "expected crop:S[:PAD] or crop:HxW[:PAD] with positive sizes")
                    })?;
                    let padding = match rest {
                        [pad] => pad
                            .parse()
                            .map_err(|_| bad(step, "expected a whole-number padding"))?,
                        _ => 0,
                    };
                    steps.push(Step::Crop(RandomCrop { size, padding }));
                }
                ("flip", []) => steps.push(Step::Flip(RandomHorizontalFlip::default())),
                ("flip", [p]) => {
                    let p: f32 = p
                        .parse()
                        .ok()
                        .filter(|p: &f32| (0.0..=1.0).contains(p))
                        .ok_or_else(|| bad(step, "expected a probability in [0, 1]"))?;
                    steps.push(Step::Flip(RandomHorizontalFlip { p }));
                }
                ("totensor", []) => tensor = true,
                ("normalize", []) | ("normalize", ["stl10"]) => {
                    normalize = Some(stl10_normalize())
                }
                ("normalize", ["imagenet"]) => {
                    normalize = Some(Normalize {
                        mean: IMAGENET_MEAN,
                        std: IMAGENET_STD,
                    })
                }
                ("normalize", [mean, std]) => {
                    let (Some(mean), Some(std)) = (parse_triple(mean), parse_triple(std)) else {
                        return Err(bad(step, "expected normalize:M/M/M:S/S/S"));
                    };
                    if std.contains(&0.0) {
                        return Err(bad(step, "expected non-zero standard deviations"));
                    }
                    normalize = Some(Normalize { mean, std });
                }
                _ => {
                    return Err(bad(
                        step,
                        "expected resize:S, crop:S[:PAD], flip[:P], totensor or normalize[:stl10|:imagenet|:M/M/M:S/S/S]",
                    ))
                }
            }
        }
        Ok(Pipeline::new(steps, normalize))
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

fn gather_into(view: &View, src: &[u8], dst: &mut Vec<u8>) -> (usize, usize) {
    // Rare path (a crop or flip followed by more u8 steps): allocating here
    // keeps the geometry in one place.
    let image = view.gather_u8(src);
    dst.clear();
    dst.extend_from_slice(&image.data);
    view.out
}

fn stl10_normalize() -> Normalize {
    Normalize {
        mean: STL10_MEAN,
        std: STL10_STD,
    }
}

fn parse_size(s: &str) -> Option<(usize, usize)> {
    let (h, w) = match s.split_once('x') {
        Some((h, w)) => (h.parse().ok()?, w.parse().ok()?),
        None => {
            let side = s.parse().ok()?;
            (side, side)
        }
    };
    (h > 0 && w > 0).then_some((h, w))
}

fn parse_triple(s: &str) -> Option<[f32; 3]> {
    let v: Vec<f32> = s
        .split('/')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    v.try_into().ok()
}

impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = |(h, w): (usize, usize)| {
            if h == w {
                h.to_string()
            } else {
                format!("{h}x{w}")
            }
        };
        let mut parts: Vec<String> = self
            .steps
            .iter()
            .map(|step| match step {
                Step::Resize(r) => format!("resize:{}", size(r.size)),
                Step::Crop(c) => format!("crop:{}:{}", size(c.size), c.padding),
                Step::Flip(fl) => format!("flip:{}", fl.p),
            })
            .collect();
        parts.push("totensor".to_string());
        if let Some(n) = &self.normalize {
            let triple = |v: [f32; 3]| format!("{}/{}/{}", v[0], v[1], v[2]);
            parts.push(format!("normalize:{}:{}", triple(n.mean), triple(n.std)));
        }
        f.write_str(&parts.join(","))
    }
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
    fn parse_round_trips_through_display() {
        for text in [
            "",
            "crop:96:4,flip,normalize",
            "resize:224,crop:224:4,flip:0.25,normalize:imagenet",
            "resize:3x4,totensor",
        ] {
            let p = Pipeline::parse(text).unwrap();
            assert_eq!(Pipeline::parse(&p.to_string()).unwrap(), p, "{text} -> {p}");
        }
        let recipe = Pipeline::recipe_train(96);
        let parsed = Pipeline::parse("resize:96,crop:96:4,flip:0.5,normalize").unwrap();
        assert_eq!(parsed, recipe);
    }

    #[test]
    fn parse_errors_name_the_step() {
        for (text, culprit) in [
            ("crop:0:4", "crop:0:4"),
            ("flip:2", "flip:2"),
            ("normalize,flip", "flip"),
            ("blur:3", "blur:3"),
            ("normalize:1/2:1/1/1", "normalize:1/2:1/1/1"),
        ] {
            let err = Pipeline::parse(text).unwrap_err().to_string();
            assert!(err.contains(culprit), "{text}: {err}");
        }
    }

    #[test]
    fn crop_larger_than_padded_image_is_an_error() {
        let p = Pipeline::parse("crop:10:1").unwrap();
        let err = p.output_dims((7, 8)).unwrap_err().to_string();
        assert!(err.contains("7x8") && err.contains("10x10"), "{err}");
    }
}
