//! Charts of a run, one file per chart behind the [`Chart`] trait, each drawn once for
//! SVG (inline in the HTML report, and as a file) and once for PNG. Charts take their
//! numbers from `report::model`; they compute nothing a table would print differently.
//! Labels come from corpus file names and so are user-controlled: every label goes
//! through `escape::label` (plotters' SVG backend escapes XML specials itself).

mod analysis;
mod breakdown;
mod detection;
mod matrix;
mod spectrum;
mod timeline;

pub use analysis::{CapacityChart, OverheadChart};
pub use breakdown::BreakdownChart;
pub use detection::DetectionChart;
pub use matrix::MatrixChart;
pub use spectrum::SpectrumChart;
pub use timeline::TimelineChart;

use super::model::ReportData;
use crate::error::Error;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;
use std::sync::Once;

/// Font family written into SVG `font-family` and used by name for PNG text. Liberation
/// Sans (OFL, in assets/fonts) is embedded for PNGs and is metric-compatible with Arial,
/// so text measured for the layout fits in browsers that substitute Arial/Helvetica.
pub const FONT: &str = "Liberation Sans, Arial, Helvetica, sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../../assets/fonts/LiberationSans-Regular.ttf");

/// Registers the embedded font (once per process); plotters' `ab_glyph` feature looks
/// fonts up only by registered name, never on the system.
pub fn ensure_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType file checked in with the crate; a failure here
        // would surface as a FontUnavailable error from the first chart.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
}

/// The error type chart code returns; drawing errors of any backend convert into it.
pub type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// One chart of the report.
pub trait Chart {
    /// File stem of the chart's SVG and PNG ("detection" → detection.svg).
    fn name(&self) -> &'static str;
    /// Caption shown above the chart in the HTML report.
    fn title(&self) -> String;
    /// One sentence on how to read it.
    fn caption(&self) -> String;
    /// Size in pixels (width, height).
    fn size(&self) -> (u32, u32);
    /// Draws onto a blank, white area of exactly `size()`.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static;
}

/// A chart drawn in both formats, object-safe so the report can hold a list of them.
pub trait Rendered {
    fn name(&self) -> &'static str;
    fn title(&self) -> String;
    fn caption(&self) -> String;
    fn svg(&self) -> Result<String, Error>;
    fn png(&self, path: &Path) -> Result<(), Error>;
}

impl<C: Chart> Rendered for C {
    fn name(&self) -> &'static str {
        Chart::name(self)
    }
    fn title(&self) -> String {
        Chart::title(self)
    }
    fn caption(&self) -> String {
        Chart::caption(self)
    }

    fn svg(&self) -> Result<String, Error> {
        ensure_font();
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, self.size()).into_drawing_area();
            root.fill(&WHITE)
                .map_err(|e| chart_error(self.name(), &e))?;
            self.draw(&root)
                .map_err(|e| chart_error(self.name(), e.as_ref()))?;
            root.present().map_err(|e| chart_error(self.name(), &e))?;
        }
        Ok(out)
    }

    fn png(&self, path: &Path) -> Result<(), Error> {
        ensure_font();
        let root = BitMapBackend::new(path, self.size()).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| chart_error(self.name(), &e))?;
        self.draw(&root)
            .map_err(|e| chart_error(self.name(), e.as_ref()))?;
        root.present()
            .map_err(|e| Error::Other(format!("{}: {e}", path.display())))
    }
}

fn chart_error(name: &str, e: &dyn std::fmt::Display) -> Error {
    Error::Other(format!("drawing chart {name}: {e}"))
}

/// The five charts of a report, in the order the report shows them.
pub fn all(data: &ReportData) -> Vec<Box<dyn Rendered>> {
    vec![
        Box::new(DetectionChart::new(data)),
        Box::new(MatrixChart::new(data)),
        Box::new(SpectrumChart::new(data)),
        Box::new(TimelineChart::new(data)),
        Box::new(BreakdownChart::new(data)),
    ]
}

// ---- shared drawing vocabulary -------------------------------------------------------

