//! PNG pictures of a run: loss and accuracy per epoch, and the confusion matrix.
//!
//! Drawn with plotters into an RGB buffer, encoded as PNG with `image`, and
//! written through [`finetune_files::atomic::write_file_atomic`], so a viewer never
//! sees half a picture. Text uses a font compiled into the binary (see `font.rs`).

mod font;

use std::ops::Range;
use std::path::Path;

use finetune_files::atomic::write_file_atomic;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::log::EpochRecord;
use crate::metrics::ConfusionMatrix;
use crate::{Result, TrainError};

const TRAIN_COLOR: RGBColor = RGBColor(31, 119, 180);
const TEST_COLOR: RGBColor = RGBColor(214, 39, 40);
const TOP5_COLOR: RGBColor = RGBColor(44, 160, 44);
const GRID_COLOR: RGBColor = RGBColor(225, 225, 225);
const TEXT_COLOR: RGBColor = RGBColor(40, 40, 40);

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Where a chart's title (scale 2) and legend (scale 1) go, and the margin
/// above its plot area that leaves room for both.
const TITLE_Y: i32 = 4;
const LEGEND_Y: i32 = 40;
const TOP_MARGIN: i32 = 64;

/// Draws the training (and test, where evaluated) loss and accuracy per epoch.
pub fn plot_history(path: &Path, records: &[EpochRecord]) -> Result<()> {
    let (w, h) = (960u32, 400u32);
    render_png(path, (w, h), |root| {
        let (left, right) = root.split_horizontally(w / 2);
        let epochs: Vec<f64> = records.iter().map(|r| r.epoch as f64).collect();
        let train_loss: Vec<(f64, f64)> = records
            .iter()
            .map(|r| (r.epoch as f64, r.train.loss))
            .collect();
        let test = |f: fn(&crate::Metrics) -> f64| -> Vec<(f64, f64)> {
            records
                .iter()
                .filter_map(|r| r.test.as_ref().map(|t| (r.epoch as f64, f(t))))
                .collect()
        };
        let pct = |v: f64| 100.0 * v;
        let train_top1: Vec<(f64, f64)> = records
            .iter()
            .map(|r| (r.epoch as f64, pct(r.train.top1)))
            .collect();
        draw_panel(
            &left,
            "Loss",
            &epochs,
            &[
                ("train", TRAIN_COLOR, train_loss),
                ("test", TEST_COLOR, test(|t| t.loss)),
            ],
            false,
        )?;
        draw_panel(
            &right,
            "Accuracy (%)",
            &epochs,
            &[
                ("train top-1", TRAIN_COLOR, train_top1),
                ("test top-1", TEST_COLOR, test(|t| 100.0 * t.top1)),
                ("test top-5", TOP5_COLOR, test(|t| 100.0 * t.top5)),
            ],
            true,
        )
    })
}

