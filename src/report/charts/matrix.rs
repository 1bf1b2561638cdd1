//! Chart 2: the delivery-path matrix, placeholder × encoder, coloured by the block rate
//! of attacks: red cells are the ways an attack gets past the WAF.

use super::*;
use crate::report::escape;
use crate::report::model::{matrix, percent, MatrixView};

const CELL_H: i32 = 40;
const TOP: i32 = 64;

pub struct MatrixChart {
    pub view: MatrixView,
}

impl MatrixChart {
    pub fn new(data: &ReportData) -> Self {
        MatrixChart {
            view: matrix(&data.summary),
        }
    }
}

/// Red (0 % blocked) → yellow (50 %) → green (100 %).
pub fn heat(rate: f64) -> RGBColor {
    let stops = [
        (215.0, 48.0, 39.0),
        (254.0, 224.0, 139.0),
        (26.0, 152.0, 80.0),
    ];
    let r = rate.clamp(0.0, 1.0) * 2.0;
    let (a, b, t) = if r <= 1.0 {
        (stops[0], stops[1], r)
    } else {
        (stops[1], stops[2], r - 1.0)
    };
    let mix = |x: f64, y: f64| (x + (y - x) * t).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Dark text on light cells, white on dark ones.
fn ink_for(c: &RGBColor) -> RGBColor {
    let luma = 0.299 * c.0 as f64 + 0.587 * c.1 as f64 + 0.114 * c.2 as f64;
    if luma > 140.0 {
        INK
    } else {
        WHITE
    }
}

impl Chart for MatrixChart {
    fn name(&self) -> &'static str {
        "matrix"
    }
    fn title(&self) -> String {
        "Detection matrix: placeholder × encoder".into()
    }
    fn caption(&self) -> String {
        "Block rate of attack requests by where the payload was placed and how it was encoded; red cells evade the WAF, grey cells are not in the corpus.".into()
    }
    fn size(&self) -> (u32, u32) {
        let rows = self.view.placeholders.len().max(1) as i32;
        // Wider than the other charts only when a corpus has so many encoders that cells
        // would get narrower than their text (labels take at most 260 + 24 px).
        let cols = self.view.encoders.len() as u32;
        let width = WIDTH.max(284 + cols * 60 + 170);
        (width, (TOP + 30 + rows * CELL_H + 56) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        heading(
            root,
            "Detection matrix: placeholder × encoder",
            "cell = share of attack requests blocked, and blocked/resolved; red = evasion path",
        )?;
        let v = &self.view;
        if v.placeholders.is_empty() {
            text(
                root,
                "no attack requests were resolved",
                &font(13.0, &MUTED, HPos::Left, VPos::Top),
                (12, TOP + 8),
            )?;
            return Ok(());
        }
        let label_style = font(13.0, &INK, HPos::Right, VPos::Center);
        let head_style = font(13.0, &INK, HPos::Center, VPos::Bottom);
        let labels: Vec<String> = v
            .placeholders
            .iter()
            .map(|p| fit(root, &escape::label(p, 40), &label_style, 260))
            .collect();
        let label_w = labels
            .iter()
            .map(|l| text_width(root, l, &label_style))
            .max()
            .unwrap_or(80) as i32
            + 24;
        let legend_w = 150;
        let cols = v.encoders.len().max(1) as i32;
        let width = root.dim_in_pixel().0 as i32;
        let cell_w = ((width - label_w - legend_w - 20) / cols).clamp(60, 220);
        let x0 = label_w;
        let y0 = TOP + 30;
        for (ci, e) in v.encoders.iter().enumerate() {
            let cx = x0 + cell_w * ci as i32 + cell_w / 2;
            let head = fit(root, &escape::label(e, 30), &head_style, cell_w as u32 - 6);
            text(root, &head, &head_style, (cx, y0 - 6))?;
        }
        let rate_style_size = 13.0;
        for (ri, row) in v.cells.iter().enumerate() {
            let y = y0 + CELL_H * ri as i32;
            text(root, &labels[ri], &label_style, (x0 - 10, y + CELL_H / 2))?;
            for (ci, cell) in row.iter().enumerate() {
                let x = x0 + cell_w * ci as i32;
                let rect = [(x + 1, y + 1), (x + cell_w - 1, y + CELL_H - 1)];
                match cell.as_ref().and_then(|c| c.rate.map(|p| (c, p))) {
                    Some((c, p)) => {
                        let fill = heat(p.rate);
                        root.draw(&Rectangle::new(rect, fill.filled()))?;
                        let ink = ink_for(&fill);
                        text(
                            root,
                            &percent(p.rate),
                            &font(rate_style_size, &ink, HPos::Center, VPos::Center),
                            (x + cell_w / 2, y + 13),
                        )?;
                        text(
                            root,
                            &format!("{}/{}", short_count(c.blocked), short_count(c.resolved())),
                            &font(11.0, &ink, HPos::Center, VPos::Center),
                            (x + cell_w / 2, y + 29),
                        )?;
                    }
                    None => {
                        root.draw(&Rectangle::new(rect, RGBColor(0xee, 0xee, 0xee).filled()))?;
                        if cell.is_some() {
                            text(
                                root,
                                "unresolved",
                                &font(11.0, &MUTED, HPos::Center, VPos::Center),
                                (x + cell_w / 2, y + CELL_H / 2),
                            )?;
                        }
                    }
                }
            }
        }
        // Colour scale.
        let lx = x0 + cell_w * cols + 20;
        let ly0 = y0;
        let lh = (CELL_H * v.placeholders.len() as i32).clamp(80, 240);
        let steps = 40;
        for s in 0..steps {
            let t = 1.0 - s as f64 / (steps - 1) as f64;
            let ya = ly0 + lh * s / steps;
            let yb = ly0 + lh * (s + 1) / steps;
            root.draw(&Rectangle::new([(lx, ya), (lx + 16, yb)], heat(t).filled()))?;
        }
        let scale_style = font(12.0, &MUTED, HPos::Left, VPos::Center);
        for (t, label) in [
            (1.0, "100 % blocked"),
            (0.5, "50 %"),
            (0.0, "0 % (evasion)"),
        ] {
            let y = ly0 + ((1.0 - t) * lh as f64) as i32;
            text(root, label, &scale_style, (lx + 22, y))?;
        }
        Ok(())
    }
}
