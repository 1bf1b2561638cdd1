//! Chart 4: latency and throughput over time, per second of the run: p50/p99 latency
//! above; sent, completed and failed requests (and ext_proc 500s) below. Warm-up, stalls
//! and fail-open moments show up here, not in whole-run percentiles.

use super::*;
use crate::report::charts::spectrum::axis_ms;
use crate::results::SecondSummary;

/// A throughput line: name, colour and the value it takes from a second.
type Line = (&'static str, RGBColor, fn(&SecondSummary) -> u64);

pub struct TimelineChart {
    pub seconds: Vec<SecondSummary>,
}

impl TimelineChart {
    pub fn new(data: &ReportData) -> Self {
        TimelineChart {
            seconds: data.series.clone(),
        }
    }
}

/// Second labels that never collide: whole seconds only.
fn seconds_label(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-6 {
        format!("{:.0}", v)
    } else {
        String::new()
    }
}

fn count_label(v: &f64) -> String {
    if (v - v.round()).abs() > 1e-6 {
        return String::new();
    }
    if *v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}

impl Chart for TimelineChart {
    fn name(&self) -> &'static str {
        "timeline"
    }
    fn title(&self) -> String {
        "Latency and throughput over time".into()
    }
    fn caption(&self) -> String {
        "Per second of intended send time: p50 and p99 latency (top); requests sent and completed per second, failed requests and ext_proc 500s (bottom).".into()
    }
    fn size(&self) -> (u32, u32) {
        (WIDTH, 600)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let top = heading(
            root,
            "Latency and throughput over time",
            "per second of the run (by intended send time)",
        )?;
        if self.seconds.is_empty() {
            text(
                root,
                "no per-second data",
                &font(13.0, &MUTED, HPos::Left, VPos::Top),
                (12, top + 8),
            )?;
            return Ok(());
        }
        let area = root.margin(top, 4, 8, 16);
        let (upper, lower) = area.split_vertically(270);
        let n = self.seconds.len() as f64;
        let x_max = n.max(1.0);
        let x_labels = (self.seconds.len() + 1).min(12);
        let label_style = font(13.0, &INK, HPos::Center, VPos::Top);
        let desc_style = font(13.0, &MUTED, HPos::Center, VPos::Top);
        // Each second is drawn at its midpoint (t + 0.5).
        let mid = |s: &SecondSummary| s.t as f64 + 0.5;

        let max_ms = self
            .seconds
            .iter()
            .map(|s| s.p99_us.max(s.p50_us) as f64 / 1000.0)
            .fold(0.0f64, f64::max)
            .max(0.01)
            * 1.1;
        legend_right(
            &upper,
            &[("p50", ATTACK), ("p99", PASSED)],
            upper.dim_in_pixel().0 as i32 - 8,
            8,
        )?;
        let mut lat = ChartBuilder::on(&upper)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .margin_top(20)
            .margin_right(16)
            .margin_bottom(8)
            .build_cartesian_2d(0f64..x_max, 0f64..max_ms)?;
        let yf = |v: &f64| axis_ms(*v);
        lat.configure_mesh()
            .x_labels(x_labels)
            .x_label_formatter(&seconds_label)
            .y_label_formatter(&yf)
            .y_labels(6)
            .y_desc("latency (ms)")
            .label_style(label_style.clone())
            .axis_desc_style(desc_style.clone())
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .draw()?;
        let completed: Vec<&SecondSummary> = self.seconds.iter().filter(|s| s.sent > 0).collect();
        lat.draw_series(LineSeries::new(
            completed.iter().map(|s| (mid(s), s.p99_us as f64 / 1000.0)),
            PASSED.stroke_width(2),
        ))?;
        lat.draw_series(LineSeries::new(
            completed.iter().map(|s| (mid(s), s.p50_us as f64 / 1000.0)),
            ATTACK.stroke_width(2),
        ))?;

        let max_count = self
            .seconds
            .iter()
            .map(|s| s.sent.max(s.completed).max(s.failed + s.ext_proc_errors))
            .max()
            .unwrap_or(1)
            .max(1) as f64
            * 1.15;
        let all: Vec<&SecondSummary> = self.seconds.iter().collect();
        let ext_proc = all.iter().any(|s| s.ext_proc_errors > 0);
        let mut items = vec![
            ("sent", ATTACK_LIGHT),
            ("completed", BLOCKED),
            ("failed", FAILED),
        ];
        if ext_proc {
            items.push(("ext_proc 500s", PASSED));
        }
        legend_right(&lower, &items, lower.dim_in_pixel().0 as i32 - 8, 8)?;
        let mut thr = ChartBuilder::on(&lower)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .margin_top(20)
            .margin_right(16)
            .build_cartesian_2d(0f64..x_max, 0f64..max_count)?;
        thr.configure_mesh()
            .x_labels(x_labels)
            .x_label_formatter(&seconds_label)
            .y_label_formatter(&count_label)
            .y_labels(6)
            .x_desc("second of the run")
            .y_desc("requests / s")
            .label_style(label_style)
            .axis_desc_style(desc_style)
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .draw()?;
        // "sent" is drawn wide and light underneath, so "completed" on top of it stays
        // visible where the two coincide (a healthy run).
        let series: [Line; 4] = [
            ("sent", ATTACK_LIGHT, |s| s.sent),
            ("completed", BLOCKED, |s| s.completed),
            ("failed", FAILED, |s| s.failed),
            ("ext_proc 500s", PASSED, |s| s.ext_proc_errors),
        ];
        for (name, color, value) in series {
            if name == "ext_proc 500s" && !ext_proc {
                continue;
            }
            let width = if name == "sent" { 5 } else { 2 };
            thr.draw_series(LineSeries::new(
                all.iter().map(|s| (mid(s), value(s) as f64)),
                color.stroke_width(width),
            ))?;
        }
        Ok(())
    }
}
