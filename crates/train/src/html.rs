//! The run's report page: one self-contained HTML file (pictures inlined,
//! no script or style from the network) with the configuration, the
//! learning-rate schedule, the curves, the confusion matrix, the worst test
//! images and the per-class scores.

use std::fmt::Write as _;

use base64::Engine as _;

use crate::log::EpochRecord;

/// What the page shows.
pub(crate) struct Page<'a> {
    /// The run directory's name, for the title.
    pub(crate) title: &'a str,
    /// "running: epoch 3 of 20 done", "finished", ...
    pub(crate) status: &'a str,
    /// Reload every 30 s (while the run goes on).
    pub(crate) refresh: bool,
    /// The logged configuration.
    pub(crate) config: &'a serde_json::Value,
    /// Every epoch so far.
    pub(crate) history: &'a [EpochRecord],
    /// Class names, index = label.
    pub(crate) class_names: &'a [String],
    /// PNG bytes of the curves, the confusion matrix and the top-loss grid, when drawn.
    pub(crate) history_png: Option<&'a [u8]>,
    pub(crate) confusion_png: Option<&'a [u8]>,
    pub(crate) top_losses_png: Option<&'a [u8]>,
}

/// The sections every page has, by id (the browser test checks each).
pub const REPORT_SECTIONS: [&str; 6] = [
    "configuration",
    "schedule",
    "curves",
    "confusion",
    "top-losses",
    "per-class",
];

/// `s` with HTML's special characters escaped.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn image(out: &mut String, png: Option<&[u8]>, alt: &str) {
    match png {
        Some(bytes) => {
            let data = base64::engine::general_purpose::STANDARD.encode(bytes);
            let _ = writeln!(
                out,
                "<img alt=\"{alt}\" src=\"data:image/png;base64,{data}\">"
            );
        }
        None => {
            let _ = writeln!(out, "<p class=\"none\">not drawn yet</p>");
        }
    }
}

/// The learning rate per epoch as an inline SVG line on a log scale.
fn schedule_svg(history: &[EpochRecord]) -> String {
    let points: Vec<(f64, f64)> = history
        .iter()
        .filter(|r| r.lr > 0.0)
        .map(|r| (r.epoch as f64, r.lr.log10()))
        .collect();
    if points.is_empty() {
        return "<p class=\"none\">no epoch yet</p>".to_string();
    }
    let (w, h, pad) = (480.0, 160.0, 30.0);
    let (x0, x1) = (1.0, points.iter().map(|p| p.0).fold(2.0, f64::max));
    let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo - 0.5, hi + 0.5)
    };
    let sx = |x: f64| pad + (x - x0) / (x1 - x0) * (w - 2.0 * pad);
    let sy = |y: f64| h - pad - (y - lo) / (hi - lo) * (h - 2.0 * pad);
    let line: Vec<String> = points
        .iter()
        .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
        .collect();
    format!(
        "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"learning rate per epoch\">\
         <rect x=\"{pad}\" y=\"{pad}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999\"/>\
         <polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"{}\"/>\
         <text x=\"{pad}\" y=\"18\" font-size=\"12\">{:.1e}</text>\
         <text x=\"{pad}\" y=\"{}\" font-size=\"12\">{:.1e} (log scale; epoch 1 to {})</text></svg>",
        w - 2.0 * pad,
        h - 2.0 * pad,
        line.join(" "),
        10f64.powf(hi),
        h - 8.0,
        10f64.powf(lo),
        x1
    )
}