/// Draws the learning-rate range test: the smoothed loss against the
/// learning rate on a log axis, each suggested rate a vertical line. As
/// fastai's plot, the last 5 points (the divergence, which would squash the
/// rest) are left out when there are more than 20.
pub fn plot_lr_find(path: &Path, finding: &crate::LrFinding) -> Result<()> {
    let n = finding.lrs.len();
    let shown = if n > 20 { n - 5 } else { n };
    let points: Vec<(f64, f64)> = finding
        .lrs
        .iter()
        .zip(&finding.smoothed)
        .take(shown)
        .filter(|(lr, loss)| **lr > 0.0 && loss.is_finite())
        .map(|(lr, loss)| (lr.log10(), *loss))
        .collect();
    let (w, h) = (720u32, 420u32);
    render_png(path, (w, h), |root| {
        let xs = points.iter().map(|p| p.0);
        let x_lo = xs.clone().fold(f64::INFINITY, f64::min);
        let x_hi = xs.fold(f64::NEG_INFINITY, f64::max);
        let (x_lo, x_hi) = if x_lo < x_hi {
            (x_lo, x_hi)
        } else {
            (-7.0, 1.0)
        };
        let ys = points.iter().map(|p| p.1);
        let y_lo = ys.clone().fold(f64::INFINITY, f64::min);
        let y_hi = ys.fold(f64::NEG_INFINITY, f64::max);
        let (y_lo, y_hi) = if y_lo.is_finite() {
            (y_lo, y_hi)
        } else {
            (0.0, 1.0)
        };
        let pad = if y_hi > y_lo {
            0.05 * (y_hi - y_lo)
        } else {
            0.5
        };
        let (x_range, y_range) = (x_lo..x_hi, (y_lo - pad)..(y_hi + pad));
        let mut chart = ChartBuilder::on(root)
            .margin_top(TOP_MARGIN)
            .margin_left(64)
            .margin_right(20)
            .margin_bottom(36)
            .build_cartesian_2d(x_range.clone(), y_range.clone())
            .map_err(draw_err)?;
        let px = |x: f64, y: f64| chart.backend_coord(&(x, y));
        let (ax0, ay0) = px(x_range.start, y_range.start);
        let (ax1, ay1) = px(x_range.end, y_range.end);
        let yt = ticks(&y_range);
        let ystep = if yt.len() > 1 { yt[1] - yt[0] } else { 1.0 };
        for &y in &yt {
            let (_, py) = px(x_range.start, y);
            root.draw(&PathElement::new(vec![(ax0, py), (ax1, py)], GRID_COLOR))
                .map_err(draw_err)?;
            let label = tick_label(y, ystep);
            let tx = ax0 - 6 - font::text_width(&label, 1);
            text(
                root,
                &label,
                (tx, py - font::line_height(1) / 2),
                1,
                &TEXT_COLOR,
            )?;
        }
        for decade in (x_lo.ceil() as i32)..=(x_hi.floor() as i32) {
            let (qx, _) = px(decade as f64, y_range.start);
            root.draw(&PathElement::new(vec![(qx, ay0), (qx, ay1)], GRID_COLOR))
                .map_err(draw_err)?;
            let label = format!("1e{decade}");
            let tx = qx - font::text_width(&label, 1) / 2;
            text(root, &label, (tx, ay0 + 6), 1, &TEXT_COLOR)?;
        }
        let frame = vec![(ax0, ay0), (ax1, ay0), (ax1, ay1), (ax0, ay1), (ax0, ay0)];
        root.draw(&PathElement::new(frame, TEXT_COLOR))
            .map_err(draw_err)?;
        text(
            root,
            "learning rate (log scale)",
            ((ax0 + ax1) / 2 - 75, ay0 + 20),
            1,
            &TEXT_COLOR,
        )?;
        text(
            root,
            "Learning-rate range test: smoothed loss",
            (ax0, TITLE_Y),
            2,
            &TEXT_COLOR,
        )?;
        let mut lx = ax0;
        let marks = [
            ("steepest", TEST_COLOR, finding.steepest),
            ("minimum / 10", TOP5_COLOR, finding.minimum_tenth),
        ];
        for (name, color, lr) in marks {
            let Some(lr) = lr.filter(|lr| *lr > 0.0) else {
                continue;
            };
            let (qx, _) = px(lr.log10(), y_range.start);
            root.draw(&PathElement::new(
                vec![(qx, ay0), (qx, ay1)],
                color.stroke_width(2),
            ))
            .map_err(draw_err)?;
            let label = format!("{name} {lr:.1e}");
            root.draw(&Rectangle::new(
                [(lx, LEGEND_Y + 7), (lx + 12, LEGEND_Y + 11)],
                color.filled(),
            ))
            .map_err(draw_err)?;
            text(root, &label, (lx + 16, LEGEND_Y), 1, &TEXT_COLOR)?;
            lx += 16 + font::text_width(&label, 1) + 18;
        }
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                TRAIN_COLOR.stroke_width(2),
            ))
            .map_err(draw_err)?;
        Ok(())
    })
}

