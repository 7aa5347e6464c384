//! The report's charts: plotters drawing to inline SVG strings (no fonts, no files, no
//! network). Every chart has a title, labelled axes and, when it has several series,
//! a legend. NaN breaks a line instead of being drawn as zero.

use plotters::coord::Shift;
use plotters::prelude::*;

pub const W: u32 = 560;
pub const H: u32 = 300;
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(127, 127, 127),
];

type R<T> = Result<T, String>;

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("chart: {e:?}")
}

/// The finite range of `ys`, padded, and including zero when `zero`.
fn range(ys: &[&[f64]], zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for y in ys.iter().flat_map(|s| s.iter()).filter(|v| v.is_finite()) {
        lo = lo.min(*y);
        hi = hi.max(*y);
    }
    if zero {
        lo = lo.min(0.0);
        hi = hi.max(0.0);
    }
    if !lo.is_finite() {
        return (-1.0, 1.0);
    }
    let pad = ((hi - lo) * 0.06).max(1e-9);
    (lo - pad, hi + pad)
}

fn svg(draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> R<()>) -> R<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(buf)
}

/// Lines over a date axis (`dates[i]` labels x = i).
pub fn lines(
    title: &str,
    y_desc: &str,
    dates: &[String],
    series: &[(&str, &[f64])],
    zero_line: bool,
) -> R<String> {
    svg(|root| {
        let n = dates.len().max(2);
        let (lo, hi) = range(&series.iter().map(|s| s.1).collect::<Vec<_>>(), zero_line);
        let mut c = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(58)
            .build_cartesian_2d(0f64..(n - 1) as f64, lo..hi)
            .map_err(err)?;
        let fmt = |x: &f64| {
            dates
                .get(x.round().max(0.0) as usize)
                .cloned()
                .unwrap_or_default()
        };
        c.configure_mesh()
            .x_labels(5)
            .y_labels(6)
            .x_label_formatter(&fmt)
            .y_desc(y_desc)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        if zero_line && lo < 0.0 && hi > 0.0 {
            c.draw_series(LineSeries::new(
                [(0.0, 0.0), ((n - 1) as f64, 0.0)],
                BLACK.mix(0.4),
            ))
            .map_err(err)?;
        }
        for (k, (name, ys)) in series.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            let mut labelled = false;
            let mut run: Vec<(f64, f64)> = Vec::new();
            for i in 0..=ys.len() {
                match ys.get(i) {
                    Some(y) if y.is_finite() => run.push((i as f64, *y)),
                    _ if !run.is_empty() => {
                        let s = c
                            .draw_series(LineSeries::new(
                                std::mem::take(&mut run),
                                color.stroke_width(1),
                            ))
                            .map_err(err)?;
                        if !labelled {
                            s.label(*name).legend(move |(x, y)| {
                                PathElement::new([(x, y), (x + 14, y)], color.stroke_width(2))
                            });
                            labelled = true;
                        }
                    }
                    _ => {}
                }
            }
        }
        if series.len() > 1 {
            c.configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .draw()
                .map_err(err)?;
        }
        Ok(())
    })
}

/// Bars, one per label.
pub fn bars(title: &str, y_desc: &str, labels: &[String], values: &[f64]) -> R<String> {
    svg(|root| {
        let n = labels.len().max(1);
        let (lo, hi) = range(&[values], true);
        let mut c = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(58)
            .build_cartesian_2d((0..n).into_segmented(), lo..hi)
            .map_err(err)?;
        let fmt = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                labels.get(*i).cloned().unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        };
        c.configure_mesh()
            .x_labels(n.min(20))
            .x_label_formatter(&fmt)
            .y_desc(y_desc)
            .disable_x_mesh()
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        c.draw_series(
            values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, v)| {
                    let color = if *v >= 0.0 { PALETTE[0] } else { PALETTE[3] };
                    let mut r = Rectangle::new(
                        [
                            (SegmentValue::Exact(i), 0.0),
                            (SegmentValue::Exact(i + 1), *v),
                        ],
                        color.filled(),
                    );
                    r.set_margin(0, 0, 3, 3);
                    r
                }),
        )
        .map_err(err)?;
        Ok(())
    })
}

/// A correlation matrix in [-1, 1]: red positive, blue negative; axes are factor ranks.
pub fn heatmap(title: &str, m: &[Vec<f64>]) -> R<String> {
    let k = m.len().max(1);
    let mut buf = String::new();
    {
        let side = (H + 160).max(24 * k as u32 / 2).min(900);
        let root = SVGBackend::with_string(&mut buf, (side + 60, side)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut c = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(36)
            // A segmented 0..n axis has n + 1 slots: 0..k-1 gives the k cells.
            .build_cartesian_2d((0..k - 1).into_segmented(), (0..k - 1).into_segmented())
            .map_err(err)?;
        // Row 0 is drawn at the top: y counts from the bottom.
        let xl = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) if *i < k => format!("#{}", i + 1),
            _ => String::new(),
        };
        let yl = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) if *i < k => format!("#{}", k - i),
            _ => String::new(),
        };
        c.configure_mesh()
            .x_labels(k.min(25))
            .y_labels(k.min(25))
            .x_label_formatter(&xl)
            .y_label_formatter(&yl)
            .disable_mesh()
            .draw()
            .map_err(err)?;
        let color = |v: f64| {
            if !v.is_finite() {
                return RGBColor(220, 220, 220);
            }
            let t = v.clamp(-1.0, 1.0).abs();
            let mix = |a: u8| (255.0 - t * (255.0 - a as f64)) as u8;
            if v >= 0.0 {
                RGBColor(255, mix(60), mix(60))
            } else {
                RGBColor(mix(60), mix(90), 255)
            }
        };
        c.draw_series(m.iter().enumerate().flat_map(|(i, row)| {
            row.iter().enumerate().map(move |(j, v)| {
                use SegmentValue::Exact;
                Rectangle::new(
                    [(Exact(j), Exact(k - 1 - i)), (Exact(j + 1), Exact(k - i))],
                    color(*v).filled(),
                )
            })
        }))
        .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(buf)
}
