//! A 5x7 bitmap font for plot labels.
//!
//! plotters needs a system font (`ttf`, via fontconfig/freetype) or a font
//! file (`ab_glyph`) to draw text, and panics without one. CI machines have no
//! fontconfig, so the few labels a training plot needs are drawn from this
//! table instead: digits, capitals (lower case is shown as capitals) and some
//! punctuation.

/// Glyph width in font pixels (plus one pixel of spacing when drawn).
pub const GLYPH_W: i32 = 5;
/// Glyph height in font pixels.
pub const GLYPH_H: i32 = 7;

/// The rows of `c`'s glyph, top first, bit 4 the leftmost pixel; unknown
/// characters show as `?`.
pub fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        ' ' => [0, 0, 0, 0, 0, 0, 0],
        '0' => rows("01110 10001 10011 10101 11001 10001 01110"),
        '1' => rows("00100 01100 00100 00100 00100 00100 01110"),
        '2' => rows("01110 10001 00001 00010 00100 01000 11111"),
        '3' => rows("11111 00010 00100 00010 00001 10001 01110"),
        '4' => rows("00010 00110 01010 10010 11111 00010 00010"),
        '5' => rows("11111 10000 11110 00001 00001 10001 01110"),
        '6' => rows("00110 01000 10000 11110 10001 10001 01110"),
        '7' => rows("11111 00001 00010 00100 01000 01000 01000"),
        '8' => rows("01110 10001 10001 01110 10001 10001 01110"),
        '9' => rows("01110 10001 10001 01111 00001 00010 01100"),
        'A' => rows("01110 10001 10001 11111 10001 10001 10001"),
        'B' => rows("11110 10001 10001 11110 10001 10001 11110"),
        'C' => rows("01110 10001 10000 10000 10000 10001 01110"),
        'D' => rows("11100 10010 10001 10001 10001 10010 11100"),
        'E' => rows("11111 10000 10000 11110 10000 10000 11111"),
        'F' => rows("11111 10000 10000 11110 10000 10000 10000"),
        'G' => rows("01110 10001 10000 10111 10001 10001 01111"),
        'H' => rows("10001 10001 10001 11111 10001 10001 10001"),
        'I' => rows("01110 00100 00100 00100 00100 00100 01110"),
        'J' => rows("00111 00010 00010 00010 00010 10010 01100"),
        'K' => rows("10001 10010 10100 11000 10100 10010 10001"),
        'L' => rows("10000 10000 10000 10000 10000 10000 11111"),
        'M' => rows("10001 11011 10101 10101 10001 10001 10001"),
        'N' => rows("10001 10001 11001 10101 10011 10001 10001"),
        'O' => rows("01110 10001 10001 10001 10001 10001 01110"),
        'P' => rows("11110 10001 10001 11110 10000 10000 10000"),
        'Q' => rows("01110 10001 10001 10001 10101 10010 01101"),
        'R' => rows("11110 10001 10001 11110 10100 10010 10001"),
        'S' => rows("01111 10000 10000 01110 00001 00001 11110"),
        'T' => rows("11111 00100 00100 00100 00100 00100 00100"),
        'U' => rows("10001 10001 10001 10001 10001 10001 01110"),
        'V' => rows("10001 10001 10001 10001 10001 01010 00100"),
        'W' => rows("10001 10001 10001 10101 10101 10101 01010"),
        'X' => rows("10001 10001 01010 00100 01010 10001 10001"),
        'Y' => rows("10001 10001 10001 01010 00100 00100 00100"),
        'Z' => rows("11111 00001 00010 00100 01000 10000 11111"),
        '.' => rows("00000 00000 00000 00000 00000 01100 01100"),
        ',' => rows("00000 00000 00000 00000 01100 00100 01000"),
        '-' => rows("00000 00000 00000 11111 00000 00000 00000"),
        ':' => rows("00000 01100 01100 00000 01100 01100 00000"),
        '%' => rows("11000 11001 00010 00100 01000 10011 00011"),
        '/' => rows("00000 00001 00010 00100 01000 10000 00000"),
        '(' => rows("00010 00100 01000 01000 01000 00100 00010"),
        ')' => rows("01000 00100 00010 00010 00010 00100 01000"),
        '_' => rows("00000 00000 00000 00000 00000 00000 11111"),
        '=' => rows("00000 00000 11111 00000 11111 00000 00000"),
        '+' => rows("00000 00100 00100 11111 00100 00100 00000"),
        _ => rows("01110 10001 00001 00010 00100 00000 00100"),
    }
}

/// Parses seven space-separated rows of `0`/`1`.
fn rows(spec: &str) -> [u8; 7] {
    let mut out = [0u8; 7];
    for (row, bits) in out.iter_mut().zip(spec.split(' ')) {
        *row = bits
            .bytes()
            .fold(0, |acc, b| (acc << 1) | (b == b'1') as u8);
    }
    out
}

/// Width in pixels of `text` drawn at `scale`.
pub fn text_width(text: &str, scale: i32) -> i32 {
    let n = text.chars().count() as i32;
    if n == 0 {
        0
    } else {
        (n * (GLYPH_W + 1) - 1) * scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyphs_parse_and_fit_five_columns() {
        assert_eq!(glyph('1')[0], 0b00100);
        assert_eq!(glyph('a'), glyph('A'));
        for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.,-:%/()_=+?".chars() {
            assert!(glyph(c).iter().all(|&r| r < 32), "{c}");
        }
        assert_eq!(text_width("AB", 2), 22);
    }
}