/// Draws the confusion matrix (rows true class, columns predicted), each cell
/// shaded by its share of the row and labelled with its count when it fits.
pub fn plot_confusion(path: &Path, matrix: &ConfusionMatrix, class_names: &[String]) -> Result<()> {
    let c = matrix.num_classes().max(1) as i32;
    let cell = (600 / c).clamp(8, 56);
    let (left, top) = (130, 50);
    let title = "Confusion matrix: rows true class, columns predicted";
    let w = (left + c * cell + 20).max(font::text_width(title, 1) + 20);
    let h = top + c * cell + 20;
    render_png(path, (w as u32, h as u32), |root| {
        text(root, title, (10, 12), 1, &TEXT_COLOR)?;
        for t in 0..matrix.num_classes() {
            let row = matrix.row(t);
            let total: u64 = row.iter().sum();
            for (p, &n) in row.iter().enumerate() {
                let share = if total > 0 {
                    n as f64 / total as f64
                } else {
                    0.0
                };
                let x0 = left + p as i32 * cell;
                let y0 = top + t as i32 * cell;
                let shade = |full: u8| (255.0 - share * (255.0 - full as f64)).round() as u8;
                let fill = RGBColor(shade(8), shade(48), shade(107));
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell - 1, y0 + cell - 1)],
                    fill.filled(),
                ))
                .map_err(draw_err)?;
                let label = n.to_string();
                if font::text_width(&label, 1) + 4 <= cell && cell >= 12 {
                    let color = if share > 0.5 { WHITE } else { TEXT_COLOR };
                    let tx = x0 + (cell - font::text_width(&label, 1)) / 2;
                    text(
                        root,
                        &label,
                        (tx, y0 + (cell - font::line_height(1)) / 2),
                        1,
                        &color,
                    )?;
                }
            }
            if cell >= font::line_height(1) + 2 {
                let name = class_names.get(t).map(String::as_str).unwrap_or("");
                let name = fit(&format!("{t} {name}"), left - 8);
                text(
                    root,
                    &name,
                    (4, top + t as i32 * cell + (cell - font::line_height(1)) / 2),
                    1,
                    &TEXT_COLOR,
                )?;
            }
        }
        // Column headers: class indices (names would not fit above narrow cells).
        if cell >= 14 {
            for p in 0..c {
                let label = p.to_string();
                let tx = left + p * cell + (cell - font::text_width(&label, 1)) / 2;
                text(root, &label, (tx, top - 12), 1, &TEXT_COLOR)?;
            }
        }
        Ok(())
    })
}

/// One picture of an image grid: HWC u8 RGB pixels and the caption drawn under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridTile {
    /// `3 * height * width` bytes, row-major, R G B per pixel.
    pub rgb: Vec<u8>,
    /// (height, width) of `rgb`.
    pub dims: (usize, usize),
    /// Text under the picture (cut to the picture's width).
    pub caption: String,
}

/// Draws the `n` images of `dataset` with the highest loss among `rows`
/// (dataset index, probabilities) as a grid (fastai's `plot_top_losses`),
/// each captioned `predicted / actual probability`, and returns how many it
/// drew (none, and no file, when `rows` is empty).
pub fn plot_top_losses(
    path: &Path,
    dataset: &dyn finetune_data::Dataset,
    rows: &[(usize, Vec<f32>)],
    class_names: &[String],
    n: usize,
) -> Result<usize> {
    let labels: Vec<_> = rows.iter().map(|(i, _)| dataset.label(*i)).collect();
    let worst = crate::top_losses(rows, &labels, n);
    let (h, w) = dataset.image_dims();
    let name = |c: usize| class_names.get(c).cloned().unwrap_or_else(|| c.to_string());
    let mut tiles = Vec::with_capacity(worst.len());
    for t in &worst {
        let mut rgb = vec![0u8; 3 * h * w];
        dataset.read_image(t.index, &mut rgb)?;
        let caption = format!(
            "{} / {} {:.2}",
            name(t.predicted),
            name(t.label as usize),
            t.probability
        );
        tiles.push(GridTile {
            rgb,
            dims: (h, w),
            caption,
        });
    }
    if tiles.is_empty() {
        return Ok(0);
    }
    let columns = (tiles.len() as f64).sqrt().ceil() as usize;
    plot_image_grid(path, &tiles, columns)?;
    Ok(tiles.len())
}

