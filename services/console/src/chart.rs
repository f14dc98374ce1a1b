//! Charts as inline SVG, drawn on the server: a picture needs no script and no asset from anywhere. Each
//! builder is a pure function of the figures; colours come from CSS classes or the caller.

use maud::{Markup, html};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 18.0;
const BOTTOM: f64 = 34.0;

fn plot_width() -> f64 {
    WIDTH - LEFT - RIGHT
}

fn plot_height() -> f64 {
    HEIGHT - TOP - BOTTOM
}

/// Coordinates with one decimal: enough for a picture, short in the page.
fn n(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    if rounded == rounded.trunc() {
        format!("{}", rounded as i64)
    } else {
        format!("{rounded:.1}")
    }
}

/// The smallest 1, 2 or 5 × 10ⁿ step that splits `max` into at most `ticks` steps, and the axis top it gives.
pub fn nice_axis(max: f64, ticks: u32) -> (f64, f64) {
    if !(max.is_finite() && max > 0.0) {
        return (1.0, ticks as f64);
    }
    let rough = max / ticks as f64;
    let magnitude = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= rough)
        .unwrap_or(10.0 * magnitude);
    // Counts are whole: no step below 1.
    let step = step.max(1.0);
    let top = (max / step).ceil() * step;
    (step, top)
}

fn empty(message: &str) -> Markup {
    html! {
        svg class="chart" viewBox={"0 0 " (n(WIDTH)) " " (n(HEIGHT))} role="img" aria-label=(message) {
            rect class="plot-bg" x=(n(LEFT)) y=(n(TOP)) width=(n(plot_width())) height=(n(plot_height())) {}
            text class="empty" x=(n(WIDTH / 2.0)) y=(n(HEIGHT / 2.0)) text-anchor="middle" { (message) }
        }
    }
}

/// A compact count for an axis: 950, 1.2k, 3M.
pub fn compact(value: f64) -> String {
    let abs = value.abs();
    if abs >= 1_000_000.0 {
        format!("{}M", n(value / 1_000_000.0))
    } else if abs >= 10_000.0 {
        format!("{}k", n(value / 1_000.0))
    } else {
        n(value)
    }
}

/// One line of a line chart: a share (0..=1) per point, drawn in the colour of `class`.
pub struct Series<'a> {
    pub name: &'a str,
    pub class: &'a str,
    pub values: Vec<f64>,
}

/// Which of `count` x labels to print so that at most `max` show, always the first and the last.
pub fn label_every(count: usize, max: usize) -> usize {
    if count <= max || max < 2 {
        1
    } else {
        count.div_ceil(max - 1).max(1)
    }
}

/// Shares over time (a fill rate per day) on a time axis: each point at `at` (0 = the window's start, 1 = its
/// end) with `labels` naming it in tooltips, y from 0 to 100%, the x axis labelled at `ticks` (same scale).
pub fn rate_lines(
    at: &[f64],
    labels: &[String],
    ticks: &[(f64, String)],
    series: &[Series],
    empty_message: &str,
) -> Markup {
    if at.is_empty() || series.iter().all(|s| s.values.is_empty()) {
        return empty(empty_message);
    }
    let x = |frac: f64| LEFT + plot_width() * frac.clamp(0.0, 1.0);
    let y = |share: f64| TOP + plot_height() * (1.0 - share.clamp(0.0, 1.0));
    html! {
        svg class="chart" viewBox={"0 0 " (n(WIDTH)) " " (n(HEIGHT))} role="img" aria-label="line chart" {
            rect class="plot-bg" x=(n(LEFT)) y=(n(TOP)) width=(n(plot_width())) height=(n(plot_height())) {}
            @for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
                line class="grid" x1=(n(LEFT)) x2=(n(WIDTH - RIGHT)) y1=(n(y(tick))) y2=(n(y(tick))) {}
                text class="axis" x=(n(LEFT - 6.0)) y=(n(y(tick) + 4.0)) text-anchor="end" { (n(tick * 100.0)) "%" }
            }
            @for (frac, label) in ticks {
                // Labels at the ends are anchored inwards, so they stay inside the picture.
                @let anchor = if *frac <= 0.02 { "start" } else if *frac >= 0.98 { "end" } else { "middle" };
                line class="tick" x1=(n(x(*frac))) x2=(n(x(*frac))) y1=(n(HEIGHT - BOTTOM)) y2=(n(HEIGHT - BOTTOM + 4.0)) {}
                text class="axis" x=(n(x(*frac))) y=(n(HEIGHT - BOTTOM + 18.0)) text-anchor=(anchor) { (label) }
            }
            @for s in series {
                @let points: Vec<String> = s.values.iter().zip(at).map(|(v, a)| format!("{},{}", n(x(*a)), n(y(*v)))).collect();
                @if points.len() > 1 {
                    polyline class={"line " (s.class)} points=(points.join(" ")) {}
                }
                @for (i, (v, a)) in s.values.iter().zip(at).enumerate() {
                    circle class={"dot " (s.class)} cx=(n(x(*a))) cy=(n(y(*v))) r="3" {
                        title { (labels.get(i).map(String::as_str).unwrap_or("")) ": " (s.name) " " (crate::view::percent(*v)) }
                    }
                }
            }
        }
    }
}