/// The page.
pub(crate) fn render(page: &Page) -> String {
    let mut out = String::new();
    let title = escape(page.title);
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">"
    );
    if page.refresh {
        let _ = writeln!(out, "<meta http-equiv=\"refresh\" content=\"30\">");
    }
    let _ = writeln!(
        out,
        "<title>{title}: finetune run</title>\n<style>\
         body{{font-family:sans-serif;margin:2em;max-width:1000px;color:#222}}\
         h1{{margin-bottom:0}} .status{{color:#555}} img{{max-width:100%}}\
         table{{border-collapse:collapse}} td,th{{padding:2px 10px;text-align:right;border-bottom:1px solid #ddd}}\
         td:first-child,th:first-child{{text-align:left}} pre{{background:#f6f6f6;padding:1em;overflow:auto}}\
         .none{{color:#888}}</style>\n</head>\n<body>"
    );
    let _ = writeln!(
        out,
        "<h1>{title}</h1>\n<p class=\"status\">{}</p>",
        escape(page.status)
    );

    let _ = writeln!(out, "<section id=\"configuration\"><h2>Configuration</h2>");
    let config = serde_json::to_string_pretty(page.config).unwrap_or_default();
    let _ = writeln!(out, "<pre>{}</pre></section>", escape(&config));

    let _ = writeln!(
        out,
        "<section id=\"schedule\"><h2>Learning-rate schedule</h2>"
    );
    let _ = writeln!(out, "{}</section>", schedule_svg(page.history));

    let _ = writeln!(out, "<section id=\"curves\"><h2>Loss and accuracy</h2>");
    image(&mut out, page.history_png, "loss and accuracy per epoch");
    let _ = writeln!(out, "<table><tr><th>epoch</th><th>lr</th><th>train loss</th><th>train top-1</th><th>test loss</th><th>test top-1</th><th>seconds</th></tr>");
    for r in page.history {
        let (test_loss, test_top1) = match &r.test {
            Some(t) => (format!("{:.4}", t.loss), format!("{:.2}%", 100.0 * t.top1)),
            None => ("-".into(), "-".into()),
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{:.2e}</td><td>{:.4}</td><td>{:.2}%</td><td>{test_loss}</td><td>{test_top1}</td><td>{:.1}</td></tr>",
            r.epoch,
            r.lr,
            r.train.loss,
            100.0 * r.train.top1,
            r.seconds
        );
    }
    let _ = writeln!(out, "</table></section>");

    let _ = writeln!(out, "<section id=\"confusion\"><h2>Confusion matrix</h2>");
    image(&mut out, page.confusion_png, "confusion matrix");
    let _ = writeln!(out, "</section>");

    let _ = writeln!(
        out,
        "<section id=\"top-losses\"><h2>The test images with the highest loss</h2>\
         <p>Each captioned predicted / actual class and the predicted class's probability.</p>"
    );
    image(
        &mut out,
        page.top_losses_png,
        "test images with the highest loss",
    );
    let _ = writeln!(out, "</section>");

    let _ = writeln!(out, "<section id=\"per-class\"><h2>Per class</h2>");
    match page.history.last() {
        Some(last) => {
            let metrics = last.test.as_ref().unwrap_or(&last.train);
            let split = if last.test.is_some() { "test" } else { "train" };
            let _ = writeln!(
                out,
                "<p>Epoch {}, {split} split (scikit-learn's classification_report).</p>\
                 <table><tr><th>class</th><th>precision</th><th>recall</th><th>f1-score</th><th>support</th></tr>",
                last.epoch
            );
            for (c, s) in metrics.confusion.class_scores().iter().enumerate() {
                let name = page.class_names.get(c).map_or(String::new(), |n| escape(n));
                let _ = writeln!(
                    out,
                    "<tr><td>{c} {name}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td></tr>",
                    s.precision, s.recall, s.f1, s.support
                );
            }
            let _ = writeln!(out, "</table>");
        }
        None => {
            let _ = writeln!(out, "<p class=\"none\">no epoch yet</p>");
        }
    }
    let _ = writeln!(out, "</section>\n</body>\n</html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_is_there_and_text_is_escaped() {
        let config = serde_json::json!({"data": "<script>x</script>"});
        let page = Page {
            title: "run & co",
            status: "finished",
            refresh: false,
            config: &config,
            history: &[],
            class_names: &[],
            history_png: Some(&[1, 2, 3]),
            confusion_png: None,
            top_losses_png: None,
        };
        let html = render(&page);
        for id in REPORT_SECTIONS {
            assert!(html.contains(&format!("<section id=\"{id}\">")), "{id}");
        }
        assert!(html.contains("run &amp; co") && !html.contains("<script>"));
        assert!(html.contains("data:image/png;base64,AQID"));
        assert!(!html.contains("http-equiv=\"refresh\""));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "nothing from the network"
        );
    }
}
