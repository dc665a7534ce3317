//! Latency percentile plots as one self-contained HTML file with inline SVG (no scripts,
//! no external assets): one chart per operation, one line per target, the x axis the
//! percentile on the usual "nines" scale (log of 1 / (1 - p)), the y axis latency (log).

use hdrhistogram::Histogram;

const PERCENTILES: [f64; 11] = [0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999];
const COLORS: [&str; 4] = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"];
const W: f64 = 420.0;
const H: f64 = 240.0;
const PAD: f64 = 48.0;

/// One chart: a title and (series name, histogram in microseconds).
pub struct Chart<'a> {
    pub title: String,
    pub series: Vec<(&'a str, &'a Histogram<u64>)>,
}

fn nines(p: f64) -> f64 {
    (1.0 / (1.0 - p / 100.0)).log10()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn svg(chart: &Chart) -> String {
    let max_x = nines(*PERCENTILES.last().unwrap_or(&99.9));
    let lat: Vec<Vec<f64>> = chart
        .series
        .iter()
        .map(|(_, h)| PERCENTILES.iter().map(|&p| h.value_at_percentile(p).max(1) as f64).collect())
        .collect();
    let (lo, hi) = lat.iter().flatten().fold((f64::MAX, 1.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let (lo, hi) = (lo.min(hi).log10().floor(), hi.log10().ceil().max(lo.log10().floor() + 1.0));
    let x = |p: f64| PAD + nines(p) / max_x * (W - 2.0 * PAD);
    let y = |v: f64| H - PAD + (lo - v.log10()) / (hi - lo) * (H - 2.0 * PAD);
    let mut s = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{W}' height='{H}' font-family='sans-serif' font-size='10'>\
         <text x='{}' y='14' text-anchor='middle' font-size='12'>{}</text>",
        W / 2.0,
        escape(&chart.title)
    );
    s += &format!(
        "<rect x='{PAD}' y='{PAD}' width='{}' height='{}' fill='none' stroke='#999'/>",
        W - 2.0 * PAD,
        H - 2.0 * PAD
    );
    for e in (lo as i64)..=(hi as i64) {
        let v = 10f64.powi(e as i32);
        let label = if v >= 1000.0 { format!("{} ms", v / 1000.0) } else { format!("{v} µs") };
        let (gx, gy) = (W - PAD, y(v));
        s += &format!(
            "<line x1='{PAD}' x2='{gx}' y1='{gy}' y2='{gy}' stroke='#eee'/>\
             <text x='{}' y='{}' text-anchor='end'>{label}</text>",
            PAD - 4.0,
            gy + 3.0
        );
    }
    for p in [0.0, 90.0, 99.0, 99.9, 99.99, 99.999] {
        s += &format!("<text x='{}' y='{}' text-anchor='middle'>p{p}</text>", x(p), H - PAD + 14.0);
    }
    for (i, ((name, _), ys)) in chart.series.iter().zip(&lat).enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<String> =
            PERCENTILES.iter().zip(ys).map(|(&p, &v)| format!("{:.1},{:.1}", x(p), y(v))).collect();
        s += &format!("<polyline fill='none' stroke='{color}' stroke-width='2' points='{}'/>", points.join(" "));
        s += &format!(
            "<text x='{}' y='{}' fill='{color}'>{}</text>",
            PAD + 6.0,
            PAD + 12.0 + 12.0 * i as f64,
            escape(name)
        );
    }
    s + "</svg>"
}

/// The whole HTML page: a heading, a preformatted summary, then the charts.
pub fn html(title: &str, summary: &str, charts: &[Chart]) -> String {
    let mut page = format!(
        "<!doctype html><html><head><meta charset='utf-8'><title>{0}</title></head><body>\
         <h1>{0}</h1><pre>{1}</pre><div>",
        escape(title),
        escape(summary)
    );
    for c in charts {
        page += &svg(c);
        page += "\n";
    }
    page + "</div></body></html>\n"
}
