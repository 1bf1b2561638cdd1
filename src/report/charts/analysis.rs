//! Charts of the sign-off tools: the overhead spectrum (B − A at each percentile with its
//! 95 % band) and the capacity curve (rate against p99 and against detection). They take
//! their numbers from `analysis` results and are written beside overhead.json /
//! capacity.json.

use super::spectrum::{percentile_label, x_of};
use super::*;
use crate::analysis::capacity::CapacityReport;
use crate::analysis::stats::QuantileDiff;

pub struct OverheadChart {
    pub a: String,
    pub b: String,
    pub points: Vec<QuantileDiff>,
}

impl Chart for OverheadChart {
    fn name(&self) -> &'static str {
        "overhead"
    }
    fn title(&self) -> String {
        "Added latency by percentile".into()
    }
    fn caption(&self) -> String {
        format!(
            "{} − {} at each percentile (ms), with the 95 % bootstrap interval as a band; x is log-scaled in 1/(1-q).",
            self.b, self.a
        )
    }
    fn size(&self) -> (u32, u32) {
        (WIDTH, 460)
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let sub = format!(
            "{} − {} (ms) · band: 95 % bootstrap interval",
            self.b, self.a
        );
        let top = heading(root, "Added latency by percentile", &sub)?;
        if self.points.is_empty() {
            text(
                root,
                "no latencies to compare",
                &font(13.0, &MUTED, HPos::Left, VPos::Top),
                (12, top + 8),
            )?;
            return Ok(());
        }
        let max_x = self
            .points
            .iter()
            .map(|p| x_of(p.q))
            .fold(1.0f64, f64::max)
            .ceil();
        let lo = self
            .points
            .iter()
            .map(|p| p.low.min(p.diff))
            .fold(0.0f64, f64::min);
        let hi = self
            .points
            .iter()
            .map(|p| p.high.max(p.diff))
            .fold(0.0f64, f64::max);
        let pad = ((hi - lo) * 0.08).max(0.01);
        let area = root.margin(top, 8, 8, 44);
        let mut chart = ChartBuilder::on(&area)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..max_x, (lo - pad)..(hi + pad))?;
        let xf = |v: &f64| percentile_label(*v);
        let yf = |v: &f64| format!("{v:+.2}");
        chart
            .configure_mesh()
            .x_labels(max_x as usize + 1)
            .x_label_formatter(&xf)
            .y_label_formatter(&yf)
            .y_labels(8)
            .x_desc("percentile")
            .y_desc("added latency (ms)")
            .label_style(font(13.0, &INK, HPos::Center, VPos::Top))
            .axis_desc_style(font(13.0, &MUTED, HPos::Center, VPos::Top))
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .draw()?;
        let mut band: Vec<(f64, f64)> = self.points.iter().map(|p| (x_of(p.q), p.high)).collect();
        band.extend(self.points.iter().rev().map(|p| (x_of(p.q), p.low)));
        chart.draw_series(std::iter::once(Polygon::new(
            band,
            ATTACK_LIGHT.mix(0.35).filled(),
        )))?;
        chart.draw_series(LineSeries::new(
            [(0.0, 0.0), (max_x, 0.0)],
            MUTED.stroke_width(1),
        ))?;
        chart.draw_series(LineSeries::new(
            self.points.iter().map(|p| (x_of(p.q), p.diff)),
            ATTACK.stroke_width(3),
        ))?;
        chart.draw_series(
            self.points
                .iter()
                .map(|p| Circle::new((x_of(p.q), p.diff), 4, ATTACK.filled())),
        )?;
        Ok(())
    }
}

pub struct CapacityChart {
    pub report: CapacityReport,
    /// The SLO's p99 bound in ms, drawn as a line when the SLO has one.
    pub p99_bound_ms: Option<f64>,
}

