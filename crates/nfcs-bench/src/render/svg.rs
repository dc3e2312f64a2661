//! Hand-made SVG charts: line charts (with a second y axis), bar charts and histograms.

use std::fmt::Write as _;

use crate::report::{Plot, PlotKind, Series, format_number};

/// Series colours (colour-blind friendly, Okabe-Ito).
const PALETTE: [&str; 8] = [
    "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#7f7f7f", "#f0e442",
];

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 380.0;
const LEFT: f64 = 78.0;
const RIGHT_PLAIN: f64 = 24.0;
const RIGHT_SECONDARY: f64 = 78.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 58.0;
const LEGEND_ROW: f64 = 20.0;
/// Beyond this magnitude a value is not drawn (the axis arithmetic would overflow).
const PLOTTABLE: f64 = 1e150;
/// Up to this many points a line series also gets a marker per point.
const MARKERS_UP_TO: usize = 60;
/// Beyond this many points a line series is thinned to the first, lowest, highest and last
/// point of each of [`LINE_COLUMNS`] columns: the same picture, a smaller file.
const THIN_LINES_ABOVE: usize = 2000;
/// The columns a thinned line series keeps four points of.
const LINE_COLUMNS: usize = 500;
/// Beyond this many categories a bar chart labels every n-th only.
const BAR_LABELS_UP_TO: usize = 16;

/// Escapes text for HTML and XML text and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// "Nice" tick values covering `[min, max]`: about `count` ticks at a step of 1, 2 or 5
/// times a power of ten, the first at or below `min`, the last at or above `max`.
///
/// A degenerate range (`min == max`) is widened around the value; non-finite bounds give
/// the ticks of `[0, 1]`.
///
/// ```
/// use nfcs_bench::render::nice_ticks;
///
/// assert_eq!(nice_ticks(0.0, 97.0, 5), [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
/// assert_eq!(nice_ticks(0.013, 0.048, 4), [0.0, 0.02, 0.04, 0.06]);
/// ```
pub fn nice_ticks(min: f64, max: f64, count: usize) -> Vec<f64> {
    let (mut low, mut high) = if min.is_finite() && max.is_finite() {
        (min.min(max), min.max(max))
    } else {
        (0.0, 1.0)
    };
    if high - low <= high.abs().max(low.abs()) * 1e-12 {
        let pad = if low == 0.0 { 1.0 } else { low.abs() * 0.1 };
        low -= pad;
        high += pad;
    }
    if !(high - low).is_finite() {
        low = -PLOTTABLE;
        high = PLOTTABLE;
    }
    let count = count.max(2);
    let range = nice_number(high - low, false);
    let step = nice_number(range / (count - 1) as f64, true);
    let first = (low / step).floor();
    let last = (high / step).ceil();
    let steps = ((last - first) as usize).min(100);
    (0..=steps)
        .map(|index| {
            let value = (first + index as f64) * step;
            // Round away the accumulated error (0.30000000000000004), and -0.
            let decimals = (-step.log10().floor()).max(0.0) as i32 + 1;
            let factor = 10f64.powi(decimals.min(300));
            let rounded = (value * factor).round() / factor;
            let value = if rounded.is_finite() { rounded } else { value };
            if value == 0.0 { 0.0 } else { value }
        })
        .collect()
}

