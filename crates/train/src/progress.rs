//! Progress bars and per-epoch lines, or nothing in quiet mode.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where the loop reports what it is doing: indicatif bars on stderr, or
/// nothing at all when quiet.
pub(crate) struct Progress {
    multi: Option<MultiProgress>,
}

/// One bar over the images of a pass (an epoch, an evaluation, a feature cache).
pub(crate) struct PassBar {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub(crate) fn new(quiet: bool) -> Progress {
        Progress {
            multi: (!quiet).then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// Prints a line above the bars (nothing when quiet).
    pub(crate) fn println(&self, line: &str) {
        if let Some(multi) = &self.multi {
            // Printing fails only when stderr is gone; then there is nobody to tell.
            if multi.println(line).is_err() {
                eprintln!("{line}");
            }
        }
    }

    /// A bar over `steps` training batches of epoch `epoch` (zero-based).
    pub(crate) fn batches(&self, epoch: usize, epochs: usize, steps: usize) -> PassBar {
        self.bar(
            format!("epoch {}/{epochs}", epoch + 1),
            steps as u64,
            "batches",
        )
    }

    /// A bar over `images` images of a pass that is not training.
    pub(crate) fn images(&self, what: &str, images: usize) -> PassBar {
        self.bar(what.to_string(), images as u64, "images")
    }

    fn bar(&self, prefix: String, len: u64, unit: &'static str) -> PassBar {
        let Some(multi) = &self.multi else {
            return PassBar { bar: None };
        };
        let template = format!(
            "{{prefix:>12}} [{{bar:30}}] {{pos}}/{{len}} {unit}  {{msg}}  {{elapsed_precise}} (eta {{eta}})"
        );
        let style = ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = multi.add(ProgressBar::new(len).with_style(style).with_prefix(prefix));
        PassBar { bar: Some(bar) }
    }
}

impl PassBar {
    /// Advances to `pos` batches/images; `images` processed so far and the
    /// time spent waiting for data give the rate shown.
    pub(crate) fn update(&self, pos: usize, images: usize, wait: Duration) {
        if let Some(bar) = &self.bar {
            bar.set_position(pos as u64);
            let secs = bar.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "{:.0} img/s, waiting for data {:.1} s",
                images as f64 / secs,
                wait.as_secs_f64()
            ));
        }
    }

    /// Removes the bar.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