/// Pixels a grid picture is at least drawn at: smaller images are enlarged
/// by a whole factor (nearest neighbour), so a 32x32 input is still visible.
const MIN_TILE_SIDE: usize = 64;
/// Space between tiles and around the grid.
const GRID_GAP: usize = 6;

/// Draws `tiles` in rows of `columns`, each with its caption below, and writes the PNG to `path` atomically. Tiles may
/// differ in size; each cell is as large as the largest tile.
pub fn plot_image_grid(path: &Path, tiles: &[GridTile], columns: usize) -> Result<()> {
    let bad = |message: String| TrainError::Plot {
        path: path.to_path_buf(),
        message,
    };
    if tiles.is_empty() {
        return Err(bad("no images to draw".into()));
    }
    for (i, tile) in tiles.iter().enumerate() {
        if tile.rgb.len() != 3 * tile.dims.0 * tile.dims.1 || tile.dims.0 == 0 || tile.dims.1 == 0 {
            return Err(bad(format!(
                "image {i}: {} bytes do not make a non-empty {}x{} RGB image",
                tile.rgb.len(),
                tile.dims.0,
                tile.dims.1
            )));
        }
    }
    let scale_of = |dims: (usize, usize)| MIN_TILE_SIDE.div_ceil(dims.0.min(dims.1)).max(1);
    let cell_w = tiles
        .iter()
        .map(|t| t.dims.1 * scale_of(t.dims))
        .max()
        .unwrap_or(1);
    let cell_h = tiles
        .iter()
        .map(|t| t.dims.0 * scale_of(t.dims))
        .max()
        .unwrap_or(1);
    let caption_h = font::line_height(1) as usize + 6;
    let columns = columns.clamp(1, tiles.len());
    let rows = tiles.len().div_ceil(columns);
    let width = GRID_GAP + columns * (cell_w + GRID_GAP);
    let height = GRID_GAP + rows * (cell_h + caption_h + GRID_GAP);
    let mut buf = vec![255u8; width * height * 3];
    for (i, tile) in tiles.iter().enumerate() {
        let x0 = GRID_GAP + (i % columns) * (cell_w + GRID_GAP);
        let y0 = GRID_GAP + (i / columns) * (cell_h + caption_h + GRID_GAP);
        let scale = scale_of(tile.dims);
        for y in 0..tile.dims.0 * scale {
            for x in 0..tile.dims.1 * scale {
                let src = 3 * ((y / scale) * tile.dims.1 + x / scale);
                let dst = 3 * ((y0 + y) * width + x0 + x);
                buf[dst..dst + 3].copy_from_slice(&tile.rgb[src..src + 3]);
            }
        }
        let caption = fit(&tile.caption, cell_w as i32);
        let ty = y0 + cell_h + 3;
        font::draw(&caption, 1, |x, y, coverage| {
            let (x, y) = (x0 as i32 + x, ty as i32 + y);
            if (0..width as i32).contains(&x) && (0..height as i32).contains(&y) {
                let dst = 3 * (y as usize * width + x as usize);
                for v in &mut buf[dst..dst + 3] {
                    *v = (f32::from(*v) * (1.0 - coverage) + 40.0 * coverage).round() as u8;
                }
            }
        });
    }
    let image = image::RgbImage::from_raw(width as u32, height as u32, buf)
        .ok_or_else(|| bad("pixel buffer has the wrong size".into()))?;
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| bad(e.to_string()))?;
    Ok(write_file_atomic(path, &png)?)
}