impl Chart for CapacityChart {
    fn name(&self) -> &'static str {
        "capacity"
    }
    fn title(&self) -> String {
        "Capacity: p99 and detection against rate".into()
    }
    fn caption(&self) -> String {
        "Each point is one bounded step of the search (green: SLO met, red: missed). A WAF that fails open shows as detection falling at high rates.".into()
    }
    fn size(&self) -> (u32, u32) {
        (WIDTH, 520)
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let sub = format!(
            "SLO {} · sustainable: {}",
            self.report.slo,
            self.report
                .sustainable_rate
                .map(|r| format!("{r:.0} req/s"))
                .unwrap_or_else(|| "none".into())
        );
        let top = heading(root, "Capacity: p99 and detection against rate", &sub)?;
        let mut steps: Vec<_> = self.report.steps.iter().collect();
        steps.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        if steps.is_empty() {
            text(
                root,
                "no steps ran",
                &font(13.0, &MUTED, HPos::Left, VPos::Top),
                (12, top + 8),
            )?;
            return Ok(());
        }
        let max_rate = steps.iter().map(|s| s.rate).fold(1.0f64, f64::max) * 1.05;
        let max_p99 = steps
            .iter()
            .map(|s| s.p99_ms)
            .chain(self.p99_bound_ms)
            .fold(0.1f64, f64::max)
            * 1.1;
        let area = root.margin(top, 8, 8, 8);
        let (left, right) = area.split_horizontally(WIDTH as i32 / 2);
        let color = |ok: bool| if ok { BLOCKED } else { PASSED };
        let xf = |v: &f64| format!("{v:.0}");
        // Left: p99 against rate.
        let mut c = ChartBuilder::on(&left.margin(0, 12, 0, 0))
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..max_rate, 0f64..max_p99)?;
        let yf = |v: &f64| super::spectrum::axis_ms(*v);
        c.configure_mesh()
            .x_labels(6)
            .x_label_formatter(&xf)
            .y_label_formatter(&yf)
            .x_desc("requested rate (req/s)")
            .y_desc("p99 latency (ms)")
            .label_style(font(13.0, &INK, HPos::Center, VPos::Top))
            .axis_desc_style(font(13.0, &MUTED, HPos::Center, VPos::Top))
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .draw()?;
        if let Some(b) = self.p99_bound_ms {
            c.draw_series(LineSeries::new(
                [(0.0, b), (max_rate, b)],
                PASSED.mix(0.5).stroke_width(1),
            ))?;
        }
        c.draw_series(LineSeries::new(
            steps.iter().map(|s| (s.rate, s.p99_ms)),
            INK.stroke_width(2),
        ))?;
        c.draw_series(
            steps
                .iter()
                .map(|s| Circle::new((s.rate, s.p99_ms), 5, color(s.ok).filled())),
        )?;
        // Right: detection against rate.
        let mut d = ChartBuilder::on(&right.margin(0, 0, 12, 0))
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..max_rate, 0f64..100.0)?;
        let pf = |v: &f64| format!("{v:.0} %");
        d.configure_mesh()
            .x_labels(6)
            .x_label_formatter(&xf)
            .y_label_formatter(&pf)
            .x_desc("requested rate (req/s)")
            .y_desc("detection (attacks blocked)")
            .label_style(font(13.0, &INK, HPos::Center, VPos::Top))
            .axis_desc_style(font(13.0, &MUTED, HPos::Center, VPos::Top))
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .draw()?;
        let det: Vec<(f64, f64, bool)> = steps
            .iter()
            .filter_map(|s| s.detection.map(|x| (s.rate, x * 100.0, s.ok)))
            .collect();
        d.draw_series(LineSeries::new(
            det.iter().map(|p| (p.0, p.1)),
            ATTACK.stroke_width(2),
        ))?;
        d.draw_series(
            det.iter()
                .map(|p| Circle::new((p.0, p.1), 5, color(p.2).filled())),
        )?;
        Ok(())
    }
}