fn nice_number(value: f64, round: bool) -> f64 {
    let exponent = value.log10().floor();
    let power = 10f64.powf(exponent);
    let fraction = value / power;
    let nice = if round {
        if fraction < 1.5 {
            1.0
        } else if fraction < 3.0 {
            2.0
        } else if fraction < 7.0 {
            5.0
        } else {
            10.0
        }
    } else if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// A linear axis: ticks, and the mapping of values to pixels.
#[derive(Debug, Clone)]
struct Axis {
    ticks: Vec<f64>,
    low: f64,
    high: f64,
    /// Pixel of `low`, pixel of `high`.
    from: f64,
    to: f64,
}

impl Axis {
    fn new(min: f64, max: f64, count: usize, from: f64, to: f64) -> Axis {
        let ticks = nice_ticks(min, max, count);
        let low = ticks.first().copied().unwrap_or(0.0);
        let high = ticks.last().copied().unwrap_or(1.0);
        Axis {
            ticks,
            low,
            high,
            from,
            to,
        }
    }

    fn pixel(&self, value: f64) -> f64 {
        let span = self.high - self.low;
        if span == 0.0 || !span.is_finite() {
            return (self.from + self.to) / 2.0;
        }
        self.from + (value - self.low) / span * (self.to - self.from)
    }

    fn step(&self) -> f64 {
        match self.ticks.as_slice() {
            [first, second, ..] => second - first,
            _ => 1.0,
        }
    }

    /// Tick labels with an SI suffix shared by the axis (`200M`, `1.5m`).
    fn labels(&self) -> Vec<String> {
        let magnitude = self.ticks.iter().map(|tick| tick.abs()).fold(0.0, f64::max);
        let (factor, suffix) = if magnitude >= 1e4 {
            let group = ((magnitude.log10() / 3.0).floor() as i32).clamp(1, 4);
            let suffix = ["k", "M", "G", "T"][(group - 1) as usize];
            (10f64.powi(3 * group), suffix)
        } else if magnitude > 0.0 && magnitude < 1e-2 {
            let group = ((-magnitude.log10() / 3.0).ceil() as i32).clamp(1, 4);
            let suffix = ["m", "\u{b5}", "n", "p"][(group - 1) as usize];
            (10f64.powi(-3 * group), suffix)
        } else {
            (1.0, "")
        };
        let step = self.step() / factor;
        let decimals = if step > 0.0 && step.is_finite() {
            ((-(step.log10() + 1e-9).floor()).max(0.0) as usize).min(9)
        } else {
            0
        };
        self.ticks
            .iter()
            .map(|tick| {
                if *tick == 0.0 {
                    "0".to_owned()
                } else {
                    format!("{:.*}{suffix}", decimals, tick / factor)
                }
            })
            .collect()
    }
}

fn plottable(point: &(f64, f64)) -> bool {
    point.0.is_finite()
        && point.1.is_finite()
        && point.0.abs() < PLOTTABLE
        && point.1.abs() < PLOTTABLE
}

/// The finite points of a series, sorted by x.
fn finite_points(series: &Series) -> Vec<(f64, f64)> {
    let mut points: Vec<(f64, f64)> = series.points.iter().copied().filter(plottable).collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |range, value| match range {
        None => Some((value, value)),
        Some((low, high)) => Some((low.min(value), high.max(value))),
    })
}

/// A series to draw: its index (for its colour), itself, its finite points sorted by x.
type Prepared<'a> = (usize, &'a Series, Vec<(f64, f64)>);

/// The pixel frame of the chart.
struct Frame {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

/// Draws `plot` as one `<svg>` element with `id = element_id`.
///
/// The element carries `data-kind` (`line`, `bar` or `histogram`), `data-series` (how many
/// series), `data-points` (how many finite points were drawn) and `data-skipped` (how many
/// were not: NaN, infinite). Line series are `<polyline>`s, in x order (with `<circle>`
/// markers up to 60 points; beyond 2000 points thinned to the first, lowest, highest and
/// last point of each of 500 columns, the series' `<g>` saying `data-points` and
/// `data-vertices`); bars and histogram buckets are `<rect class="bar">`s. Series on the
/// second axis are dashed. A plot without any finite point draws its frame and "no data".
pub fn plot_svg(plot: &Plot, element_id: &str) -> String {
    let prepared: Vec<Prepared<'_>> = plot
        .series
        .iter()
        .enumerate()
        .map(|(index, series)| (index, series, finite_points(series)))
        .collect();
    let drawn: usize = prepared.iter().map(|(_, _, points)| points.len()).sum();
    let total: usize = plot.series.iter().map(|series| series.points.len()).sum();
    let skipped = total - drawn;
    let any_primary = prepared
        .iter()
        .any(|(_, series, points)| !series.secondary_axis && !points.is_empty());
    let secondary = plot.kind == PlotKind::Line
        && any_primary
        && prepared
            .iter()
            .any(|(_, series, points)| series.secondary_axis && !points.is_empty());

    let legend = legend_items(plot, secondary);
    let legend_rows = legend_layout(&legend, WIDTH - LEFT - RIGHT_PLAIN);
    let legend_height = legend_rows.len() as f64 * LEGEND_ROW;
    let height = HEIGHT + legend_height;
    let frame = Frame {
        left: LEFT,
        right: WIDTH
            - if secondary {
                RIGHT_SECONDARY
            } else {
                RIGHT_PLAIN
            },
        top: TOP,
        bottom: HEIGHT - BOTTOM,
    };

    let kind = match plot.kind {
        PlotKind::Line => "line",
        PlotKind::Bar => "bar",
        PlotKind::Histogram => "histogram",
    };
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg id=\"{id}\" class=\"plot\" data-kind=\"{kind}\" data-series=\"{series}\" \
         data-points=\"{drawn}\" data-skipped=\"{skipped}\" viewBox=\"0 0 {WIDTH} {height}\" \
         width=\"{WIDTH}\" height=\"{height}\" role=\"img\" aria-label=\"{title}\" \
         xmlns=\"http://www.w3.org/2000/svg\">",
        id = escape(element_id),
        series = plot.series.len(),
        title = escape(&plot.title),
    );
    let _ = write!(svg, "<title>{}</title>", escape(&plot.title));
    let _ = write!(
        svg,
        "<rect class=\"area\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"/>",
        frame.left,
        frame.top,
        frame.right - frame.left,
        frame.bottom - frame.top
    );

