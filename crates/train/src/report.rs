//! What an evaluation looks like as text: the report `finetune eval`
//! prints and the predictions file it writes.

use std::fmt::Write as _;

use finetune_data::Label;

use crate::{ClassScores, ConfusionMatrix, Metrics};

/// The evaluation report `finetune eval` prints: top-1 and top-5
/// accuracy, the loss, each class's recall (its accuracy), precision, F1 and
/// support with their macro and weighted averages (scikit-learn's
/// `classification_report`, 4 digits), and the confusion matrix, with the
/// classes numbered and named.
pub fn report(metrics: &Metrics, class_names: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "top-1 accuracy  {:6.2}%", 100.0 * metrics.top1);
    let _ = writeln!(out, "top-5 accuracy  {:6.2}%", 100.0 * metrics.top5);
    let _ = writeln!(out, "loss            {:.4}", metrics.loss);
    let name_width = class_names
        .iter()
        .map(|n| n.len())
        .max()
        .unwrap_or(0)
        .max(5);
    let _ = writeln!(
        out,
        "\nper-class accuracy (recall), precision and F1, as scikit-learn's classification_report:"
    );
    // Room for the average rows' labels too.
    let name_width = name_width.max("weighted avg".len() - 3);
    let label = |text: &str| format!("{text:<width$}", width = name_width + 3);
    let _ = writeln!(
        out,
        "  {:>2} {:<name_width$}  {:>9} {:>9} {:>9} {:>9}",
        "", "class", "precision", "recall", "f1-score", "support"
    );
    let row = |out: &mut String, label: &str, s: &ClassScores| {
        let _ = writeln!(
            out,
            "  {label}  {:>9.4} {:>9.4} {:>9.4} {:>9}",
            s.precision, s.recall, s.f1, s.support
        );
    };
    for (c, (name, scores)) in class_names
        .iter()
        .zip(metrics.confusion.class_scores())
        .enumerate()
    {
        row(&mut out, &format!("{c:>2} {name:<name_width$}"), &scores);
    }
    let (macro_avg, weighted_avg) = metrics.confusion.averages();
    let _ = writeln!(
        out,
        "  {}  {:>9} {:>9} {:>9.4} {:>9}",
        label("accuracy"),
        "",
        "",
        metrics.top1,
        macro_avg.support
    );
    row(&mut out, &label("macro avg"), &macro_avg);
    row(&mut out, &label("weighted avg"), &weighted_avg);
    let _ = writeln!(
        out,
        "\nconfusion matrix (rows: true class, columns: predicted class):"
    );
    out.push_str(&confusion_table(&metrics.confusion, class_names));
    out
}

/// The confusion matrix as an aligned text table, rows and columns numbered
/// by class, rows also named.
pub fn confusion_table(matrix: &ConfusionMatrix, class_names: &[String]) -> String {
    let c = matrix.num_classes();
    let largest = (0..c)
        .flat_map(|t| matrix.row(t).iter().copied())
        .max()
        .unwrap_or(0);
    let cell = largest
        .to_string()
        .len()
        .max(c.saturating_sub(1).to_string().len())
        + 1;
    let name_width = class_names.iter().map(|n| n.len()).max().unwrap_or(0);
    let label = |t: usize| {
        let name = class_names.get(t).map(String::as_str).unwrap_or("");
        format!("{t:>2} {name:<name_width$}")
    };
    let mut out = String::new();
    let _ = write!(out, "  {:width$} |", "", width = name_width + 3);
    for p in 0..c {
        let _ = write!(out, "{p:>cell$}");
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "  {}-+{}",
        "-".repeat(name_width + 3),
        "-".repeat(cell * c)
    );
    for t in 0..c {
        let _ = write!(out, "  {} |", label(t));
        for &n in matrix.row(t) {
            let _ = write!(out, "{n:>cell$}");
        }
        out.push('\n');
    }
    out
}

/// A predictions file: `index,label,predicted,<class names...>`, then one
/// row per image (its dataset index, true label, predicted class and each
/// class's probability); `rows` are (dataset index, probabilities).
pub fn predictions_csv(
    rows: &[(usize, Vec<f32>)],
    labels: &[Label],
    class_names: &[String],
) -> String {
    let mut out = String::from("index,label,predicted");
    for name in class_names {
        out.push(',');
        out.push_str(&csv_field(name));
    }
    out.push('\n');
    for ((index, probs), label) in rows.iter().zip(labels) {
        let predicted = crate::metrics::argmax(probs);
        let _ = write!(out, "{index},{label},{predicted}");
        for p in probs {
            let _ = write!(out, ",{p:.6}");
        }
        out.push('\n');
    }
    out
}

/// One image among those the network got most wrong (fastai's
/// `plot_top_losses`): the highest cross-entropy `-ln p(true class)`.
#[derive(Debug, Clone, PartialEq)]
pub struct TopLoss {
    /// Dataset index.
    pub index: usize,
    /// True class.
    pub label: Label,
    /// Predicted class (highest probability).
    pub predicted: usize,
    /// Probability of the predicted class.
    pub probability: f32,
    /// `-ln p(true class)`.
    pub loss: f64,
}

