//! A hand-written SVG of a run, second by second: throughput on top
//! (requests/s and iterations/s), latency below (p50 and p99 of every
//! request answered in that second).

use std::fmt::Write as _;

use super::report::Report;

const W: f64 = 900.0;
const PANEL_H: f64 = 220.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 56.0;
const GAP: f64 = 60.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if v <= m * p {
            return m * p;
        }
    }
    10.0 * p
}

struct Panel<'a> {
    y0: f64,
    title: &'a str,
    unit: &'a str,
    series: Vec<(&'a str, &'a str, Vec<f64>)>,
}

fn panel(out: &mut String, p: &Panel<'_>, seconds: usize) {
    let plot_w = W - LEFT - RIGHT;
    let max = nice_max(
        p.series
            .iter()
            .flat_map(|(_, _, v)| v.iter().copied())
            .fold(0.0, f64::max),
    );
    let x = |i: usize| LEFT + plot_w * (i as f64 + 0.5) / seconds.max(1) as f64;
    let y = |v: f64| p.y0 + PANEL_H - PANEL_H * (v / max).clamp(0.0, 1.0);
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{:.1}" font-size="14" font-weight="bold">{}</text>"#,
        p.y0 - 8.0,
        escape(p.title)
    );
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{:.1}" width="{plot_w:.1}" height="{PANEL_H}" fill="none" stroke="#999"/>"##,
        p.y0
    );
    for i in 0..=4 {
        let v = max * i as f64 / 4.0;
        let yy = y(v);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{} {}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            trim(v),
            escape(p.unit)
        );
    }
    let step = (seconds / 10).max(1);
    for i in (0..seconds).step_by(step) {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{i}s</text>"#,
            x(i),
            p.y0 + PANEL_H + 14.0
        );
    }
    for (n, (name, color, values)) in p.series.iter().enumerate() {
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        let lx = LEFT + 10.0 + 160.0 * n as f64;
        let _ = writeln!(
            out,
            r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="3" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
            p.y0 + 12.0,
            lx + 16.0,
            p.y0 + 16.0,
            escape(name)
        );
    }
}

fn trim(v: f64) -> String {
    if v >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

pub fn svg(report: &Report) -> String {
    let seconds = report.timeline.len().max(1);
    let h = TOP + 2.0 * PANEL_H + GAP + 40.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = format!(
        "hanwha-delivery load: {:?}, concurrency {}{}, {:.1} s, {:.1} req/s, {} errors",
        report.scenario,
        report.concurrency,
        report
            .rate
            .map(|r| format!(", rate {r}/s"))
            .unwrap_or_default(),
        report.elapsed_s,
        report.requests_per_s,
        report.error_total
    );
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="18" font-size="13">{}</text>"#,
        escape(&title)
    );
    let t = &report.timeline;
    panel(
        &mut out,
        &Panel {
            y0: TOP,
            title: "throughput",
            unit: "/s",
            series: vec![
                (
                    "requests/s",
                    "#1f77b4",
                    t.iter().map(|p| p.requests as f64).collect(),
                ),
                (
                    "iterations/s",
                    "#2ca02c",
                    t.iter().map(|p| p.iterations as f64).collect(),
                ),
                (
                    "errors/s",
                    "#d62728",
                    t.iter().map(|p| p.errors as f64).collect(),
                ),
            ],
        },
        seconds,
    );
    panel(
        &mut out,
        &Panel {
            y0: TOP + PANEL_H + GAP,
            title: "latency of requests answered in each second",
            unit: "ms",
            series: vec![
                ("p50", "#1f77b4", t.iter().map(|p| p.p50_ms).collect()),
                ("p99", "#ff7f0e", t.iter().map(|p| p.p99_ms).collect()),
            ],
        },
        seconds,
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.2), 5.0);
        assert_eq!(nice_max(120.0), 200.0);
        assert_eq!(nice_max(1000.0), 1000.0);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("<a&b>"), "&lt;a&amp;b&gt;");
    }
}