    if drawn == 0 {
        let _ = write!(
            svg,
            "<text class=\"no-data\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">no data</text>",
            (frame.left + frame.right) / 2.0,
            (frame.top + frame.bottom) / 2.0
        );
        axis_titles(&mut svg, plot, &frame, false);
        draw_legend(&mut svg, &legend, &legend_rows, HEIGHT);
        svg.push_str("</svg>");
        return svg;
    }

    match plot.kind {
        PlotKind::Line => draw_lines(&mut svg, &prepared, &frame, secondary),
        PlotKind::Bar => draw_bars(&mut svg, &prepared, &frame),
        PlotKind::Histogram => draw_histogram(&mut svg, &prepared, &frame),
    }
    axis_titles(&mut svg, plot, &frame, secondary);
    if skipped > 0 {
        let _ = write!(
            svg,
            "<text class=\"skipped\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{skipped} \
             non-finite point{} not drawn</text>",
            frame.right - 4.0,
            frame.top + 14.0,
            if skipped == 1 { "" } else { "s" }
        );
    }
    draw_legend(&mut svg, &legend, &legend_rows, HEIGHT);
    svg.push_str("</svg>");
    svg
}

fn axis_titles(svg: &mut String, plot: &Plot, frame: &Frame, secondary: bool) {
    let _ = write!(
        svg,
        "<text class=\"axis-title\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        (frame.left + frame.right) / 2.0,
        HEIGHT - 14.0,
        escape(&plot.x_label)
    );
    let middle = (frame.top + frame.bottom) / 2.0;
    let _ = write!(
        svg,
        "<text class=\"axis-title\" x=\"16\" y=\"{middle:.1}\" text-anchor=\"middle\" \
         transform=\"rotate(-90 16 {middle:.1})\">{}</text>",
        escape(&plot.y_label)
    );
    if secondary {
        let x = WIDTH - 14.0;
        let label = plot.secondary_y_label.as_deref().unwrap_or("");
        let _ = write!(
            svg,
            "<text class=\"axis-title\" x=\"{x:.1}\" y=\"{middle:.1}\" text-anchor=\"middle\" \
             transform=\"rotate(90 {x:.1} {middle:.1})\">{}</text>",
            escape(label)
        );
    }
}

/// Grid lines and tick labels of a y axis, on the left or the right.
fn y_axis(svg: &mut String, axis: &Axis, frame: &Frame, right: bool) {
    let labels = axis.labels();
    for (tick, label) in axis.ticks.iter().zip(&labels) {
        let y = axis.pixel(*tick);
        if !right {
            let _ = write!(
                svg,
                "<line class=\"grid\" x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>",
                frame.left, frame.right
            );
        }
        let (x, anchor) = if right {
            (frame.right + 6.0, "start")
        } else {
            (frame.left - 6.0, "end")
        };
        let _ = write!(
            svg,
            "<text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
            y + 4.0,
            escape(label)
        );
    }
    let x = if right { frame.right } else { frame.left };
    let _ = write!(
        svg,
        "<line class=\"axis\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\"/>",
        frame.top, frame.bottom
    );
}

