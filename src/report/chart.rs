//! The weekly review's chart, drawn in-process with plotters into a PNG: deployments per day
//! stacked by outcome above, the median lead time per day below. The font is DejaVu Sans,
//! embedded in the binary, so a chart looks the same on any host and needs no system fonts.

use std::sync::OnceLock;

use chrono::Datelike;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::register_font;

use crate::domain::kpi::Day;

/// The chart's size in pixels (Discord shows it without scaling).
pub const WIDTH: u32 = 960;
pub const HEIGHT: u32 = 540;

const FONT: &str = "sans-serif";
const SUCCEEDED: RGBColor = RGBColor(46, 139, 87);
const DRY_RUN: RGBColor = RGBColor(140, 160, 190);
const FAILED: RGBColor = RGBColor(200, 55, 45);
const LEAD: RGBColor = RGBColor(40, 90, 170);

/// Why no chart could be drawn.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("the chart could not be drawn: {0}")]
    Draw(String),
    #[error("the chart could not be encoded as PNG: {0}")]
    Encode(String),
}

fn draw_err(e: impl std::fmt::Display) -> ChartError {
    ChartError::Draw(e.to_string())
}

/// Registers the embedded font once per process.
fn font() -> Result<(), ChartError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    match ok {
        true => Ok(()),
        false => Err(ChartError::Draw(
            "the embedded font could not be read".into(),
        )),
    }
}

/// Draws `days` under `title` as a PNG of [`WIDTH`] × [`HEIGHT`] pixels.
pub fn render_png(title: &str, days: &[Day]) -> Result<Vec<u8>, ChartError> {
    font()?;
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let body = root
            .titled(title, (FONT, 22).into_font().style(FontStyle::Bold))
            .map_err(draw_err)?;
        let (top, bottom) = body.split_vertically(body.dim_in_pixel().1 * 3 / 5);
        deployments(&top, days)?;
        lead_times(&bottom, days)?;
        root.present().map_err(draw_err)?;
    }
    encode(&rgb)
}

/// `Mon 23` under each day.
fn day_label(days: &[Day], v: &SegmentValue<i32>) -> String {
    match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => usize::try_from(*i)
            .ok()
            .and_then(|i| days.get(i))
            .map(|d| format!("{} {}", d.date.weekday(), d.date.day()))
            .unwrap_or_default(),
        SegmentValue::Last => String::new(),
    }
}

fn deployments<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    days: &[Day],
) -> Result<(), ChartError> {
    // `0..=last` as segments: one per day.
    let last = days.len().saturating_sub(1) as i32;
    let most = days
        .iter()
        .map(|d| d.succeeded + d.dry_runs + d.failed)
        .max()
        .unwrap_or(0)
        .max(1);
    let mut chart = ChartBuilder::on(area)
        .caption("Deployments per day", (FONT, 16))
        .margin(12)
        .x_label_area_size(26)
        .y_label_area_size(44)
        .build_cartesian_2d(
            (0..last).into_segmented(),
            0f64..(most as f64 * 1.25).ceil(),
        )
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(RGBColor(238, 238, 238))
        .x_labels(days.len().clamp(1, 14))
        .x_label_formatter(&|v| day_label(days, v))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .y_labels((most + 1).min(8))
        .label_style((FONT, 12))
        .draw()
        .map_err(draw_err)?;
    // Bars leave a gap to each side of their day: 15% of a day's width, at most 10 px.
    let day_px = chart.plotting_area().dim_in_pixel().0 as f64 / days.len().max(1) as f64;
    let gap = (day_px * 0.15).min(10.0) as u32;
    for (part, color) in [
        ("succeeded", SUCCEEDED),
        ("dry run", DRY_RUN),
        ("failed", FAILED),
    ] {
        let bars = days.iter().enumerate().filter_map(move |(i, d)| {
            let below = match part {
                "succeeded" => 0,
                "dry run" => d.succeeded,
                _ => d.succeeded + d.dry_runs,
            };
            let count = match part {
                "succeeded" => d.succeeded,
                "dry run" => d.dry_runs,
                _ => d.failed,
            };
            let i = i as i32;
            (count > 0).then(|| {
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), below as f64),
                        (SegmentValue::Exact(i + 1), (below + count) as f64),
                    ],
                    color.filled(),
                );
                bar.set_margin(0, 0, gap, gap);
                bar
            })
        });
        chart
            .draw_series(bars)
            .map_err(draw_err)?
            .label(part)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 12))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(draw_err)?;
    Ok(())
}

