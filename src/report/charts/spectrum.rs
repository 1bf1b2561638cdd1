//! Chart 3: the latency percentile spectrum, as HdrHistogram plots draw it: latency
//! against percentile on a log-scaled 1/(1-q) axis, so p99, p99.9 and p99.99 get as much
//! room as the median. One line per class.

use super::*;
use crate::report::model::{spectra, SpectrumLine};

pub struct SpectrumChart {
    /// One line per class, "all" first.
    pub lines: Vec<SpectrumLine>,
}

impl SpectrumChart {
    pub fn new(data: &ReportData) -> Self {
        SpectrumChart {
            lines: spectra(data),
        }
    }
}

/// Colour of a class's line.
pub fn class_color(class: &str) -> RGBColor {
    match class {
        "blocked" => BLOCKED,
        "passed" => PASSED,
        "unresolved" => OTHER,
        "failed" => FAILED,
        _ => INK,
    }
}

/// Position on the x axis: log10(1/(1-q)), so p90 = 1, p99 = 2, p99.9 = 3 …
pub fn x_of(q: f64) -> f64 {
    (1.0 / (1.0 - q).max(1e-9)).log10()
}

/// Tick label of a decade: 0 → "p0", 1 → "p90", 3 → "p99.9".
pub fn percentile_label(decade: f64) -> String {
    let d = decade.round() as i32;
    if (decade - d as f64).abs() > 1e-6 || d < 0 {
        return String::new();
    }
    if d == 0 {
        return "p0".into();
    }
    let nines = "9".repeat(d as usize);
    match d {
        1 => "p90".into(),
        2 => "p99".into(),
        _ => format!("p99.{}", &nines[2..]),
    }
}

/// Milliseconds with precision that suits the axis range.
pub fn axis_ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

impl Chart for SpectrumChart {
    fn name(&self) -> &'static str {
        "spectrum"
    }
    fn title(&self) -> String {
        "Latency percentile spectrum".into()
    }
    fn caption(&self) -> String {
        "Latency from the intended send time (so queueing behind a slow WAF is included) at each percentile; the x axis is log-scaled in 1/(1-q), as in HdrHistogram plots.".into()
    }
    fn size(&self) -> (u32, u32) {
        (WIDTH, 500)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let top = heading(
            root,
            "Latency percentile spectrum",
            "latency from intended send, by class · x: percentile on a log 1/(1-q) axis",
        )?;
        if self.lines.is_empty() {
            text(
                root,
                "no latencies recorded",
                &font(13.0, &MUTED, HPos::Left, VPos::Top),
                (12, top + 8),
            )?;
            return Ok(());
        }
        let max_x = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| x_of(p.quantile)))
            .fold(1.0f64, f64::max)
            .ceil()
            .clamp(1.0, 5.0);
        let max_ms = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.latency_us as f64 / 1000.0))
            .fold(0.0f64, f64::max)
            .max(0.01)
            * 1.08;
        let names: Vec<String> = self
            .lines
            .iter()
            .map(|l| format!("{} ({} requests)", l.class, l.count))
            .collect();
        let items: Vec<(&str, RGBColor)> = self
            .lines
            .iter()
            .zip(&names)
            .map(|(l, n)| (n.as_str(), class_color(&l.class)))
            .collect();
        // The legend goes beside the title when it fits there, else on a row of its own.
        let title_w = text_width(
            root,
            "Latency percentile spectrum",
            &font(18.0, &INK, HPos::Left, VPos::Top),
        );
        let room = WIDTH as i32 - 16 - (12 + title_w as i32 + 40);
        let top = if legend_width(root, &items) <= room {
            legend_right(root, &items, WIDTH as i32 - 16, 22)?;
            top
        } else {
            legend_right(root, &items, WIDTH as i32 - 16, top + 6)?;
            top + 22
        };
        let area = root.margin(top, 8, 8, 44);
        let mut chart = ChartBuilder::on(&area)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..max_x, 0f64..max_ms)?;
        let label_style = font(13.0, &INK, HPos::Center, VPos::Top);
        let xf = |v: &f64| percentile_label(*v);
        let yf = |v: &f64| axis_ms(*v);
        chart
            .configure_mesh()
            .x_labels(max_x as usize + 1)
            .x_label_formatter(&xf)
            .y_label_formatter(&yf)
            .y_labels(8)
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .label_style(label_style)
            .axis_desc_style(font(13.0, &MUTED, HPos::Center, VPos::Top))
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .draw()?;
        for line in &self.lines {
            let color = class_color(&line.class);
            let width = if line.class == "all" { 3 } else { 2 };
            chart.draw_series(LineSeries::new(
                line.points
                    .iter()
                    .map(|p| (x_of(p.quantile), p.latency_us as f64 / 1000.0)),
                color.stroke_width(width),
            ))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decades_are_labelled_as_percentiles() {
        assert_eq!(percentile_label(0.0), "p0");
        assert_eq!(percentile_label(1.0), "p90");
        assert_eq!(percentile_label(2.0), "p99");
        assert_eq!(percentile_label(3.0), "p99.9");
        assert_eq!(percentile_label(5.0), "p99.999");
        assert_eq!(percentile_label(1.5), "");
        assert!((x_of(0.999) - 3.0).abs() < 1e-9);
    }
}