/// The longest start of `s` that fits `width` pixels at scale 1.
fn fit(s: &str, width: i32) -> String {
    let mut kept = String::new();
    for ch in s.chars() {
        kept.push(ch);
        if font::text_width(&kept, 1) > width {
            kept.pop();
            break;
        }
    }
    kept
}

/// Renders into an RGB buffer with `draw`, encodes PNG and writes it atomically.
fn render_png(path: &Path, size: (u32, u32), draw: impl FnOnce(&Area) -> Result<()>) -> Result<()> {
    let mut buf = vec![255u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        draw(&root).map_err(|e| match e {
            TrainError::Plot { message, .. } => TrainError::Plot {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        root.present().map_err(draw_err)?;
    }
    let image = image::RgbImage::from_raw(size.0, size.1, buf).ok_or_else(|| TrainError::Plot {
        path: path.to_path_buf(),
        message: "pixel buffer has the wrong size".into(),
    })?;
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| TrainError::Plot {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(write_file_atomic(path, &png)?)
}

/// A plotters error; the path is filled in by [`render_png`].
fn draw_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> TrainError {
    TrainError::Plot {
        path: Default::default(),
        message: e.to_string(),
    }
}

/// Draws `s` with its top-left corner at `pos`, at text scale `scale`.
fn text(area: &Area, s: &str, pos: (i32, i32), scale: i32, color: &RGBColor) -> Result<()> {
    let mut result = Ok(());
    font::draw(s, scale, |x, y, coverage| {
        if result.is_ok() {
            let ink = color.mix(f64::from(coverage));
            result = area
                .draw_pixel((pos.0 + x, pos.1 + y), &ink)
                .map_err(draw_err);
        }
    });
    result
}

/// Up to about six round tick values covering `range`.
fn ticks(range: &Range<f64>) -> Vec<f64> {
    let span = range.end - range.start;
    if !span.is_finite() || span <= 0.0 {
        return vec![range.start];
    }
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let first = (range.start / step).ceil() as i64;
    let last = (range.end / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A tick label with just enough decimals for the tick spacing.
fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    format!("{v:.decimals$}")
}

/// A named, coloured line of (epoch, value) points.
type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// One chart panel: title, legend, grid with tick labels, and line series.
/// The value axis spans the data (with a margin), down to 0 when `from_zero`
/// (accuracy) but not for a loss, whose changes would look flat from 0.
fn draw_panel(
    area: &Area,
    title: &str,
    epochs: &[f64],
    series: &[Series],
    from_zero: bool,
) -> Result<()> {
    let last = epochs.iter().cloned().fold(1.0, f64::max);
    let x_range = 1.0..last.max(2.0);
    let ys = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .filter(|v| v.is_finite());
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 };
    let bottom = if from_zero && lo >= 0.0 {
        0.0
    } else {
        lo - pad
    };
    let y_range = bottom..hi + pad;

    let mut chart = ChartBuilder::on(area)
        .margin_top(TOP_MARGIN)
        .margin_left(64)
        .margin_right(16)
        .margin_bottom(30)
        .build_cartesian_2d(x_range.clone(), y_range.clone())
        .map_err(draw_err)?;
    let px = |x: f64, y: f64| chart.backend_coord(&(x, y));
    let (ax0, ay0) = px(x_range.start, y_range.start);
    let (ax1, ay1) = px(x_range.end, y_range.end);
    let (ox, oy) = area.get_base_pixel();

    let yt = ticks(&y_range);
    let ystep = if yt.len() > 1 { yt[1] - yt[0] } else { 1.0 };
    for &y in &yt {
        let (_, py) = px(x_range.start, y);
        area.draw(&PathElement::new(
            vec![(ax0 - ox, py - oy), (ax1 - ox, py - oy)],
            GRID_COLOR,
        ))
        .map_err(draw_err)?;
        let label = tick_label(y, ystep);
        let tx = ax0 - ox - 6 - font::text_width(&label, 1);
        text(
            area,
            &label,
            (tx, py - oy - font::line_height(1) / 2),
            1,
            &TEXT_COLOR,
        )?;
    }
    let xt: Vec<f64> = ticks(&x_range)
        .into_iter()
        .filter(|x| x.fract() == 0.0)
        .collect();
    for &x in &xt {
        let (qx, _) = px(x, y_range.start);
        area.draw(&PathElement::new(
            vec![(qx - ox, ay0 - oy), (qx - ox, ay1 - oy)],
            GRID_COLOR,
        ))
        .map_err(draw_err)?;
        let label = tick_label(x, 1.0);
        let tx = qx - ox - font::text_width(&label, 1) / 2;
        text(area, &label, (tx, ay0 - oy + 6), 1, &TEXT_COLOR)?;
    }
    let frame = vec![
        (ax0 - ox, ay0 - oy),
        (ax1 - ox, ay0 - oy),
        (ax1 - ox, ay1 - oy),
        (ax0 - ox, ay1 - oy),
        (ax0 - ox, ay0 - oy),
    ];
    area.draw(&PathElement::new(frame, TEXT_COLOR))
        .map_err(draw_err)?;
    text(
        area,
        "epoch",
        ((ax0 + ax1) / 2 - ox - 15, ay0 - oy + 18),
        1,
        &TEXT_COLOR,
    )?;
    text(area, title, (ax0 - ox, TITLE_Y), 2, &TEXT_COLOR)?;

    let mut lx = ax0 - ox;
    for (name, color, points) in series {
        let points: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.1.is_finite()).collect();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(draw_err)?;
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(draw_err)?;
        area.draw(&Rectangle::new(
            [(lx, LEGEND_Y + 7), (lx + 12, LEGEND_Y + 11)],
            color.filled(),
        ))
        .map_err(draw_err)?;
        text(area, name, (lx + 16, LEGEND_Y), 1, &TEXT_COLOR)?;
        lx += 16 + font::text_width(name, 1) + 18;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let labels: Vec<String> = ticks(&(0.0..1.0))
            .iter()
            .map(|&v| tick_label(v, 0.2))
            .collect();
        assert_eq!(labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        assert_eq!(ticks(&(1.0..20.0)), vec![5.0, 10.0, 15.0, 20.0]);
        assert_eq!(tick_label(0.25, 0.05), "0.25");
        assert_eq!(tick_label(12.0, 5.0), "12");
    }

    #[test]
    fn image_grid_lays_out_tiles_with_captions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.png");
        let tile = |v: u8, caption: &str| GridTile {
            rgb: vec![v; 3 * 32 * 32],
            dims: (32, 32),
            caption: caption.into(),
        };
        let tiles = [
            tile(0, "0 CAT"),
            tile(100, "1 DOG"),
            tile(200, "2 A LONG NAME THAT IS CUT"),
        ];
        plot_image_grid(&path, &tiles, 2).unwrap();
        let png = image::open(&path).unwrap().into_rgb8();
        // 32x32 tiles are drawn at 64x64, two columns, two rows.
        let caption_h = font::line_height(1) as u32 + 6;
        assert_eq!(png.width(), 6 + 2 * (64 + 6));
        assert_eq!(png.height(), 6 + 2 * (64 + caption_h + 6));
        assert_eq!(png.get_pixel(6 + 70 + 10, 16).0, [100, 100, 100]);
        assert_eq!(png.get_pixel(6 + 10, 6 + 70 + caption_h + 10).0, [200; 3]);
        let bad = GridTile {
            rgb: vec![0; 5],
            dims: (2, 2),
            caption: String::new(),
        };
        assert!(plot_image_grid(&path, &[bad], 1).is_err());
    }
}