/// Tick labels of a numeric x axis.
fn x_axis(svg: &mut String, axis: &Axis, frame: &Frame) {
    let labels = axis.labels();
    for (tick, label) in axis.ticks.iter().zip(&labels) {
        let x = axis.pixel(*tick);
        let _ = write!(
            svg,
            "<line class=\"tick-mark\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\"/>\
             <text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            frame.bottom,
            frame.bottom + 5.0,
            frame.bottom + 20.0,
            escape(label)
        );
    }
    let _ = write!(
        svg,
        "<line class=\"axis\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>",
        frame.left, frame.bottom, frame.right, frame.bottom
    );
}

/// The y range of `points`, with zero included when the data sit close to it.
fn y_range(points: impl Iterator<Item = f64>, include_zero: bool) -> (f64, f64) {
    let (low, high) = range(points).unwrap_or((0.0, 1.0));
    if include_zero {
        return (low.min(0.0), high.max(0.0));
    }
    if low >= 0.0 && low <= high * 0.5 {
        (0.0, high)
    } else if high <= 0.0 && high >= low * 0.5 {
        (low, 0.0)
    } else {
        (low, high)
    }
}

fn draw_lines(svg: &mut String, prepared: &[Prepared<'_>], frame: &Frame, secondary: bool) {
    let on_secondary = |series: &Series| secondary && series.secondary_axis;
    let all = prepared.iter().flat_map(|(_, _, points)| points.iter());
    let (x_low, x_high) = range(all.map(|point| point.0)).unwrap_or((0.0, 1.0));
    let x_axis_ = Axis::new(x_low, x_high, 8, frame.left, frame.right);
    let primary_points = prepared
        .iter()
        .filter(|(_, series, _)| !on_secondary(series))
        .flat_map(|(_, _, points)| points.iter().map(|point| point.1));
    let (y_low, y_high) = y_range(primary_points, false);
    let y_primary = Axis::new(y_low, y_high, 6, frame.bottom, frame.top);
    y_axis(svg, &y_primary, frame, false);
    let y_secondary = secondary.then(|| {
        let points = prepared
            .iter()
            .filter(|(_, series, _)| on_secondary(series))
            .flat_map(|(_, _, points)| points.iter().map(|point| point.1));
        let (low, high) = y_range(points, false);
        let axis = Axis::new(low, high, 6, frame.bottom, frame.top);
        y_axis(svg, &axis, frame, true);
        axis
    });
    x_axis(svg, &x_axis_, frame);

    for (index, series, points) in prepared {
        if points.is_empty() {
            continue;
        }
        let colour = PALETTE[index % PALETTE.len()];
        let y_axis_ = match &y_secondary {
            Some(axis) if on_secondary(series) => axis,
            _ => &y_primary,
        };
        let vertices = thin(points, x_axis_.low, x_axis_.high);
        let coordinates: Vec<String> = vertices
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", x_axis_.pixel(*x), y_axis_.pixel(*y)))
            .collect();
        let dash = if on_secondary(series) {
            " stroke-dasharray=\"7 4\""
        } else {
            ""
        };
        let _ = write!(
            svg,
            "<g class=\"series\" data-series-name=\"{name}\" data-points=\"{count}\" \
             data-vertices=\"{vertices}\"><polyline class=\"line\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash} \
             points=\"{coordinates}\"><title>{name}</title></polyline>",
            name = escape(&series.name),
            count = points.len(),
            vertices = vertices.len(),
            coordinates = coordinates.join(" "),
        );
        if points.len() <= MARKERS_UP_TO {
            let radius = if points.len() == 1 { 4.0 } else { 2.5 };
            for (x, y) in points {
                let _ = write!(
                    svg,
                    "<circle class=\"marker\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"{radius}\" \
                     fill=\"{colour}\"><title>{}: ({}, {})</title></circle>",
                    x_axis_.pixel(*x),
                    y_axis_.pixel(*y),
                    escape(&series.name),
                    format_number(*x),
                    format_number(*y)
                );
            }
        }
        svg.push_str("</g>");
    }
}

/// A long line series thinned for drawing ([`THIN_LINES_ABOVE`]); `points` sorted by x.
fn thin(points: &[(f64, f64)], low: f64, high: f64) -> Vec<(f64, f64)> {
    if points.len() <= THIN_LINES_ABOVE || high <= low {
        return points.to_vec();
    }
    let column = |x: f64| {
        let at = ((x - low) / (high - low) * LINE_COLUMNS as f64).floor();
        (at.max(0.0) as usize).min(LINE_COLUMNS - 1)
    };
    let mut kept = Vec::with_capacity(4 * LINE_COLUMNS);
    let mut start = 0;
    while start < points.len() {
        let index = column(points[start].0);
        let mut end = start;
        while end < points.len() && column(points[end].0) == index {
            end += 1;
        }
        let slice = &points[start..end];
        let lowest = slice
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.1.total_cmp(&b.1.1))
            .map_or(0, |(at, _)| at);
        let highest = slice
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.1.total_cmp(&b.1.1))
            .map_or(0, |(at, _)| at);
        let mut chosen = [0, lowest, highest, slice.len() - 1];
        chosen.sort_unstable();
        let mut previous = None;
        for at in chosen {
            if previous != Some(at) {
                kept.push(slice[at]);
                previous = Some(at);
            }
        }
        start = end;
    }
    kept
}

