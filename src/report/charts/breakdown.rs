//! Chart 5: what happened to the requests: one bar per class (blocked, passed,
//! unresolved, failed, unsendable, and ext_proc 500s), and beside it the HTTP statuses and
//! transport errors behind them.

use super::*;
use crate::report::escape;
use crate::report::model::{breakdown, BreakdownView};

const ROW: i32 = 26;
const TOP: i32 = 92;
/// Status rows drawn; the rest are summed into one "other" row.
const MAX_STATUS_ROWS: usize = 8;

pub struct BreakdownChart {
    pub view: BreakdownView,
}

impl BreakdownChart {
    pub fn new(data: &ReportData) -> Self {
        BreakdownChart {
            view: breakdown(&data.summary),
        }
    }

    fn status_rows(&self) -> Vec<(String, u64)> {
        let mut rows: Vec<(String, u64)> = self
            .view
            .statuses
            .iter()
            .take(MAX_STATUS_ROWS)
            .map(|(k, v)| (escape::label(k, 40), *v))
            .collect();
        let rest: u64 = self
            .view
            .statuses
            .iter()
            .skip(MAX_STATUS_ROWS)
            .map(|(_, v)| v)
            .sum();
        if rest > 0 {
            rows.push((
                format!("{} others", self.view.statuses.len() - MAX_STATUS_ROWS),
                rest,
            ));
        }
        rows
    }
}

fn class_color(name: &str) -> RGBColor {
    match name {
        "blocked" => BLOCKED,
        "passed" => PASSED,
        "unresolved" => OTHER,
        "failed" => FAILED,
        "ext_proc 500s" => RGBColor(0xe6, 0x51, 0x00),
        _ => MUTED,
    }
}

/// Horizontal count bars with "count (share)" at their end.
fn bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    rows: &[(String, u64, RGBColor)],
    total: u64,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (w, _) = area.dim_in_pixel();
    text(
        area,
        title,
        &font(15.0, &INK, HPos::Left, VPos::Top),
        (8, 62),
    )?;
    let label_style = font(13.0, &INK, HPos::Left, VPos::Center);
    let value_style = font(12.5, &INK, HPos::Left, VPos::Center);
    let label_w = rows
        .iter()
        .map(|(l, _, _)| text_width(area, l, &label_style))
        .max()
        .unwrap_or(80) as i32
        + 16;
    let values: Vec<String> = rows
        .iter()
        .map(|(_, n, _)| {
            let share = if total > 0 {
                *n as f64 * 100.0 / total as f64
            } else {
                0.0
            };
            format!("{n}  ({share:.1} %)")
        })
        .collect();
    let value_w = values
        .iter()
        .map(|v| text_width(area, v, &value_style))
        .max()
        .unwrap_or(80) as i32
        + 12;
    let x0 = 8 + label_w;
    let x1 = (w as i32 - value_w - 8).max(x0 + 40);
    let max = rows.iter().map(|(_, n, _)| *n).max().unwrap_or(0).max(1) as f64;
    for (i, ((label, n, color), value)) in rows.iter().zip(&values).enumerate() {
        let cy = TOP + ROW * i as i32 + ROW / 2;
        text(area, label, &label_style, (8, cy))?;
        let end = x0 + ((x1 - x0) as f64 * (*n as f64 / max)).round() as i32;
        if *n > 0 {
            area.draw(&Rectangle::new(
                [(x0, cy - 8), (end.max(x0 + 2), cy + 8)],
                color.filled(),
            ))?;
        }
        area.draw(&PathElement::new(
            vec![(x0, cy - 11), (x0, cy + 11)],
            GRID.stroke_width(1),
        ))?;
        text(area, value, &value_style, (end.max(x0) + 8, cy))?;
    }
    Ok(())
}

impl Chart for BreakdownChart {
    fn name(&self) -> &'static str {
        "breakdown"
    }
    fn title(&self) -> String {
        "Status and class breakdown".into()
    }
    fn caption(&self) -> String {
        "Every planned request has exactly one class; ext_proc 500s (Envoy's external-processing error responses) are counted within their class and shown separately. Right: HTTP statuses and transport errors.".into()
    }
    fn size(&self) -> (u32, u32) {
        let rows = self.view.classes.len().max(self.status_rows().len()).max(1) as i32;
        (WIDTH, (TOP + ROW * rows + 24) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        heading(
            root,
            "Status and class breakdown",
            &format!(
                "{} requests; share of all requests in brackets",
                self.view.total
            ),
        )?;
        let (left, right) = root.split_horizontally(WIDTH as i32 / 2);
        let classes: Vec<(String, u64, RGBColor)> = self
            .view
            .classes
            .iter()
            .map(|(k, v)| (k.clone(), *v, class_color(k)))
            .collect();
        bars(&left, "By class", &classes, self.view.total)?;
        let statuses: Vec<(String, u64, RGBColor)> = self
            .status_rows()
            .into_iter()
            .map(|(k, v)| {
                // Which status means "blocked" is the profile's rule, not the chart's:
                // statuses stay neutral, transport errors stand out.
                let color = if k.starts_with("error") {
                    FAILED
                } else {
                    RGBColor(0x54, 0x6e, 0x7a)
                };
                (k, v, color)
            })
            .collect();
        if statuses.is_empty() {
            text(
                &right,
                "no responses",
                &font(13.0, &MUTED, HPos::Left, VPos::Top),
                (8, TOP),
            )?;
        } else {
            bars(
                &right,
                "HTTP status / transport error",
                &statuses,
                self.view.total,
            )?;
        }
        Ok(())
    }
}