fn lead_times<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    days: &[Day],
) -> Result<(), ChartError> {
    // `0..=last` as segments: one per day.
    let last = days.len().saturating_sub(1) as i32;
    let points: Vec<(SegmentValue<i32>, f64)> = days
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            let hours = d.lead_time.median_secs? as f64 / 3600.0;
            Some((SegmentValue::CenterOf(i as i32), hours))
        })
        .collect();
    let most = points.iter().map(|(_, h)| *h).fold(1.0_f64, f64::max);
    let caption = match points.is_empty() {
        true => "Lead time, median per day (none in this period)",
        false => "Lead time, median per day (hours)",
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 16))
        .margin(12)
        .x_label_area_size(26)
        .y_label_area_size(44)
        .build_cartesian_2d((0..last).into_segmented(), 0f64..(most * 1.2).ceil())
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(RGBColor(238, 238, 238))
        .x_labels(days.len().clamp(1, 14))
        .x_label_formatter(&|v| day_label(days, v))
        .y_labels(5)
        .y_label_formatter(&|v| match most < 5.0 {
            true => format!("{v:.1}h"),
            false => format!("{v:.0}h"),
        })
        .label_style((FONT, 12))
        .draw()
        .map_err(draw_err)?;
    chart
        .draw_series(LineSeries::new(
            points.iter().cloned(),
            LEAD.stroke_width(2),
        ))
        .map_err(draw_err)?;
    chart
        .draw_series(
            points
                .iter()
                .map(|(x, y)| Circle::new((x.clone(), *y), 4, LEAD.filled())),
        )
        .map_err(draw_err)?;
    Ok(())
}

/// RGB pixels → PNG bytes.
fn encode(rgb: &[u8]) -> Result<Vec<u8>, ChartError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Best);
    let mut writer = encoder
        .write_header()
        .map_err(|e| ChartError::Encode(e.to_string()))?;
    writer
        .write_image_data(rgb)
        .map_err(|e| ChartError::Encode(e.to_string()))?;
    writer
        .finish()
        .map_err(|e| ChartError::Encode(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::domain::kpi::Spread;

    fn week(deployed: &[(usize, usize, usize)]) -> Vec<Day> {
        let monday = NaiveDate::from_ymd_opt(2026, 11, 23).expect("a date");
        deployed
            .iter()
            .enumerate()
            .map(|(i, &(succeeded, dry_runs, failed))| Day {
                date: monday + chrono::Days::new(i as u64),
                succeeded,
                dry_runs,
                failed,
                lead_time: Spread {
                    count: usize::from(succeeded > 0),
                    median_secs: (succeeded > 0).then_some(3600 * (i as i64 + 2)),
                    p90_secs: None,
                },
            })
            .collect()
    }

    /// The PNG's size and its pixels, decoded again.
    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .expect("a PNG");
        let mut pixels = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut pixels).expect("a frame");
        pixels.truncate(info.buffer_size());
        (info.width, info.height, pixels)
    }

    #[test]
    fn the_chart_is_a_png_of_the_expected_size_that_shows_its_history() {
        let quiet = render_png("quiet week", &week(&[(0, 0, 0); 7])).expect("a chart");
        let busy = render_png(
            "quiet week",
            &week(&[
                (2, 0, 0),
                (1, 1, 1),
                (0, 0, 0),
                (3, 0, 1),
                (1, 0, 0),
                (0, 2, 0),
                (0, 0, 0),
            ]),
        )
        .expect("a chart");
        assert_eq!(&busy[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
        let (w, h, busy_pixels) = decode(&busy);
        assert_eq!((w, h), (WIDTH, HEIGHT));
        let (_, _, quiet_pixels) = decode(&quiet);
        let differing = busy_pixels
            .chunks(3)
            .zip(quiet_pixels.chunks(3))
            .filter(|(a, b)| a != b)
            .count();
        assert!(differing > 5_000, "only {differing} pixels differ");
        // The bars are drawn in their colours.
        let has = |pixels: &[u8], c: RGBColor| pixels.chunks(3).any(|p| p == [c.0, c.1, c.2]);
        assert!(has(&busy_pixels, SUCCEEDED) && has(&busy_pixels, FAILED));
        // Text is drawn (the title's dark pixels exist in the top band).
        let top_band = &busy_pixels[..(WIDTH * 30 * 3) as usize];
        assert!(top_band.chunks(3).any(|p| p.iter().all(|&v| v < 80)));
        // For people to look at.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/charts");
        if std::fs::create_dir_all(&dir).is_ok() {
            let _ = std::fs::write(dir.join("busy-week.png"), &busy);
            let _ = std::fs::write(dir.join("quiet-week.png"), &quiet);
        }
    }

    #[test]
    fn a_year_of_days_keeps_each_bar_inside_its_own_day() {
        // Every other day has one deployment: about half of a bar row is green. Bars wider
        // than their day (a fixed margin flipping a narrow rectangle) would paint nearly all.
        let year: Vec<(usize, usize, usize)> = (0..366).map(|i| (1 - i % 2, 0, 0)).collect();
        let png = render_png("a year", &week(&year)).expect("a chart");
        let (w, _, pixels) = decode(&png);
        let green = [SUCCEEDED.0, SUCCEEDED.1, SUCCEEDED.2];
        let widest = pixels
            .chunks((w * 3) as usize)
            .map(|row| row.chunks(3).filter(|p| *p == green).count())
            .max()
            .unwrap_or(0);
        assert!(
            (250..650).contains(&widest),
            "{widest} green pixels in a row"
        );
    }

    #[test]
    fn an_empty_period_still_draws() {
        let png = render_png("nothing", &[]).expect("a chart");
        assert_eq!(decode(&png).0, WIDTH);
    }
}