fn draw_bars(svg: &mut String, prepared: &[Prepared<'_>], frame: &Frame) {
    let mut categories: Vec<f64> = prepared
        .iter()
        .flat_map(|(_, _, points)| points.iter().map(|point| point.0))
        .collect();
    categories.sort_by(f64::total_cmp);
    categories.dedup();
    let values = prepared
        .iter()
        .flat_map(|(_, _, points)| points.iter().map(|point| point.1));
    let (low, high) = y_range(values, true);
    let y = Axis::new(low, high, 6, frame.bottom, frame.top);
    y_axis(svg, &y, frame, false);

    let groups = categories.len().max(1) as f64;
    let group_width = (frame.right - frame.left) / groups;
    let drawing: Vec<_> = prepared
        .iter()
        .filter(|(_, _, points)| !points.is_empty())
        .collect();
    let bar_width = group_width * 0.8 / drawing.len().max(1) as f64;
    let zero = y.pixel(0.0_f64.clamp(y.low, y.high));
    let label_values = categories.len() * drawing.len() <= 40;

    for (slot, (index, series, points)) in drawing.iter().enumerate() {
        let colour = PALETTE[index % PALETTE.len()];
        let _ = write!(
            svg,
            "<g class=\"series\" data-series-name=\"{}\" data-points=\"{}\">",
            escape(&series.name),
            points.len()
        );
        for (x, value) in points {
            let group = categories
                .iter()
                .position(|category| category.total_cmp(x).is_eq())
                .unwrap_or(0) as f64;
            let left =
                frame.left + group * group_width + group_width * 0.1 + slot as f64 * bar_width;
            let top = y.pixel(*value);
            let (bar_top, bar_height) = (top.min(zero), (top - zero).abs().max(0.5));
            let _ = write!(
                svg,
                "<rect class=\"bar\" x=\"{left:.1}\" y=\"{bar_top:.1}\" width=\"{:.1}\" \
                 height=\"{bar_height:.1}\" fill=\"{colour}\"><title>{}: {} = {}</title></rect>",
                (bar_width - 1.0).max(1.0),
                escape(&series.name),
                format_number(*x),
                format_number(*value)
            );
            if label_values {
                let _ = write!(
                    svg,
                    "<text class=\"value\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                    left + bar_width / 2.0,
                    if *value >= 0.0 {
                        bar_top - 4.0
                    } else {
                        bar_top + bar_height + 12.0
                    },
                    escape(&format_number(*value))
                );
            }
        }
        svg.push_str("</g>");
    }
    let label_every = categories.len().div_ceil(BAR_LABELS_UP_TO).max(1);
    for (group, category) in categories.iter().enumerate() {
        if group % label_every != 0 {
            continue;
        }
        let x = frame.left + (group as f64 + 0.5) * group_width;
        let _ = write!(
            svg,
            "<text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            frame.bottom + 20.0,
            escape(&format_number(*category))
        );
    }
    let _ = write!(
        svg,
        "<line class=\"axis\" x1=\"{:.1}\" y1=\"{zero:.1}\" x2=\"{:.1}\" y2=\"{zero:.1}\"/>",
        frame.left, frame.right
    );
}

/// The width of each drawn histogram bucket: to the next lower edge of the series (a bucket
/// whose count is not finite still bounds the one before it); the last as wide as the
/// narrowest before it (a single bucket: 1, or a tenth of its edge).
fn bucket_widths(series: &Series, points: &[(f64, f64)]) -> Vec<f64> {
    let mut edges: Vec<f64> = series
        .points
        .iter()
        .map(|point| point.0)
        .filter(|edge| edge.is_finite() && edge.abs() < PLOTTABLE)
        .collect();
    edges.sort_by(f64::total_cmp);
    edges.dedup();
    let gaps = edges.windows(2).map(|pair| pair[1] - pair[0]);
    let fallback = match gaps.fold(None, |least: Option<f64>, gap| {
        Some(least.map_or(gap, |least| least.min(gap)))
    }) {
        Some(gap) => gap,
        None => match points.first() {
            Some((edge, _)) if *edge != 0.0 => edge.abs() * 0.1,
            _ => 1.0,
        },
    };
    points
        .iter()
        .map(|(edge, _)| {
            edges
                .iter()
                .find(|next| **next > *edge)
                .map_or(fallback, |next| next - edge)
        })
        .collect()
}

fn draw_histogram(svg: &mut String, prepared: &[Prepared<'_>], frame: &Frame) {
    let widths: Vec<Vec<f64>> = prepared
        .iter()
        .map(|(_, series, points)| bucket_widths(series, points))
        .collect();
    let edges = prepared
        .iter()
        .zip(&widths)
        .flat_map(|((_, _, points), widths)| {
            points
                .iter()
                .zip(widths)
                .flat_map(|((edge, _), width)| [*edge, edge + width])
        });
    let (x_low, x_high) = range(edges).unwrap_or((0.0, 1.0));
    let x = Axis::new(x_low, x_high, 8, frame.left, frame.right);
    let counts = prepared
        .iter()
        .flat_map(|(_, _, points)| points.iter().map(|point| point.1));
    let (low, high) = y_range(counts, true);
    let y = Axis::new(low, high, 6, frame.bottom, frame.top);
    y_axis(svg, &y, frame, false);
    x_axis(svg, &x, frame);
    let zero = y.pixel(0.0_f64.clamp(y.low, y.high));
    let overlay = prepared
        .iter()
        .filter(|(_, _, points)| !points.is_empty())
        .count()
        > 1;

    for ((index, series, points), widths) in prepared.iter().zip(&widths) {
        if points.is_empty() {
            continue;
        }
        let colour = PALETTE[index % PALETTE.len()];
        let _ = write!(
            svg,
            "<g class=\"series\" data-series-name=\"{}\" data-points=\"{}\"{}>",
            escape(&series.name),
            points.len(),
            if overlay {
                " fill-opacity=\"0.55\""
            } else {
                ""
            }
        );
        for ((edge, count), width) in points.iter().zip(widths) {
            let left = x.pixel(*edge);
            let right = x.pixel(edge + width);
            let top = y.pixel(*count);
            let (bar_top, bar_height) = (top.min(zero), (top - zero).abs());
            let _ = write!(
                svg,
                "<rect class=\"bar\" x=\"{left:.1}\" y=\"{bar_top:.1}\" width=\"{:.1}\" \
                 height=\"{bar_height:.1}\" fill=\"{colour}\"><title>{}: [{}, {}): {}</title></rect>",
                (right - left).max(0.5),
                escape(&series.name),
                format_number(*edge),
                format_number(edge + width),
                format_number(*count)
            );
        }
        svg.push_str("</g>");
    }
}

/// A legend entry: the series' colour, name and how it is drawn.
struct LegendItem {
    colour: &'static str,
    text: String,
    dashed: bool,
    line: bool,
}

fn legend_items(plot: &Plot, secondary: bool) -> Vec<LegendItem> {
    plot.series
        .iter()
        .enumerate()
        .map(|(index, series)| {
            let right = secondary && series.secondary_axis;
            LegendItem {
                colour: PALETTE[index % PALETTE.len()],
                text: if right {
                    format!("{} (right axis)", series.name)
                } else {
                    series.name.clone()
                },
                dashed: right,
                line: plot.kind == PlotKind::Line,
            }
        })
        .collect()
}

fn legend_item_width(item: &LegendItem) -> f64 {
    28.0 + 7.0 * item.text.chars().count() as f64 + 16.0
}

/// The items of each legend row, wrapped to `width`.
fn legend_layout(items: &[LegendItem], width: f64) -> Vec<Vec<usize>> {
    let mut rows: Vec<Vec<usize>> = Vec::new();
    let mut used = f64::INFINITY;
    for (index, item) in items.iter().enumerate() {
        let item_width = legend_item_width(item);
        match rows.last_mut() {
            Some(row) if used + item_width <= width => {
                row.push(index);
                used += item_width;
            }
            _ => {
                rows.push(vec![index]);
                used = item_width;
            }
        }
    }
    rows
}

fn draw_legend(svg: &mut String, items: &[LegendItem], rows: &[Vec<usize>], top: f64) {
    if items.is_empty() {
        return;
    }
    svg.push_str("<g class=\"legend\">");
    for (row_index, row) in rows.iter().enumerate() {
        let y = top + row_index as f64 * LEGEND_ROW + 6.0;
        let mut x = LEFT;
        for index in row {
            let Some(item) = items.get(*index) else {
                continue;
            };
            if item.line {
                let _ = write!(
                    svg,
                    "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{}\" \
                     stroke-width=\"3\"{}/>",
                    x + 22.0,
                    item.colour,
                    if item.dashed {
                        " stroke-dasharray=\"7 4\""
                    } else {
                        ""
                    }
                );
            } else {
                let _ = write!(
                    svg,
                    "<rect class=\"swatch\" x=\"{x:.1}\" y=\"{:.1}\" width=\"22\" height=\"10\" \
                     fill=\"{}\"/>",
                    y - 5.0,
                    item.colour
                );
            }
            let _ = write!(
                svg,
                "<text class=\"legend-text\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                x + 28.0,
                y + 4.0,
                escape(&item.text)
            );
            x += legend_item_width(item);
        }
    }
    svg.push_str("</g>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice() {
        assert_eq!(
            nice_ticks(0.0, 97.0, 5),
            [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(nice_ticks(1.0, 1.0, 5), [0.9, 1.0, 1.1]);
        assert_eq!(nice_ticks(0.0, 0.0, 5), [-1.0, -0.5, 0.0, 0.5, 1.0]);
        assert_eq!(nice_ticks(f64::NAN, 3.0, 5).first(), Some(&0.0));
        let ticks = nice_ticks(-3.2, 7.9, 6);
        assert!(ticks[0] <= -3.2 && *ticks.last().unwrap() >= 7.9);
    }

    #[test]
    fn labels_use_si_suffixes() {
        let axis = Axis::new(0.0, 2.5e8, 6, 0.0, 1.0);
        assert_eq!(axis.labels().last().map(String::as_str), Some("300M"));
        let axis = Axis::new(0.0, 0.0042, 5, 0.0, 1.0);
        assert!(axis.labels().iter().any(|label| label.ends_with('m')));
    }

    #[test]
    fn long_lines_are_thinned_keeping_extremes() {
        let points: Vec<(f64, f64)> = (0..100_000)
            .map(|i| {
                (
                    f64::from(i),
                    if i == 54_321 { 1e6 } else { f64::from(i % 7) },
                )
            })
            .collect();
        let kept = thin(&points, 0.0, 100_000.0);
        assert!(kept.len() <= 4 * LINE_COLUMNS, "{}", kept.len());
        assert!(kept.contains(&(54_321.0, 1e6)));
        assert_eq!(kept.first(), points.first());
        assert_eq!(kept.last(), points.last());
        assert!(kept.windows(2).all(|pair| pair[0].0 <= pair[1].0));
        assert_eq!(thin(&points[..10], 0.0, 10.0).len(), 10);
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<script>\"a\" & 'b'"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;"
        );
    }
}
