//! Text for the plots, drawn from a font compiled into the binary: Ubuntu
//! Light (the Ubuntu Font Licence), as `epaint_default_fonts` ships it,
//! rasterised with `ab_glyph`.
//!
//! plotters' own text needs a system font (fontconfig/freetype) and panics
//! without one; CI machines have none, and a run's pictures must look the
//! same everywhere, so no system font is ever looked up.

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};

/// Pixel size of text at scale 1.
const SIZE: f32 = 14.0;

fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    FONT.get_or_init(|| {
        FontRef::try_from_slice(epaint_default_fonts::UBUNTU_LIGHT)
            .expect("the embedded Ubuntu Light is a valid font")
    })
}

fn scaled(scale: i32) -> ab_glyph::PxScaleFont<&'static FontRef<'static>> {
    font().as_scaled(PxScale::from(SIZE * scale.max(1) as f32))
}

/// Height in pixels of a line of text at `scale` (ascent to descent).
pub fn line_height(scale: i32) -> i32 {
    let f = scaled(scale);
    (f.ascent() - f.descent()).ceil() as i32
}

/// Width in pixels of `s` at `scale`.
pub fn text_width(s: &str, scale: i32) -> i32 {
    let f = scaled(scale);
    let mut width = 0.0;
    let mut previous = None;
    for ch in s.chars() {
        let id = f.glyph_id(ch);
        if let Some(p) = previous {
            width += f.kern(p, id);
        }
        width += f.h_advance(id);
        previous = Some(id);
    }
    width.ceil() as i32
}

/// Rasterises `s` at `scale` with its top-left corner at (0, 0): `put(x, y,
/// coverage)` for every pixel the text covers, coverage in (0, 1].
pub fn draw(s: &str, scale: i32, mut put: impl FnMut(i32, i32, f32)) {
    let f = scaled(scale);
    let (mut x, mut previous) = (0.0, None);
    for ch in s.chars() {
        let id = f.glyph_id(ch);
        if let Some(p) = previous {
            x += f.kern(p, id);
        }
        let glyph = id.with_scale_and_position(f.scale(), point(x, f.ascent()));
        if let Some(outline) = font().outline_glyph(glyph) {
            let bounds = outline.px_bounds();
            outline.draw(|gx, gy, coverage| {
                if coverage > 0.0 {
                    put(
                        bounds.min.x as i32 + gx as i32,
                        bounds.min.y as i32 + gy as i32,
                        coverage.min(1.0),
                    );
                }
            });
        }
        x += f.h_advance(id);
        previous = Some(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_has_lower_case_a_width_and_ink_inside_its_box() {
        assert!(text_width("Loss", 1) > text_width("L", 1));
        assert!(text_width("Loss", 2) > text_width("Loss", 1));
        // Lower case is its own glyphs now, not capitals.
        let ink = |s: &str| {
            let mut pixels = Vec::new();
            draw(s, 1, |x, y, c| pixels.push((x, y, (c * 255.0) as u8)));
            pixels
        };
        assert_ne!(ink("a"), ink("A"));
        let (w, h) = (text_width("Accuracy", 1), line_height(1));
        for (x, y, _) in ink("Accuracy") {
            assert!(
                (0..=w).contains(&x) && (0..=h).contains(&y),
                "({x}, {y}) outside {w}x{h}"
            );
        }
    }
}