/// One bar: its height, its label under it, the figure above it, its colour (a CSS colour) and a tooltip.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub value_label: String,
    pub colour: String,
    pub title: String,
}

/// Vertical bars from 0 up; an axis of nice steps on the left.
pub fn bars(bars: &[Bar], empty_message: &str) -> Markup {
    if bars.is_empty() || bars.iter().all(|b| b.value <= 0.0) {
        return empty(empty_message);
    }
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let (step, top) = nice_axis(max, 4);
    let y = |v: f64| TOP + plot_height() * (1.0 - (v / top).clamp(0.0, 1.0));
    let slot = plot_width() / bars.len() as f64;
    let width = (slot * 0.7).min(72.0);
    let every = label_every(bars.len(), 16);
    let ticks = (top / step).round() as u32;
    html! {
        svg class="chart" viewBox={"0 0 " (n(WIDTH)) " " (n(HEIGHT))} role="img" aria-label="bar chart" {
            rect class="plot-bg" x=(n(LEFT)) y=(n(TOP)) width=(n(plot_width())) height=(n(plot_height())) {}
            @for i in 0..=ticks {
                @let v = step * i as f64;
                line class="grid" x1=(n(LEFT)) x2=(n(WIDTH - RIGHT)) y1=(n(y(v))) y2=(n(y(v))) {}
                text class="axis" x=(n(LEFT - 6.0)) y=(n(y(v) + 4.0)) text-anchor="end" { (compact(v)) }
            }
            @for (i, bar) in bars.iter().enumerate() {
                @let cx = LEFT + slot * (i as f64 + 0.5);
                @let top_y = y(bar.value.max(0.0));
                g class="bar" {
                    title { (bar.title) }
                    rect x=(n(cx - width / 2.0)) y=(n(top_y)) width=(n(width)) height=(n(y(0.0) - top_y)) fill=(bar.colour) rx="2" {}
                    @if bar.value > 0.0 && bars.len() <= 24 {
                        text class="value" x=(n(cx)) y=(n(top_y - 5.0)) text-anchor="middle" { (bar.value_label) }
                    }
                    @if i % every == 0 || i + 1 == bars.len() {
                        text class="axis" x=(n(cx)) y=(n(HEIGHT - BOTTOM + 18.0)) text-anchor="middle" { (bar.label) }
                    }
                }
            }
        }
    }
}

/// One part of a stacked bar: units of it, its colour, a label inside when there is room, and a tooltip.
pub struct Segment {
    pub units: i64,
    pub colour: String,
    pub label: String,
    pub title: String,
}