/// The `n` images of `rows` (dataset index, probabilities) with the highest
/// loss against `labels`, highest first; ties in index order.
pub fn top_losses(rows: &[(usize, Vec<f32>)], labels: &[Label], n: usize) -> Vec<TopLoss> {
    let mut all: Vec<TopLoss> = rows
        .iter()
        .zip(labels)
        .map(|((index, probs), &label)| {
            let predicted = crate::metrics::argmax(probs);
            TopLoss {
                index: *index,
                label,
                predicted,
                probability: probs[predicted],
                loss: -f64::from(probs[label as usize]).ln(),
            }
        })
        .collect();
    all.sort_by(|a, b| b.loss.total_cmp(&a.loss).then(a.index.cmp(&b.index)));
    all.truncate(n);
    all
}

/// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_a_header_and_one_row_per_image() {
        let names = vec!["cat".to_string(), "dog, big".to_string()];
        let rows = vec![(0, vec![0.25, 0.75]), (1, vec![0.9, 0.1])];
        let csv = predictions_csv(&rows, &[1, 1], &names);
        assert_eq!(
            csv,
            "index,label,predicted,cat,\"dog, big\"\n0,1,1,0.250000,0.750000\n1,1,0,0.900000,0.100000\n"
        );
    }

    #[test]
    fn class_scores_match_values_computed_by_hand() {
        // Truth 0,0,0,1,1,2 predicted 0,1,0,1,2,2:
        //   class 0: tp 2, predicted 2, support 3 -> P 1, R 2/3, F1 0.8
        //   class 1: tp 1, predicted 2, support 2 -> P 1/2, R 1/2, F1 1/2
        //   class 2: tp 1, predicted 2, support 1 -> P 1/2, R 1, F1 2/3
        // sklearn.metrics.classification_report gives the same to 4 digits.
        let mut metrics = crate::MetricsAccumulator::new(3);
        let logits = [
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 1.0],
            [0.0, 0.0, 1.0],
        ]
        .concat();
        metrics.update(&logits, &[0, 0, 0, 1, 1, 2], 0.1).unwrap();
        let m = metrics.finish();
        let s = m.confusion.class_scores();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        let want = [
            (1.0, 2.0 / 3.0, 0.8, 3),
            (0.5, 0.5, 0.5, 2),
            (0.5, 1.0, 2.0 / 3.0, 1),
        ];
        for (got, (p, r, f, n)) in s.iter().zip(want) {
            assert!(
                close(got.precision, p) && close(got.recall, r) && close(got.f1, f),
                "{got:?}"
            );
            assert_eq!(got.support, n);
        }
        let (macro_avg, weighted) = m.confusion.averages();
        assert!(
            close(macro_avg.precision, 2.0 / 3.0)
                && close(macro_avg.f1, (0.8 + 0.5 + 2.0 / 3.0) / 3.0)
        );
        assert!(close(weighted.recall, (2.0 + 1.0 + 1.0) / 6.0));
        assert!(close(
            weighted.f1,
            (0.8 * 3.0 + 0.5 * 2.0 + 2.0 / 3.0) / 6.0
        ));
        let names = ["cat", "dog", "emu"].map(String::from);
        let text = report(&m, &names);
        let rows: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        let has = |row: &[&str]| rows.iter().any(|r| r == row);
        assert!(
            has(&["0", "cat", "1.0000", "0.6667", "0.8000", "3"]),
            "{text}"
        );
        assert!(has(&["accuracy", "0.6667", "6"]), "{text}");
        assert!(
            has(&["macro", "avg", "0.6667", "0.7222", "0.6556", "6"]),
            "{text}"
        );
        assert!(
            has(&["weighted", "avg", "0.7500", "0.6667", "0.6778", "6"]),
            "{text}"
        );
        // The columns line up: every score row ends at the same column.
        let ends: Vec<usize> = text
            .lines()
            .filter(|l| l.contains(".") && !l.contains('%') && !l.contains("loss"))
            .map(str::len)
            .collect();
        assert!(ends.windows(2).all(|w| w[0] == w[1]), "{text}");
    }

    #[test]
    fn top_losses_are_the_most_confident_mistakes_first() {
        let rows = vec![
            (10, vec![0.9, 0.1]),   // right, loss 0.105
            (11, vec![0.2, 0.8]),   // wrong, loss 1.609
            (12, vec![0.4, 0.6]),   // wrong, loss 0.916
            (13, vec![0.05, 0.95]), // right (label 1), loss 0.051
        ];
        let top = top_losses(&rows, &[0, 0, 0, 1], 2);
        assert_eq!(top.iter().map(|t| t.index).collect::<Vec<_>>(), [11, 12]);
        assert_eq!(
            (top[0].label, top[0].predicted, top[0].probability),
            (0, 1, 0.8)
        );
        assert!((top[0].loss - 5f64.ln()).abs() < 1e-6);
    }

    #[test]
    fn confusion_table_aligns_counts() {
        let mut metrics = crate::MetricsAccumulator::new(2);
        metrics
            .update(&[2.0, 0.0, 0.0, 3.0, 1.0, 0.0], &[0, 1, 1], 0.5)
            .unwrap();
        let m = metrics.finish();
        let table = confusion_table(&m.confusion, &["cat".into(), "dog".into()]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "         | 0 1");
        assert_eq!(lines[2], "   0 cat | 1 0");
        assert_eq!(lines[3], "   1 dog | 1 1");
    }
}
