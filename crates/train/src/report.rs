//! What an evaluation looks like as text: the report `finetune eval`
//! prints and the predictions file it writes.

use std::fmt::Write as _;

use finetune_data::Label;

use crate::{ConfusionMatrix, Metrics};

/// The evaluation report `finetune eval` prints: top-1 and top-5
/// accuracy, the loss, each class's accuracy and the confusion matrix, with
/// the classes numbered and named.
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
    let _ = writeln!(out, "\nper-class accuracy:");
    for (c, name) in class_names.iter().enumerate() {
        let n: u64 = metrics.confusion.row(c).iter().sum();
        let accuracy = match metrics.per_class.get(c).copied().flatten() {
            Some(a) => format!("{:6.2}%", 100.0 * a),
            None => "     -".to_string(),
        };
        let _ = writeln!(
            out,
            "  {c:>2} {name:<name_width$}  {accuracy}  ({n} images)"
        );
    }
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
