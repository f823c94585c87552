//! The suite's plot: the median ratio fuseau/peer of every workload and
//! metric, as a horizontal bar chart on a log axis (SVG, rendered with
//! `plotters` without system fonts).

use std::path::Path;

use plotters::prelude::*;

/// One bar: a workload's metric against one peer, from a ratio line of the
/// CSV (`<workload>,fuseau/<peer>,<metric>,<median>,<min>,<max>`).
struct Ratio {
    row: String,
    peer: String,
    median: f64,
    min: f64,
    max: f64,
}

/// The ratio lines of the suite's CSV.
fn ratios(csv: &str) -> Vec<Ratio> {
    csv.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let [workload, system, metric, median, min, max] = f[..] else {
                return None;
            };
            let peer = system.strip_prefix("fuseau/")?;
            // Throughputs and speed-ups: higher is better.
            let throughput = if metric.ends_with("_per_s") || metric.starts_with("speedup") {
                " (higher: fuseau faster)"
            } else {
                ""
            };
            Some(Ratio {
                row: format!("{workload} {metric}{throughput}"),
                peer: peer.to_owned(),
                median: median.parse().ok()?,
                min: min.parse().ok()?,
                max: max.parse().ok()?,
            })
        })
        .collect()
}

/// The distinct values of `key` over `ratios`, in order of appearance.
fn distinct(ratios: &[Ratio], key: impl Fn(&Ratio) -> &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for r in ratios {
        if !seen.iter().any(|s| s == key(r)) {
            seen.push(key(r).to_owned());
        }
    }
    seen
}

/// The colour of the `i`th peer.
fn colour(i: usize) -> RGBColor {
    const PALETTE: [RGBColor; 4] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
    ];
    PALETTE[i % PALETTE.len()]
}

/// A log axis range holding every ratio (whiskers included) and 1, from
/// and to powers of ten.
fn axis(ratios: &[Ratio]) -> std::ops::Range<f64> {
    let lo = ratios.iter().map(|r| r.min).fold(1.0, f64::min);
    let hi = ratios.iter().map(|r| r.max).fold(1.0, f64::max);
    10f64.powf(lo.log10().floor())..10f64.powf(hi.log10().ceil())
}

/// Renders the ratio lines of `csv` (the suite's CSV) to the SVG file
/// `path`, headed by `title`: one row per workload and metric, one bar per
/// peer from 1 to the median ratio, a whisker from min to max, a line at 1.
///
/// # Errors
///
/// If there is no ratio to plot, or drawing or writing fails.
pub fn render(csv: &str, path: &Path, title: &str) -> Result<(), String> {
    let ratios = ratios(csv);
    if ratios.is_empty() {
        return Err("no ratio to plot".into());
    }
    let rows = distinct(&ratios, |r| &r.row);
    let mut peers = distinct(&ratios, |r| &r.peer);
    // The same colour for a peer in every plot: a fixed order, others last.
    peers.sort_by_key(|p| {
        ["tokio", "may", "go"]
            .iter()
            .position(|k| k == p)
            .unwrap_or(usize::MAX)
    });
    // Two empty rows at the top hold the legend.
    let height = 110 + 26 * (rows.len() as u32 + 2);
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    // Each row is `2 × peers + 1` units high: two per bar, one of gap; its
    // label sits at the middle of its bars. Row 0 at the top.
    let k = peers.len() as i32;
    let per_row = 2 * k + 1;
    let units = per_row * rows.len() as i32;
    let base = |row: usize| units - per_row * (row as i32 + 1) + 1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(330)
        .build_cartesian_2d(axis(&ratios).log_scale(), 0..units + 2 * per_row)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels((units + 2 * per_row) as usize + 1)
        .x_desc("fuseau / peer, median of the run-by-run ratios (log scale; below 1: fuseau lower)")
        .y_label_formatter(&|&y| {
            let row = (units - y) / per_row;
            match rows.get(row as usize) {
                Some(label) if y == base(row as usize) + k => label.clone(),
                _ => String::new(),
            }
        })
        .draw()
        .map_err(|e| e.to_string())?;
    for (p, peer) in peers.iter().enumerate() {
        let colour = colour(p);
        let bars = ratios.iter().filter(|r| &r.peer == peer).map(|r| {
            let row = rows.iter().position(|x| *x == r.row).expect("a row");
            // Peer 0's bar on top.
            (r, base(row) + 2 * (k - 1 - p as i32))
        });
        chart
            .draw_series(
                bars.clone()
                    .map(|(r, y)| Rectangle::new([(1.0, y), (r.median, y + 2)], colour.filled())),
            )
            .map_err(|e| e.to_string())?
            .label(format!("fuseau/{peer}"))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
        chart
            .draw_series(bars.map(|(r, y)| {
                PathElement::new(vec![(r.min, y + 1), (r.max, y + 1)], BLACK.stroke_width(1))
            }))
            .map_err(|e| e.to_string())?;
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(1.0, 0), (1.0, units + 1)],
            BLACK.stroke_width(2),
        )))
        .map_err(|e| e.to_string())?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