/// A horizontal bar split into parts in proportion to their units (the queue's cover by supply).
pub fn stacked(segments: &[Segment]) -> Markup {
    const W: f64 = 1000.0;
    const H: f64 = 34.0;
    let total: i64 = segments.iter().map(|s| s.units.max(0)).sum();
    if total == 0 {
        return html! {};
    }
    let mut placed = Vec::new();
    let mut left = 0.0;
    for s in segments.iter().filter(|s| s.units > 0) {
        let w = W * s.units as f64 / total as f64;
        placed.push((left, w, s));
        left += w;
    }
    html! {
        svg class="stacked" viewBox={"0 0 " (n(W)) " " (n(H))} role="img" aria-label="coverage" {
            @for (left, w, s) in placed {
                g {
                    title { (s.title) }
                    rect x=(n(left)) y="0" width=(n(w)) height=(n(H)) fill=(s.colour) {}
                    // Roughly 9 units of width per character at this scale.
                    @if w > 9.0 * s.label.chars().count() as f64 + 12.0 {
                        text class="seg" x=(n(left + w / 2.0)) y=(n(H / 2.0 + 5.0)) text-anchor="middle" { (s.label) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(label: &str, value: f64) -> Bar {
        Bar {
            label: label.into(),
            value,
            value_label: n(value),
            colour: "#123456".into(),
            title: format!("{label}: {value}"),
        }
    }

    /// The numbers of attribute `name` in `svg`, in order.
    fn attr(svg: &str, element: &str, name: &str) -> Vec<f64> {
        svg.split(&format!("<{element} "))
            .skip(1)
            .filter_map(|rest| {
                let rest = &rest[..rest.find('>')?];
                let start = rest
                    .find(&format!(" {name}=\""))
                    .or_else(|| rest.starts_with(&format!("{name}=\"")).then_some(0))?;
                let value = rest[start..].split('"').nth(1)?;
                value.parse().ok()
            })
            .collect()
    }

    #[test]
    fn axes_step_in_ones_twos_and_fives() {
        assert_eq!(nice_axis(7.0, 4), (2.0, 8.0));
        assert_eq!(nice_axis(100.0, 4), (50.0, 100.0));
        assert_eq!(nice_axis(101.0, 4), (50.0, 150.0));
        assert_eq!(nice_axis(3.0, 4), (1.0, 3.0));
        assert_eq!(nice_axis(0.0, 4), (1.0, 4.0));
        assert_eq!(nice_axis(1234.0, 4), (500.0, 1500.0));
        assert_eq!(compact(12_500.0), "12.5k");
        assert_eq!(compact(950.0), "950");
    }

    #[test]
    fn bars_are_as_tall_as_their_values() {
        let svg = bars(&[bar("a", 2.0), bar("b", 4.0), bar("c", 0.0)], "none").into_string();
        let heights = attr(&svg, "rect", "height");
        // The plot background first, then one rect per bar.
        assert_eq!(heights.len(), 4, "{svg}");
        let (a, b, c) = (heights[1], heights[2], heights[3]);
        assert!((b - 2.0 * a).abs() < 0.2, "{a} {b}");
        assert_eq!(c, 0.0);
        // The tallest bar reaches the axis top (4 is a nice top).
        assert!((b - plot_height()).abs() < 0.2, "{b}");
        assert!(svg.contains("<title>b: 4</title>"), "{svg}");
    }

    #[test]
    fn nothing_to_draw_says_so() {
        let svg = bars(&[bar("a", 0.0)], "No lost demand").into_string();
        assert!(
            svg.contains("No lost demand") && !svg.contains("class=\"bar\""),
            "{svg}"
        );
        let svg = rate_lines(&[], &[], &[], &[], "No orders").into_string();
        assert!(svg.contains("No orders"));
    }

    #[test]
    fn labels_are_escaped() {
        let svg = bars(&[bar("<script>x</script>", 1.0)], "none").into_string();
        assert!(
            !svg.contains("<script>") && svg.contains("&lt;script&gt;"),
            "{svg}"
        );
    }

    #[test]
    fn a_line_runs_through_its_points_from_0_to_100_percent_at_their_times() {
        let labels: Vec<String> = ["2026-11-01", "2026-11-02", "2026-11-11"]
            .map(String::from)
            .to_vec();
        let ticks = vec![(0.0, "11-01".to_string()), (1.0, "11-11".to_string())];
        let series = [Series {
            name: "line fill rate",
            class: "s1",
            values: vec![0.0, 0.5, 1.0],
        }];
        let svg = rate_lines(&[0.0, 0.1, 1.0], &labels, &ticks, &series, "none").into_string();
        let points = svg
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let xy: Vec<(f64, f64)> = points
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        let ys: Vec<f64> = xy.iter().map(|p| p.1).collect();
        assert_eq!(
            ys,
            vec![TOP + plot_height(), TOP + plot_height() / 2.0, TOP]
        );
        // A day a tenth into the window is a tenth along the axis, not a third.
        assert!(
            (xy[1].0 - (LEFT + plot_width() * 0.1)).abs() < 0.1,
            "{xy:?}"
        );
        assert_eq!(attr(&svg, "circle", "cy").len(), 3);
        assert!(svg.contains(">11-11<") && svg.contains("100%"), "{svg}");
        assert!(svg.contains("2026-11-02: line fill rate 50.0%"), "{svg}");
        // The last tick's label is anchored inwards.
        assert!(svg.contains("text-anchor=\"end\">11-11"), "{svg}");
        // One day: a dot, no line.
        let one = Series {
            name: "x",
            class: "s1",
            values: vec![0.3],
        };
        let svg = rate_lines(&[0.5], &labels[..1], &ticks, &[one], "none").into_string();
        assert!(!svg.contains("polyline") && svg.contains("circle"));
    }

    #[test]
    fn at_most_a_few_x_labels_show_first_and_last_included() {
        assert_eq!(label_every(5, 8), 1);
        assert_eq!(label_every(30, 8), 5);
        let shown: Vec<usize> = (0..30)
            .filter(|i| i % label_every(30, 8) == 0 || *i == 29)
            .collect();
        assert!(shown.len() <= 8, "{shown:?}");
    }

    #[test]
    fn a_stacked_bar_splits_in_proportion() {
        let seg = |units, label: &str| Segment {
            units,
            colour: "#000".into(),
            label: label.into(),
            title: label.into(),
        };
        let svg = stacked(&[seg(30, "PO-1"), seg(10, "none"), seg(0, "skipped")]).into_string();
        assert_eq!(attr(&svg, "rect", "width"), vec![750.0, 250.0]);
        assert!(!svg.contains("skipped"));
        assert_eq!(stacked(&[seg(0, "x")]).into_string(), "");
    }
}
