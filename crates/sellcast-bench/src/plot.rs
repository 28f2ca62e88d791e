//! SVG plots of a run: the latency CDF per step, and cost and tail latency against viewers.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::step::StepResult;

const COLORS: [RGBColor; 6] = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("plot: {e}")
}

/// One-way latency CDF, one line per step.
pub fn latency_cdf(path: &Path, steps: &[StepResult]) -> Result<()> {
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let max_ms = steps.iter().flat_map(|s| s.latency_cdf_ms.iter().map(|p| p.1)).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption("host -> viewer one-way latency (CDF)", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..max_ms * 1.05, 0.0..1.0)
        .map_err(err)?;
    chart.configure_mesh().x_desc("latency (ms)").y_desc("fraction of packets").draw().map_err(err)?;
    for (i, s) in steps.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(s.latency_cdf_ms.iter().map(|(q, ms)| (*ms, *q)), color.stroke_width(2)))
            .map_err(err)?
            .label(format!("{} {} viewers", s.server, s.viewers))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Server CPU per forwarded packet and p99 latency against the number of viewers, one line
/// per server.
pub fn scaling(path: &Path, steps: &[StepResult]) -> Result<()> {
    let root = SVGBackend::new(path, (800, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = root.split_vertically(350);
    let max_v = steps.iter().map(|s| s.viewers).max().unwrap_or(1) as f64;
    let max_us = steps.iter().map(|s| s.cpu_us_per_forwarded_packet).filter(|v| v.is_finite()).fold(1.0, f64::max);
    let max_p99 = steps.iter().map(|s| s.latency_ms_p99).fold(1.0, f64::max);
    for (area, title, ymax, pick) in [
        (&top, "server CPU per forwarded packet (us)", max_us, (|s: &StepResult| s.cpu_us_per_forwarded_packet) as fn(&StepResult) -> f64),
        (&bottom, "one-way latency p99 (ms)", max_p99, |s: &StepResult| s.latency_ms_p99),
    ] {
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(15)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..max_v * 1.05, 0.0..ymax * 1.15)
            .map_err(err)?;
        chart.configure_mesh().x_desc("viewers").draw().map_err(err)?;
        for (i, server) in ["sellcast", "janus"].into_iter().enumerate() {
            let points: Vec<(f64, f64)> =
                steps.iter().filter(|s| s.server == server).map(|s| (s.viewers as f64, pick(s))).collect();
            if points.is_empty() {
                continue;
            }
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
                .map_err(err)?
                .label(server)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled()))).map_err(err)?;
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}