pub const WIDTH: u32 = 1200;
pub const INK: RGBColor = RGBColor(0x22, 0x22, 0x22);
pub const MUTED: RGBColor = RGBColor(0x66, 0x66, 0x66);
pub const GRID: RGBColor = RGBColor(0xdd, 0xdd, 0xdd);
pub const BAND: RGBColor = RGBColor(0xf3, 0xf5, 0xf8);
pub const ATTACK: RGBColor = RGBColor(0x1f, 0x6f, 0xb2);
pub const ATTACK_LIGHT: RGBColor = RGBColor(0x7f, 0xb0, 0xdc);
pub const BENIGN: RGBColor = RGBColor(0xd9, 0x6c, 0x00);
pub const BENIGN_LIGHT: RGBColor = RGBColor(0xf2, 0xb2, 0x6b);
pub const BLOCKED: RGBColor = RGBColor(0x2e, 0x7d, 0x32);
pub const PASSED: RGBColor = RGBColor(0xc6, 0x28, 0x28);
pub const OTHER: RGBColor = RGBColor(0x8d, 0x6e, 0x63);
pub const FAILED: RGBColor = RGBColor(0x6a, 0x1b, 0x9a);

/// A text style in the report font. plotters draws text at size ÷ 1.24 px, so sizes are
/// scaled up to read as roughly `size` px.
pub fn font(size: f64, color: &RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle {
        font: (FONT, size * 1.2).into_font(),
        color: color.to_backend_color(),
        pos: Pos::new(h, v),
    }
}

/// Width of `text` in pixels as laid out with `style`.
pub fn text_width<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    style: &TextStyle,
) -> u32
where
    DB::ErrorType: 'static,
{
    area.estimate_text_size(text, style)
        .map(|(w, _)| w)
        .unwrap_or((text.chars().count() as u32) * 8)
}

/// `text` shortened with an ellipsis until it fits `max` pixels.
pub fn fit<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    style: &TextStyle,
    max: u32,
) -> String
where
    DB::ErrorType: 'static,
{
    if text_width(area, text, style) <= max {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut keep = chars.len();
    while keep > 1 {
        keep -= 1;
        let candidate: String = chars[..keep].iter().collect::<String>() + "…";
        if text_width(area, &candidate, style) <= max {
            return candidate;
        }
    }
    "…".to_string()
}

/// Draws `text` at pixel `pos` of `area`.
pub fn text<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    style: &TextStyle,
    pos: (i32, i32),
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    area.draw_text(text, style, pos)?;
    Ok(())
}

/// Title (bold-looking, 18 px) and a muted subtitle line; returns the y below them.
pub fn heading<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: &str,
) -> Result<i32, Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    text(
        area,
        title,
        &font(18.0, &INK, HPos::Left, VPos::Top),
        (12, 8),
    )?;
    if !subtitle.is_empty() {
        text(
            area,
            subtitle,
            &font(13.0, &MUTED, HPos::Left, VPos::Top),
            (12, 32),
        )?;
        Ok(56)
    } else {
        Ok(36)
    }
}

/// A legend row of coloured squares and names, left to right from `x`; returns its end x.
pub fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    items: &[(&str, RGBColor)],
    x: i32,
    y: i32,
) -> Result<i32, Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let style = font(13.0, &INK, HPos::Left, VPos::Center);
    let mut x = x;
    for (name, color) in items {
        area.draw(&Rectangle::new(
            [(x, y - 6), (x + 12, y + 6)],
            color.filled(),
        ))?;
        text(area, name, &style, (x + 17, y))?;
        x += 17 + text_width(area, name, &style) as i32 + 18;
    }
    Ok(x)
}

/// Width a [`legend`] row of `items` takes.
pub fn legend_width<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    items: &[(&str, RGBColor)],
) -> i32
where
    DB::ErrorType: 'static,
{
    let style = font(13.0, &INK, HPos::Left, VPos::Center);
    items
        .iter()
        .map(|(name, _)| 17 + text_width(area, name, &style) as i32 + 18)
        .sum::<i32>()
        - 18
}

/// A legend row that ends at `right`, so it sits in a chart's header, never over data.
pub fn legend_right<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    items: &[(&str, RGBColor)],
    right: i32,
    y: i32,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let x = right - legend_width(area, items);
    legend(area, items, x, y)?;
    Ok(())
}

/// A short count: 1234 → "1234", 123456 → "123k", 12345678 → "12.3M".
pub fn short_count(n: u64) -> String {
    if n >= 10_000_000 {
        format!("{:.1}M", n as f64 / 1e6)
    } else if n >= 100_000 {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}
