//! Crop-with-padding and mirror as one index map, so that the u8 transforms
//! and the fused u8 -> normalised f32 writer share one piece of geometry.

/// Output pixel (y, x) reads source pixel (top + y, left + x'), where
/// x' = x, or out.1 - 1 - x when mirrored; sources outside the image are the
/// zero padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct View {
    /// Source (height, width).
    pub src: (usize, usize),
    /// Output (height, width).
    pub out: (usize, usize),
    /// Source row of output row 0 (negative inside the top padding).
    pub top: isize,
    /// Source column of the first unmirrored output column.
    pub left: isize,
    /// Whether the output is mirrored left-right.
    pub flip: bool,
}

/// The part of an output row that reads real pixels.
pub(crate) struct Span {
    /// Output columns [x0, x1) read the source; the rest is padding.
    pub x0: usize,
    pub x1: usize,
    /// First source column read (the leftmost of the span's source pixels).
    pub src_x: usize,
}

impl View {
    /// The whole image, unchanged.
    pub fn identity(dims: (usize, usize)) -> View {
        View {
            src: dims,
            out: dims,
            top: 0,
            left: 0,
            flip: false,
        }
    }

    /// The same view, mirrored when `flip`.
    pub fn mirrored(self, flip: bool) -> View {
        View {
            flip: self.flip ^ flip,
            ..self
        }
    }

    /// Source row of output row `y`, or `None` inside the padding.
    pub fn src_row(&self, y: usize) -> Option<usize> {
        let row = self.top + y as isize;
        (row >= 0 && (row as usize) < self.src.0).then_some(row as usize)
    }

    /// Columns of every output row that read the source (the same for all rows).
    pub fn span(&self) -> Span {
        let width = self.out.1 as isize;
        // Unmirrored output columns c read source column left + c.
        let c0 = (-self.left).clamp(0, width);
        let c1 = (self.src.1 as isize - self.left).clamp(c0, width);
        let src_x = (self.left + c0).max(0) as usize;
        let (x0, x1) = if self.flip {
            (width - c1, width - c0)
        } else {
            (c0, c1)
        };
        Span {
            x0: x0 as usize,
            x1: x1 as usize,
            src_x,
        }
    }

    /// Materialises the view of an HWC u8 image as a new image (padding 0).
    pub fn gather_u8(&self, src: &[u8]) -> super::RgbImage {
        let mut data = vec![0u8; 3 * self.out.0 * self.out.1];
        let span = self.span();
        let n = span.x1 - span.x0;
        for (y, row) in data.chunks_exact_mut(3 * self.out.1).enumerate() {
            let Some(sy) = self.src_row(y) else { continue };
            let start = (sy * self.src.1 + span.src_x) * 3;
            let pixels = src[start..start + 3 * n].chunks_exact(3);
            let dst = row[3 * span.x0..3 * span.x1].chunks_exact_mut(3);
            if self.flip {
                dst.zip(pixels.rev())
                    .for_each(|(d, s)| d.copy_from_slice(s));
            } else {
                dst.zip(pixels).for_each(|(d, s)| d.copy_from_slice(s));
            }
        }
        super::RgbImage {
            height: self.out.0,
            width: self.out.1,
            data,
        }
    }
}
