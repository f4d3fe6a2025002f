//! [`Pipeline`]'s text form: `Pipeline::parse` and `Display`, e.g.
//! `resize:224,crop:224:4,flip:0.5,normalize:imagenet`.

use std::fmt;

use super::{Normalize, Pipeline, RandomCrop, RandomHorizontalFlip, Resize, Step};
use crate::DataError;

impl Pipeline {
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
                ("normalize", []) => normalize = Some(Normalize::stl10()),
                ("normalize", [name]) if Normalize::named(name).is_some() => {
                    normalize = Normalize::named(name)
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

impl Pipeline {
    /// The pipeline in torchvision's words, e.g. `RandomCrop(96, padding 4),
    /// RandomHorizontalFlip(0.5), ToTensor, Normalize(stl10)`, for people;
    /// `Display` gives the parseable form.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .steps()
            .iter()
            .map(|step| match step {
                Step::Resize(r) => format!("Resize({})", side(r.size)),
                Step::Crop(c) => format!("RandomCrop({}, padding {})", side(c.size), c.padding),
                Step::Flip(f) => format!("RandomHorizontalFlip({})", f.p),
            })
            .collect();
        parts.push("ToTensor".into());
        if let Some(n) = self.normalize() {
            parts.push(match n.name() {
                Some(name) => format!("Normalize({name})"),
                None => format!("Normalize(mean {:?}, std {:?})", n.mean, n.std),
            });
        }
        parts.join(", ")
    }
}

/// `96` for a square size, `96x128` otherwise.
fn side((h, w): (usize, usize)) -> String {
    if h == w {
        h.to_string()
    } else {
        format!("{h}x{w}")
    }
}

impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self
            .steps()
            .iter()
            .map(|step| match step {
                Step::Resize(r) => format!("resize:{}", side(r.size)),
                Step::Crop(c) => format!("crop:{}:{}", side(c.size), c.padding),
                Step::Flip(fl) => format!("flip:{}", fl.p),
            })
            .collect();
        parts.push("totensor".to_string());
        if let Some(n) = self.normalize() {
            let triple = |v: [f32; 3]| format!("{}/{}/{}", v[0], v[1], v[2]);
            parts.push(format!("normalize:{}:{}", triple(n.mean), triple(n.std)));
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn training_and_evaluation_follow_the_recipe_and_describe_themselves() {
        let train = Pipeline::training((96, 96), 96, Normalize::stl10(), true);
        assert_eq!(
            train,
            Pipeline::parse("crop:96:4,flip:0.5,normalize:stl10").unwrap()
        );
        assert_eq!(
            train.describe(),
            "RandomCrop(96, padding 4), RandomHorizontalFlip(0.5), ToTensor, Normalize(stl10)"
        );
        assert!(!Pipeline::training((96, 96), 96, Normalize::stl10(), false).is_random());
        let eval = Pipeline::evaluation((96, 96), 224, Normalize::imagenet());
        assert_eq!(
            eval,
            Pipeline::parse("resize:224,normalize:imagenet").unwrap()
        );
        assert_eq!(
            eval.describe(),
            "Resize(224), ToTensor, Normalize(imagenet)"
        );
        assert_eq!(
            Pipeline::evaluation((96, 96), 96, Normalize::stl10()),
            Pipeline::parse("normalize:stl10").unwrap()
        );
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
}
