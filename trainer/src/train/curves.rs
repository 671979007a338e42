//! `progress.png`: nnU-Net's three stacked panels, redrawn after every epoch. (1) training loss
//! (blue) and validation loss (red) on the left axis, pseudo Dice (green, dashed) and its EMA
//! (green, solid) on the right axis; (2) epoch duration; (3) learning rate.
//!
//! Drawn with plotters into an RGB buffer with the bundled DejaVu Sans Mono font (no system
//! fonts needed), encoded as PNG and written atomically.
//!
//! nnU-Net: `training/logging/nnunet_logger.py::nnUNetLogger.plot_progress_png`.

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::state::TrainLog;
use super::TrainError;

/// The bundled font (license: `trainer/assets/DejaVuSansMono.LICENSE`).
static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSansMono.ttf");
/// The family name the font is registered under.
const FONT: &str = "sans-serif";
/// Image size in pixels (width, height).
const SIZE: (u32, u32) = (1200, 1800);

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type PlotResult = Result<(), String>;

/// Draws the progress plot of `log` and writes it to `path` as PNG.
///
/// # Errors
/// [`TrainError::Plot`] when drawing or encoding fails, [`TrainError::Io`] when the file cannot
/// be written.
pub fn plot_progress(log: &TrainLog, path: &Path) -> Result<(), TrainError> {
    let plot_err = |fault: String| TrainError::Plot {
        path: path.to_path_buf(),
        fault,
    };
    register_font().map_err(plot_err)?;
    let (w, h) = SIZE;
    let mut rgb = vec![255u8; (w * h * 3) as usize];
    draw(log, &mut rgb).map_err(plot_err)?;
    let png = encode_png(&rgb, w, h).map_err(plot_err)?;
    autoseg_preprocessing::write_atomic(path, &png)
        .map_err(|e| TrainError::io(path, "write the progress plot", e))
}

fn register_font() -> Result<(), String> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err("the bundled font cannot be loaded".to_string())
    }
}

fn draw(log: &TrainLog, rgb: &mut [u8]) -> PlotResult {
    let root = BitMapBackend::with_buffer(rgb, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((3, 1));
    draw_losses(&panels[0], log)?;
    let epochs: Vec<f64> = (0..log.n_epochs()).map(|e| e as f64).collect();
    draw_single(
        &panels[1],
        &epochs,
        &log.epoch_durations(),
        "epoch duration [s]",
    )?;
    draw_single(&panels[2], &epochs, &log.lrs, "learning rate")?;
    root.present().map_err(|e| e.to_string())
}

/// Panel 1: losses on the left axis, pseudo Dice and EMA on the right axis.
fn draw_losses(area: &Area<'_>, log: &TrainLog) -> PlotResult {
    let x = x_range(log.n_epochs());
    let losses = log.train_losses.iter().chain(&log.val_losses).copied();
    let mut chart = ChartBuilder::on(area)
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .right_y_label_area_size(80)
        .build_cartesian_2d(x.clone(), finite_range(losses))
        .map_err(|e| e.to_string())?
        .set_secondary_coord(x, 0.0..1.0);
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("loss")
        .label_style((FONT, 18))
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .configure_secondary_axes()
        .y_desc("pseudo dice")
        .label_style((FONT, 18))
        .draw()
        .map_err(|e| e.to_string())?;
    let series = [
        ("loss_tr", &log.train_losses, BLUE),
        ("loss_val", &log.val_losses, RED),
    ];
    for (label, values, color) in series {
        chart
            .draw_series(LineSeries::new(points(values), color.stroke_width(3)))
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    let green = RGBColor(0, 150, 0);
    chart
        .draw_secondary_series(DashedLineSeries::new(
            points(&log.mean_fg_dice),
            6,
            6,
            green.stroke_width(2),
        ))
        .map_err(|e| e.to_string())?
        .label("pseudo dice")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], green));
    chart
        .draw_secondary_series(LineSeries::new(
            points(&log.ema_fg_dice),
            green.stroke_width(3),
        ))
        .map_err(|e| e.to_string())?
        .label("pseudo dice (mov. avg.)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], green.stroke_width(3)));
    chart
        .configure_series_labels()
        .label_font((FONT, 18))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerLeft)
        .draw()
        .map_err(|e| e.to_string())
}

/// Panels 2 and 3: one series against the epoch.
fn draw_single(area: &Area<'_>, epochs: &[f64], values: &[f64], label: &str) -> PlotResult {
    let mut chart = ChartBuilder::on(area)
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(100)
        .build_cartesian_2d(x_range(epochs.len()), finite_range(values.iter().copied()))
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(label)
        .label_style((FONT, 18))
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(LineSeries::new(points(values), BLUE.stroke_width(3)))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// `(epoch, value)` for every finite value (NaN epochs leave a gap).
fn points(values: &[f64]) -> Vec<(f64, f64)> {
    values
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .map(|(e, &v)| (e as f64, v))
        .collect()
}

fn x_range(n_epochs: usize) -> Range<f64> {
    0.0..(n_epochs.saturating_sub(1).max(1)) as f64
}

/// The span of the finite values, widened when it is empty or a single value.
fn finite_range(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return 0.0..1.0;
    }
    let pad = ((hi - lo) * 0.05)
        .max(hi.abs().max(lo.abs()) * 1e-3)
        .max(1e-12);
    (lo - pad)..(hi + pad)
}

fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(rgb).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_finite_values_only() {
        let r = finite_range([1.0, f64::NAN, 3.0].into_iter());
        assert!(r.start < 1.0 && r.start > 0.8 && r.end > 3.0 && r.end < 3.2);
        assert_eq!(finite_range([f64::NAN].into_iter()), 0.0..1.0);
        let single = finite_range([2.0].into_iter());
        assert!(single.start < 2.0 && single.end > 2.0);
        assert_eq!(points(&[0.5, f64::NAN, 0.7]), vec![(0.0, 0.5), (2.0, 0.7)]);
    }

    #[test]
    fn writes_a_png_of_the_right_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("progress.png");
        let log = TrainLog {
            train_losses: vec![0.2, -0.1, -0.4],
            val_losses: vec![0.1, -0.2, -0.3],
            dice_per_class: vec![vec![0.1], vec![0.5], vec![0.7]],
            mean_fg_dice: vec![0.1, 0.5, f64::NAN],
            ema_fg_dice: vec![0.1, 0.14, f64::NAN],
            lrs: vec![0.01, 0.0067, 0.0035],
            epoch_start_timestamps: vec![0.0, 5.0, 11.0],
            epoch_end_timestamps: vec![5.0, 11.0, 16.5],
        };
        plot_progress(&log, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let decoder = png::Decoder::new(bytes.as_slice());
        let reader = decoder.read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), SIZE);
        // Something was drawn: the image is not uniformly white.
        let mut reader = reader;
        let mut pixels = vec![0; reader.output_buffer_size()];
        reader.next_frame(&mut pixels).unwrap();
        assert!(pixels.iter().any(|&p| p < 200));
        // An empty log still draws (empty axes).
        plot_progress(&TrainLog::default(), &path).unwrap();
    }
}
