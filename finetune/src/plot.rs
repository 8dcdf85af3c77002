//! Line plots as SVG, written by hand (no dependencies): train and valid loss
//! over steps, later reward and similarity. Axes with ticks at round
//! numbers, a light grid, a legend, one colour per series.
//!
//! Points that are not finite are left out. Every series gets one
//! `<polyline>` (empty when it has no points); a series of one point also
//! gets a dot, since a one-point line draws nothing. An empty or constant
//! range is widened so nothing divides by zero.

use crate::atomic_file::write_atomic;
use srl_models::ModelError;
use std::fmt::Write as _;
use std::path::Path;

/// One named line of (x, y) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points,
        }
    }
}

/// Line colours, in order (matplotlib's tab10).
const COLORS: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 64.0;
/// About this many ticks per axis.
const TICKS: f64 = 6.0;

/// Writes the plot of `series` to `path` (atomically).
pub fn write_svg_plot(
    path: &Path,
    title: &str,
    series: &[Series],
    x_label: &str,
    y_label: &str,
) -> Result<(), ModelError> {
    write_atomic(path, svg_plot(title, series, x_label, y_label).as_bytes())
}

/// The SVG document of the plot of `series`.
pub fn svg_plot(title: &str, series: &[Series], x_label: &str, y_label: &str) -> String {
    let finite = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    };
    let x = Axis::new(finite().map(|p| p.0));
    let y = Axis::new(finite().map(|p| p.1));
    let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let px = |v: f64| LEFT + (v - x.lo) / (x.hi - x.lo) * pw;
    let py = |v: f64| TOP + ph - (v - y.lo) / (y.hi - y.lo) * ph;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="26" text-anchor="middle" font-size="16">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );

    // Grid and tick labels.
    let _ = writeln!(s, r##"<g stroke="#e0e0e0" stroke-width="1">"##);
    for v in x.ticks() {
        let _ = writeln!(
            s,
            r#"<line x1="{0:.2}" y1="{TOP}" x2="{0:.2}" y2="{1}"/>"#,
            px(v),
            TOP + ph
        );
    }
    for v in y.ticks() {
        let _ = writeln!(
            s,
            r#"<line x1="{LEFT}" y1="{0:.2}" x2="{1}" y2="{0:.2}"/>"#,
            py(v),
            LEFT + pw
        );
    }
    let _ = writeln!(s, "</g>");
    let _ = writeln!(s, r#"<g text-anchor="middle">"#);
    for v in x.ticks() {
        let _ = writeln!(
            s,
            r#"<text x="{:.2}" y="{}">{}</text>"#,
            px(v),
            TOP + ph + 18.0,
            x.label(v)
        );
    }
    let _ = writeln!(s, "</g>");
    let _ = writeln!(s, r#"<g text-anchor="end">"#);
    for v in y.ticks() {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.2}">{}</text>"#,
            LEFT - 6.0,
            py(v) + 4.0,
            y.label(v)
        );
    }
    let _ = writeln!(s, "</g>");

    // Axes and their labels.
    let _ = writeln!(
        s,
        r#"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        LEFT + pw / 2.0,
        HEIGHT - 18.0,
        escape(x_label)
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(20 {}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + ph / 2.0,
        escape(y_label)
    );

    // The lines.
    for (i, series) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, f64)> = series
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| (px(x), py(y)))
            .collect();
        let coords: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.2},{y:.2}")).collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" stroke-linejoin="round" points="{}"><title>{}</title></polyline>"#,
            coords.join(" "),
            escape(&series.name)
        );
        if let [(x, y)] = pts[..] {
            let _ = writeln!(
                s,
                r#"<circle cx="{x:.2}" cy="{y:.2}" r="3" fill="{color}"/>"#
            );
        }
    }

    // The legend, top right inside the plot.
    if !series.is_empty() {
        let longest = series
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(0);
        let (w, h) = (
            44.0 + 7.0 * longest as f64,
            8.0 + 18.0 * series.len() as f64,
        );
        let (lx, ly) = (LEFT + pw - w - 8.0, TOP + 8.0);
        let _ = writeln!(
            s,
            r##"<rect x="{lx:.2}" y="{ly:.2}" width="{w:.2}" height="{h:.2}" fill="white" fill-opacity="0.85" stroke="#999999"/>"##
        );
        for (i, series) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let yy = ly + 16.0 + 18.0 * i as f64;
            let _ = writeln!(
                s,
                r#"<line x1="{:.2}" y1="{:.2}" x2="{:.2}" y2="{:.2}" stroke="{color}" stroke-width="2"/>"#,
                lx + 8.0,
                yy - 4.0,
                lx + 30.0,
                yy - 4.0
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.2}" y="{yy:.2}">{}</text>"#,
                lx + 36.0,
                escape(&series.name)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// One axis: its range widened to round tick values, and the tick step.
#[derive(Debug, Clone, Copy)]
struct Axis {
    lo: f64,
    hi: f64,
    step: f64,
}

impl Axis {
    /// The axis over `values` (all finite); [0, 1] when there are none.
    fn new(values: impl Iterator<Item = f64>) -> Axis {
        let (mut min, mut max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        if min > max {
            (min, max) = (0.0, 1.0);
        }
        if max - min <= f64::EPSILON * max.abs().max(min.abs()) {
            // One value: a band around it.
            let pad = if min == 0.0 { 1.0 } else { min.abs() * 0.1 };
            (min, max) = (min - pad, max + pad);
        }
        let step = nice_step((max - min) / TICKS);
        Axis {
            lo: (min / step).floor() * step,
            hi: (max / step).ceil() * step,
            step,
        }
    }

    fn ticks(&self) -> impl Iterator<Item = f64> {
        let first = (self.lo / self.step).round() as i64;
        let n = ((self.hi - self.lo) / self.step).round() as i64;
        let step = self.step;
        (first..=first + n).map(move |k| k as f64 * step)
    }

    /// A tick value with as many digits as the step needs.
    fn label(&self, v: f64) -> String {
        if v == 0.0 {
            return "0".to_string();
        }
        let step_exp = self.step.log10().floor();
        if v.abs() >= 1e5 || self.step < 1e-3 {
            // One precision for the whole axis: "5.0e-5", "1.0e-4".
            let top = self.lo.abs().max(self.hi.abs());
            let digits = (top.log10().floor() - step_exp).max(0.0) as usize;
            format!("{v:.digits$e}")
        } else {
            let decimals = (-step_exp).max(0.0) as usize;
            format!("{v:.decimals$}")
        }
    }
}

/// The round number (1, 2 or 5 times a power of ten) nearest above `raw`.
fn nice_step(raw: f64) -> f64 {
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// Text safe inside an SVG element or attribute.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that every element is closed in order (a crude XML check) and
    /// returns the `points` attribute of each polyline.
    fn check_svg(svg: &str) -> Vec<String> {
        assert!(svg.starts_with("<svg "), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        for bad in ["NaN", "inf"] {
            assert!(!svg.contains(bad), "{bad} in {svg}");
        }
        let mut stack = Vec::new();
        let mut polylines = Vec::new();
        let mut rest = svg;
        while let Some(i) = rest.find('<') {
            let end = rest[i..].find('>').expect("unclosed tag") + i;
            let tag = &rest[i + 1..end];
            assert!(!tag.contains('<'), "stray '<' in {tag}");
            let name: String = tag
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '/')
                .collect();
            if let Some(closing) = tag.strip_prefix('/') {
                assert_eq!(
                    stack.pop().as_deref(),
                    Some(closing),
                    "mismatched </{closing}>"
                );
            } else if !tag.ends_with('/') {
                stack.push(name.clone());
            }
            if name == "polyline" {
                let p = tag.split("points=\"").nth(1).expect("points");
                polylines.push(p[..p.find('"').unwrap()].to_string());
            }
            rest = &rest[end + 1..];
        }
        assert!(stack.is_empty(), "unclosed {stack:?}");
        polylines
    }

    fn count_points(points: &str) -> usize {
        points.split_whitespace().count()
    }

    #[test]
    fn two_series_with_nan_skipped() {
        let train = Series::new(
            "train <loss>",
            (0..50)
                .map(|i| (i as f64, 3.0 / (1.0 + i as f64 * 0.1)))
                .collect(),
        );
        let mut valid_pts: Vec<(f64, f64)> = (0..5).map(|i| (i as f64 * 10.0, 2.0)).collect();
        valid_pts.push((60.0, f64::NAN));
        valid_pts.push((f64::INFINITY, 1.0));
        let valid = Series::new("valid", valid_pts);
        let svg = svg_plot("Loss & more", &[train, valid], "step", "loss");
        let lines = check_svg(&svg);
        assert_eq!(lines.len(), 2);
        assert_eq!(count_points(&lines[0]), 50);
        assert_eq!(count_points(&lines[1]), 5);
        assert!(svg.contains("Loss &amp; more") && svg.contains("train &lt;loss&gt;"));
        // Readable tick labels: steps 0..49 widen to 0..50 in tens.
        for label in [">0<", ">10<", ">50<", ">0.5<", ">3.0<"] {
            assert!(svg.contains(label), "{label} missing");
        }
    }

    #[test]
    fn degenerate_inputs_do_not_divide_by_zero() {
        let cases: Vec<Vec<Series>> = vec![
            vec![],
            vec![Series::new("empty", vec![])],
            vec![Series::new("one", vec![(5.0, 0.25)])],
            vec![Series::new(
                "flat",
                (0..10).map(|i| (i as f64, 1.5)).collect(),
            )],
            vec![Series::new("zeros", vec![(0.0, 0.0), (0.0, 0.0)])],
            vec![Series::new("nan", vec![(1.0, f64::NAN)])],
        ];
        for series in cases {
            let svg = svg_plot("t", &series, "x", "y");
            let lines = check_svg(&svg);
            assert_eq!(lines.len(), series.len());
            for (l, s) in lines.iter().zip(&series) {
                let finite = s
                    .points
                    .iter()
                    .filter(|p| p.0.is_finite() && p.1.is_finite())
                    .count();
                assert_eq!(count_points(l), finite);
            }
        }
        let one = svg_plot("t", &[Series::new("one", vec![(5.0, 0.25)])], "x", "y");
        assert!(one.contains("<circle"), "a single point is drawn as a dot");
    }

    #[test]
    fn tick_labels_small_and_large() {
        let small = Axis::new([1e-5, 3e-4].into_iter());
        assert!(small.ticks().all(|v| !small.label(v).contains("0000")));
        assert_eq!(small.label(1e-4), "1.0e-4");
        assert_eq!(small.label(5e-5), "5.0e-5");
        let large = Axis::new([0.0, 2.5e6].into_iter());
        assert_eq!(large.label(1e6), "1.0e6");
        let frac = Axis::new([0.0, 1.0].into_iter());
        let labels: Vec<String> = frac.ticks().map(|v| frac.label(v)).collect();
        assert_eq!(labels, ["0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
    }

    #[test]
    fn writes_file() {
        let dir = std::env::temp_dir().join(format!("srl-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("loss.svg");
        write_svg_plot(
            &path,
            "loss",
            &[Series::new("train", vec![(1.0, 2.0), (2.0, 1.0)])],
            "step",
            "loss",
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(check_svg(&text).len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
