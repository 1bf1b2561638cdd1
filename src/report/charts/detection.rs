//! Chart 1: detection rate by set and by case as horizontal bars with 95 % Wilson
//! whiskers and counts; beside it, the false-positive rate of the benign sets.

use super::*;
use crate::report::escape;
use crate::report::model::{detection, percent, Proportion, RateRow, SetRows};

/// Case rows shown per panel; the worst cases are kept when a corpus has more.
pub const MAX_CASE_ROWS: usize = 60;
const ROW: i32 = 22;
const TOP: i32 = 92;

/// One bar: a set (level 0) or a case of it (level 1).
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    pub label: String,
    pub level: u8,
    pub blocked: u64,
    pub passed: u64,
    pub rate: Option<Proportion>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    pub title: String,
    pub bars: Vec<Bar>,
    /// Case rows left out to keep the chart readable.
    pub hidden_cases: usize,
    /// Right end of the rate axis (1.0 = 100 %). False-positive rates are small, so the
    /// benign panel zooms to the smallest of 1, 2, 5, 10, 20, 50, 100 % that holds every
    /// interval; the panel title says so.
    pub axis_max: f64,
}

/// The smallest "nice" axis end that holds `v`.
pub fn nice_axis(v: f64) -> f64 {
    [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
        .into_iter()
        .find(|&m| v <= m + 1e-12)
        .unwrap_or(1.0)
}

/// Tick label of an axis value: "25 %", "2.5 %", "0.25 %".
pub fn tick_label(v: f64) -> String {
    let pct = v * 100.0;
    let text = if (pct - pct.round()).abs() < 1e-9 {
        format!("{pct:.0}")
    } else if (pct * 10.0 - (pct * 10.0).round()).abs() < 1e-9 {
        format!("{pct:.1}")
    } else {
        format!("{pct:.2}")
    };
    format!("{text} %")
}

pub struct DetectionChart {
    pub attacks: Panel,
    pub benign: Panel,
}

fn bar(row: &RateRow, level: u8) -> Bar {
    Bar {
        label: escape::label(&row.name, 60),
        level,
        blocked: row.blocked,
        passed: row.passed,
        rate: row.rate,
    }
}

/// Sets with their cases; when there are too many cases, keeps the `MAX_CASE_ROWS`
/// worst (lowest detection for attacks, highest false-positive rate for benign sets).
fn panel(title: &str, sets: &[SetRows], worst_is_low: bool, zoom: bool) -> Panel {
    let total_cases: usize = sets.iter().map(|s| s.cases.len()).sum();
    let mut keep: Vec<(usize, usize)> = sets
        .iter()
        .enumerate()
        .flat_map(|(si, s)| (0..s.cases.len()).map(move |ci| (si, ci)))
        .collect();
    if total_cases > MAX_CASE_ROWS {
        let score = |&(si, ci): &(usize, usize)| {
            let r = sets[si].cases[ci].rate.map(|p| p.rate).unwrap_or(0.5);
            if worst_is_low {
                r
            } else {
                -r
            }
        };
        keep.sort_by(|a, b| score(a).total_cmp(&score(b)));
        keep.truncate(MAX_CASE_ROWS);
        keep.sort();
    }
    let mut bars = Vec::new();
    for (si, s) in sets.iter().enumerate() {
        bars.push(bar(&s.set, 0));
        for &(_, ci) in keep.iter().filter(|(k, _)| *k == si) {
            bars.push(bar(&s.cases[ci], 1));
        }
    }
    let axis_max = if zoom {
        nice_axis(
            bars.iter()
                .filter_map(|b| b.rate.map(|p| p.high))
                .fold(0.0, f64::max),
        )
    } else {
        1.0
    };
    let title = if axis_max < 1.0 {
        format!("{title} (axis 0–{})", tick_label(axis_max))
    } else {
        title.to_string()
    };
    Panel {
        title,
        bars,
        hidden_cases: total_cases - keep.len(),
        axis_max,
    }
}

impl DetectionChart {
    pub fn new(data: &ReportData) -> Self {
        let d = detection(&data.summary);
        DetectionChart {
            attacks: panel(
                "Attacks: detection rate (blocked ÷ resolved)",
                &d.attack_sets,
                true,
                false,
            ),
            benign: panel(
                "Benign traffic: false-positive rate",
                &d.benign_sets,
                false,
                true,
            ),
        }
    }

    fn rows(&self) -> usize {
        self.attacks.bars.len().max(self.benign.bars.len()).max(1)
    }
}

/// "95.0 %  [88.8–97.8]  95/100"
pub fn value_text(b: &Bar) -> String {
    match &b.rate {
        Some(p) => format!(
            "{}  [{:.1}–{:.1}]  {}/{}",
            percent(p.rate),
            p.low * 100.0,
            p.high * 100.0,
            short_count(p.successes),
            short_count(p.trials)
        ),
        None => "no resolved requests".to_string(),
    }
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    strong: RGBColor,
    light: RGBColor,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (w, h) = area.dim_in_pixel();
    let w = w as i32;
    let title_style = font(15.0, &INK, HPos::Left, VPos::Top);
    text(area, &panel.title, &title_style, (8, 62))?;
    let set_style = font(13.0, &INK, HPos::Left, VPos::Center);
    let case_style = font(12.5, &MUTED, HPos::Left, VPos::Center);
    let value_style = font(12.5, &INK, HPos::Left, VPos::Center);
    let tick_style = font(12.0, &MUTED, HPos::Center, VPos::Top);

    if panel.bars.is_empty() {
        text(
            area,
            "none in this run",
            &font(13.0, &MUTED, HPos::Left, VPos::Top),
            (8, TOP + 4),
        )?;
        return Ok(());
    }
    let value_w = panel
        .bars
        .iter()
        .map(|b| text_width(area, &value_text(b), &value_style))
        .max()
        .unwrap_or(100) as i32
        + 12;
    // Labels get what is left once the values and a readable bar area are placed.
    let min_bar = (w as f64 * 0.3).max(120.0) as i32;
    let label_max = ((w as f64 * 0.36) as i32)
        .min(w - 8 - value_w - 8 - min_bar - 14)
        .max(40) as u32;
    let labels: Vec<String> = panel
        .bars
        .iter()
        .map(|b| {
            let (style, indent) = if b.level == 0 {
                (&set_style, 0)
            } else {
                (&case_style, 14)
            };
            fit(area, &b.label, style, label_max - indent)
        })
        .collect();
    let label_w = panel
        .bars
        .iter()
        .zip(&labels)
        .map(|(b, l)| {
            let (style, indent) = if b.level == 0 {
                (&set_style, 0)
            } else {
                (&case_style, 14)
            };
            text_width(area, l, style) + indent
        })
        .max()
        .unwrap_or(100) as i32
        + 14;
    let x0 = 8 + label_w;
    let x1 = (w - value_w - 8).max(x0 + 60);
    let max = panel.axis_max;
    let scale = |v: f64| x0 + ((x1 - x0) as f64 * (v / max).clamp(0.0, 1.0)).round() as i32;
    let bottom = TOP + ROW * panel.bars.len() as i32;

    // Set bands first, so bars and grid lines draw over them.
    for (i, b) in panel.bars.iter().enumerate() {
        if b.level == 0 {
            let y = TOP + ROW * i as i32;
            area.draw(&Rectangle::new([(2, y), (w - 2, y + ROW)], BAND.filled()))?;
        }
    }
    // Quarter ticks when there is room for their labels, else halves.
    let steps = if x1 - x0 >= 200 { 4 } else { 2 };
    for tick in 0..=steps {
        let value = max * tick as f64 / steps as f64;
        let x = scale(value);
        area.draw(&PathElement::new(
            vec![(x, TOP - 4), (x, bottom + 2)],
            GRID.stroke_width(1),
        ))?;
        text(area, &tick_label(value), &tick_style, (x, bottom + 6))?;
    }
    for (i, (b, label)) in panel.bars.iter().zip(&labels).enumerate() {
        let y = TOP + ROW * i as i32;
        let cy = y + ROW / 2;
        if b.level == 0 {
            text(area, label, &set_style, (8, cy))?;
        } else {
            text(area, label, &case_style, (22, cy))?;
        }
        if let Some(p) = &b.rate {
            let color = if b.level == 0 { strong } else { light };
            let end = scale(p.rate).max(x0 + 2);
            // A rate of exactly 0 gets a visible stub, so "0 %" is not mistaken for "no data".
            area.draw(&Rectangle::new(
                [(x0, cy - 6), (end, cy + 6)],
                color.filled(),
            ))?;
            let (lo, hi) = (scale(p.low), scale(p.high));
            let whisker = INK.stroke_width(1);
            area.draw(&PathElement::new(vec![(lo, cy), (hi, cy)], whisker))?;
            area.draw(&PathElement::new(vec![(lo, cy - 4), (lo, cy + 4)], whisker))?;
            area.draw(&PathElement::new(vec![(hi, cy - 4), (hi, cy + 4)], whisker))?;
        }
        text(area, &value_text(b), &value_style, (x1 + 10, cy))?;
    }
    if panel.hidden_cases > 0 {
        text(
            area,
            &format!(
                "{} more cases not drawn (all are in the tables)",
                panel.hidden_cases
            ),
            &font(12.0, &MUTED, HPos::Left, VPos::Top),
            (8, (bottom + 24).min(h as i32 - 16)),
        )?;
    }
    Ok(())
}

impl Chart for DetectionChart {
    fn name(&self) -> &'static str {
        "detection"
    }
    fn title(&self) -> String {
        "Detection rate by set and case, and false positives".into()
    }
    fn caption(&self) -> String {
        "Bars: blocked ÷ (blocked + passed); whiskers: 95 % Wilson interval; then the rate, the interval and blocked/resolved counts. Unresolved and failed requests are not in the rate.".into()
    }
    fn size(&self) -> (u32, u32) {
        let extra = if self.attacks.hidden_cases + self.benign.hidden_cases > 0 {
            24
        } else {
            0
        };
        (WIDTH, (TOP + ROW * self.rows() as i32 + 36 + extra) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        heading(
            root,
            "Detection rate by set and case",
            "bar = blocked share of resolved requests · whisker = 95 % Wilson interval · [interval] blocked/resolved",
        )?;
        let split = if self.benign.bars.is_empty() {
            0.7
        } else {
            0.6
        };
        let (left, right) = root.split_horizontally((WIDTH as f64 * split) as i32);
        draw_panel(&left, &self.attacks, ATTACK, ATTACK_LIGHT)?;
        draw_panel(&right, &self.benign, BENIGN, BENIGN_LIGHT)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benign_axis_zooms_to_a_nice_end_that_holds_every_interval() {
        assert_eq!(nice_axis(0.0), 0.01);
        assert_eq!(nice_axis(0.034), 0.05);
        assert_eq!(nice_axis(0.05), 0.05);
        assert_eq!(nice_axis(0.51), 1.0);
        assert_eq!(tick_label(0.0125), "1.25 %");
        assert_eq!(tick_label(0.025), "2.5 %");
        assert_eq!(tick_label(0.25), "25 %");
    }
}
