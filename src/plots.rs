//! The evaluation report's pictures, drawn as SVG with `plotters` (no
//! system fonts needed: the SVG carries its text and the viewer renders it).

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

fn err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Samples for the report's pictures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PlotData {
    /// log10(chi2 + 1) per group, directions of Skype flows (>= 10 samples).
    pub chi2_skype: Vec<[f64; 16]>,
    /// Same, directions of negative flows.
    pub chi2_other: Vec<[f64; 16]>,
    /// Mean NBC log-odds of directions with windows, by class name.
    pub log_odds: BTreeMap<String, Vec<f64>>,
    /// Packets to verdict of true positives.
    pub packets_to_verdict: Vec<u64>,
    /// Seconds to verdict of true positives.
    pub seconds_to_verdict: Vec<f64>,
}

/// Median (with quartiles) of log10(chi2 + 1) per group for Skype and other
/// directions, with the CSC thresholds.
pub fn chi2_profile(path: &Path, d: &PlotData) -> Result<(), String> {
    let e = err(path);
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(&e)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Chi-square per nibble group (median, quartiles)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..15.5f64, 0f64..5.5f64)
        .map_err(&e)?;
    chart
        .configure_mesh()
        .x_desc("group (2k = low nibble of byte k, 2k+1 = high nibble)")
        .y_desc("log10(chi2 + 1)")
        .x_labels(16)
        .draw()
        .map_err(&e)?;
    for (t, name) in [(150f64, "deterministic >= 150"), (100f64, "mixed >= 100")] {
        let y = (t + 1.0).log10();
        chart
            .draw_series(LineSeries::new(vec![(-0.5, y), (15.5, y)], BLACK.mix(0.4)))
            .map_err(&e)?
            .label(name)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.4)));
    }
    for (rows, color, name, shift) in [
        (&d.chi2_skype, RED, "Skype directions", -0.12),
        (&d.chi2_other, BLUE, "negative directions", 0.12),
    ] {
        if rows.is_empty() {
            continue;
        }
        let mut med = Vec::new();
        for g in 0..16 {
            let mut col: Vec<f64> = rows.iter().map(|r| r[g]).collect();
            col.sort_by(f64::total_cmp);
            let (q1, q2, q3) = (
                quantile(&col, 0.25),
                quantile(&col, 0.5),
                quantile(&col, 0.75),
            );
            let x = g as f64 + shift;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x, q1), (x, q3)],
                    color.stroke_width(2),
                )))
                .map_err(&e)?;
            med.push((x, q2));
        }
        chart
            .draw_series(LineSeries::new(med.clone(), color.stroke_width(2)))
            .map_err(&e)?
            .label(format!("{name} ({})", rows.len()))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(med.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(&e)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(&e)?;
    root.present().map_err(&e)?;
    Ok(())
}

/// Distribution of the directions' mean NBC log-odds per class, with the
/// threshold.
pub fn log_odds(path: &Path, d: &PlotData, threshold: f64) -> Result<(), String> {
    let e = err(path);
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(&e)?;
    let (lo, hi, bins) = (-30.0f64, 10.0f64, 40usize);
    let width = (hi - lo) / bins as f64;
    let mut series = Vec::new();
    let mut ymax = 0.05f64;
    for (name, values) in &d.log_odds {
        let mut h = vec![0f64; bins];
        for &v in values {
            let i = (((v.clamp(lo, hi - 1e-9)) - lo) / width) as usize;
            h[i.min(bins - 1)] += 1.0;
        }
        let n = values.len().max(1) as f64;
        for x in h.iter_mut() {
            *x /= n;
        }
        ymax = ymax.max(h.iter().copied().fold(0.0, f64::max));
        series.push((name.clone(), values.len(), h));
    }
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "NBC: mean log-odds (media vs other) per direction",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(lo..hi, 0f64..ymax * 1.1)
        .map_err(&e)?;
    chart
        .configure_mesh()
        .x_desc("mean log-odds (clamped to [-30, 10])")
        .y_desc("share of directions")
        .draw()
        .map_err(&e)?;
    let colors = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];
    for (i, (name, n, h)) in series.iter().enumerate() {
        let color = colors[i % colors.len()];
        let mut pts = Vec::new();
        for (b, &y) in h.iter().enumerate() {
            let x0 = lo + b as f64 * width;
            pts.push((x0, y));
            pts.push((x0 + width, y));
        }
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(&e)?
            .label(format!("{name} ({n})"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .draw_series(LineSeries::new(
            vec![(threshold, 0.0), (threshold, ymax * 1.1)],
            BLACK.stroke_width(1),
        ))
        .map_err(&e)?
        .label(format!("threshold {threshold}"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(&e)?;
    root.present().map_err(&e)?;
    Ok(())
}

/// Share of true positives decided within N packets.
pub fn time_to_verdict(path: &Path, d: &PlotData) -> Result<(), String> {
    let e = err(path);
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(&e)?;
    let mut v: Vec<u64> = d.packets_to_verdict.clone();
    v.sort_unstable();
    let xmax = v.last().copied().unwrap_or(10).max(10) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption("Time to verdict of Skype flows", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((1f64..xmax * 1.05).log_scale(), 0f64..1.02f64)
        .map_err(&e)?;
    chart
        .configure_mesh()
        .x_desc("packets of the flow at the decision")
        .y_desc("share of Skype flows decided")
        .draw()
        .map_err(&e)?;
    let n = v.len().max(1) as f64;
    let pts: Vec<(f64, f64)> = v
        .iter()
        .enumerate()
        .flat_map(|(i, &p)| {
            [
                (p.max(1) as f64, i as f64 / n),
                (p.max(1) as f64, (i + 1) as f64 / n),
            ]
        })
        .collect();
    chart
        .draw_series(LineSeries::new(pts, RED.stroke_width(2)))
        .map_err(&e)?
        .label(format!("{} flows", v.len()))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(&e)?;
    root.present().map_err(&e)?;
    Ok(())
}
