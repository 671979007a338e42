//! The overlay renderer: one slice of a case's image, windowed to grey, with a label map drawn
//! on it in colour, resampled to square pixels.
//!
//! Conventions (arrays are `(z, y, x)`): the axial view shows `(y, x)` with y downwards; the
//! coronal view `(z, x)` and the sagittal view `(z, y)` show the highest z at the top. Labels are
//! filled at half opacity and outlined at full colour, so the image stays readable under them.

use ndarray::ArrayView3;

use super::raster::RgbImage;

/// Longest side of a rendered panel, in pixels.
pub const PANEL_SIDE: usize = 256;

/// Opacity of a label's fill, in 1/256 (128 = one half); outlines are opaque.
const FILL_ALPHA: u16 = 128;

/// Label colours, label 1 first (a qualitative palette readable on grey).
const PALETTE: [[u8; 3]; 10] = [
    [230, 25, 75],
    [60, 180, 75],
    [0, 130, 200],
    [255, 225, 25],
    [245, 130, 48],
    [145, 30, 180],
    [70, 240, 240],
    [240, 50, 230],
    [210, 245, 60],
    [250, 190, 212],
];

/// Voxels sampled at most when estimating the intensity window.
const MAX_WINDOW_SAMPLES: usize = 4_000_000;

/// The colour of a label value (label 0, background, is never drawn).
pub fn label_colour(label: u16) -> [u8; 3] {
    PALETTE[(usize::from(label).max(1) - 1) % PALETTE.len()]
}

/// An intensity window: values map linearly from `lo` (black) to `hi` (white).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// The value shown black (and everything below it).
    pub lo: f32,
    /// The value shown white (and everything above it).
    pub hi: f32,
}

impl Window {
    /// The 0.5 and 99.5 percentiles of the finite values (numpy's linear interpolation), from
    /// at most 4 million voxels taken at a regular stride. `None` when no value is finite.
    pub fn from_percentiles(image: ArrayView3<'_, f32>) -> Option<Window> {
        let stride = image.len().div_ceil(MAX_WINDOW_SAMPLES).max(1);
        let mut values: Vec<f32> = image
            .iter()
            .step_by(stride)
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        if values.is_empty() {
            return None;
        }
        let lo = percentile(&mut values, 0.5);
        let hi = percentile(&mut values, 99.5);
        Some(Window { lo, hi })
    }

    /// The grey level of `value`: 0 at or below `lo`, 255 at or above `hi`, linear between
    /// (rounded). A window with `hi <= lo` shows values above `lo` white.
    pub fn grey(&self, value: f32) -> u8 {
        if value.is_nan() || value <= self.lo {
            return 0;
        }
        if value >= self.hi {
            return 255;
        }
        let t = (f64::from(value) - f64::from(self.lo)) / (f64::from(self.hi) - f64::from(self.lo));
        (t * 255.0).round().clamp(0.0, 255.0) as u8
    }
}

/// numpy's `percentile(values, q)` with linear interpolation; `values` is reordered.
fn percentile(values: &mut [f32], q: f64) -> f32 {
    let rank = q / 100.0 * (values.len() - 1) as f64;
    let below = rank.floor() as usize;
    let above = rank.ceil() as usize;
    let (_, &mut v_below, _) = values.select_nth_unstable_by(below, f32::total_cmp);
    let (_, &mut v_above, _) = values.select_nth_unstable_by(above, f32::total_cmp);
    let frac = rank - below as f64;
    (f64::from(v_below) + (f64::from(v_above) - f64::from(v_below)) * frac) as f32
}

/// The three orthogonal views.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// A z slice, showing `(y, x)`.
    Axial,
    /// A y slice, showing `(z, x)`, highest z at the top.
    Coronal,
    /// An x slice, showing `(z, y)`, highest z at the top.
    Sagittal,
}

impl View {
    /// All views, in the order the report shows them.
    pub const ALL: [View; 3] = [View::Axial, View::Coronal, View::Sagittal];

    /// The view's name.
    pub fn name(self) -> &'static str {
        match self {
            View::Axial => "axial",
            View::Coronal => "coronal",
            View::Sagittal => "sagittal",
        }
    }

    /// The array axis this view cuts across (0 = z, 1 = y, 2 = x).
    pub fn fixed_axis(self) -> usize {
        match self {
            View::Axial => 0,
            View::Coronal => 1,
            View::Sagittal => 2,
        }
    }

    /// The array axes shown as rows and as columns.
    fn row_col_axes(self) -> (usize, usize) {
        match self {
            View::Axial => (1, 2),
            View::Coronal => (0, 2),
            View::Sagittal => (0, 1),
        }
    }

    /// Whether a volume of `shape` has more than one voxel along both shown axes.
    pub fn is_visible(self, shape: [usize; 3]) -> bool {
        let (r, c) = self.row_col_axes();
        shape[r] > 1 && shape[c] > 1
    }
}

/// A slice to render: a view and the index along its fixed axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    /// Which view.
    pub view: View,
    /// Index along [`View::fixed_axis`].
    pub index: usize,
}

/// The cuts through `point` (one per view); `point` is `(z, y, x)`.
pub fn cuts_through(point: [usize; 3]) -> [Cut; 3] {
    View::ALL.map(|view| Cut {
        view,
        index: point[view.fixed_axis()],
    })
}

/// Height and width in pixels of a slice of `rows` x `cols` voxels of `row_mm` x `col_mm`,
/// resampled to square pixels with its longest side [`PANEL_SIDE`] pixels.
pub fn display_size(rows: usize, cols: usize, row_mm: f64, col_mm: f64) -> (usize, usize) {
    let (height_mm, width_mm) = (rows as f64 * row_mm, cols as f64 * col_mm);
    let pixel_mm = height_mm.max(width_mm) / PANEL_SIDE as f64;
    let height = (height_mm / pixel_mm).round().max(1.0) as usize;
    let width = (width_mm / pixel_mm).round().max(1.0) as usize;
    (height, width)
}

/// Nearest source index of display position `i` of `n_display` over `n_source` voxels.
fn nearest(i: usize, n_display: usize, n_source: usize) -> usize {
    ((2 * i + 1) * n_source / (2 * n_display)).min(n_source - 1)
}

/// What a case's panels share: the image (first channel), its spacing and window, and the
/// label never drawn (nnU-Net's ignore label).
#[derive(Clone, Copy, Debug)]
pub struct CaseCanvas<'a> {
    /// The image, `(z, y, x)`.
    pub image: ArrayView3<'a, f32>,
    /// Voxel spacing `(z, y, x)` in mm.
    pub spacing: [f64; 3],
    /// The intensity window.
    pub window: Window,
    /// A label value left undrawn.
    pub ignore_label: Option<u16>,
}

impl CaseCanvas<'_> {
    /// Renders `cut` of the image with `labels` (same shape as the image) overlaid, if given.
    ///
    /// # Panics
    /// When `labels` has another shape than the image or `cut.index` is outside the volume:
    /// callers check both.
    pub fn render(&self, labels: Option<ArrayView3<'_, u16>>, cut: Cut) -> RgbImage {
        let shape: [usize; 3] = self.image.dim().into();
        assert!(
            labels.is_none_or(|l| l.dim() == self.image.dim()),
            "callers render labels of the image's shape"
        );
        assert!(
            cut.index < shape[cut.view.fixed_axis()],
            "callers cut inside the volume"
        );
        let (row_axis, col_axis) = cut.view.row_col_axes();
        let (rows, cols) = (shape[row_axis], shape[col_axis]);
        let (height, width) =
            display_size(rows, cols, self.spacing[row_axis], self.spacing[col_axis]);
        let flip_rows = cut.view != View::Axial;
        let voxel_of = |r: usize, c: usize| {
            let mut src_row = nearest(r, height, rows);
            if flip_rows {
                src_row = rows - 1 - src_row;
            }
            let mut voxel = [0; 3];
            voxel[cut.view.fixed_axis()] = cut.index;
            voxel[row_axis] = src_row;
            voxel[col_axis] = nearest(c, width, cols);
            voxel
        };
        let mut grey = Vec::with_capacity(height * width);
        let mut label = Vec::with_capacity(height * width);
        for r in 0..height {
            for c in 0..width {
                let v = voxel_of(r, c);
                grey.push(self.window.grey(self.image[v]));
                label.push(labels.map_or(0, |l| self.drawn(l[v])));
            }
        }
        compose(width, height, &grey, &label)
    }

    /// The label as drawn: 0 for background and the ignore label.
    fn drawn(&self, label: u16) -> u16 {
        if Some(label) == self.ignore_label {
            0
        } else {
            label
        }
    }
}

/// Colours a display grid: grey where the label is 0, the label colour on outlines (a pixel
/// with a 4-neighbour of another label), half-blended inside.
fn compose(width: usize, height: usize, grey: &[u8], label: &[u16]) -> RgbImage {
    let mut out = RgbImage::filled(width, height, [0, 0, 0]);
    for r in 0..height {
        for c in 0..width {
            let idx = r * width + c;
            let (g, l) = (grey[idx], label[idx]);
            out.pixels[idx] = if l == 0 {
                [g, g, g]
            } else if is_outline(label, width, height, r, c) {
                label_colour(l)
            } else {
                label_colour(l).map(|v| blend(g, v))
            };
        }
    }
    out
}

/// Whether a 4-neighbour inside the grid has another label than `(r, c)`.
fn is_outline(label: &[u16], width: usize, height: usize, r: usize, c: usize) -> bool {
    let here = label[r * width + c];
    let neighbours = [
        (r > 0).then(|| (r - 1, c)),
        (r + 1 < height).then(|| (r + 1, c)),
        (c > 0).then(|| (r, c - 1)),
        (c + 1 < width).then(|| (r, c + 1)),
    ];
    neighbours
        .into_iter()
        .flatten()
        .any(|(nr, nc)| label[nr * width + nc] != here)
}

/// `grey` under `colour` at [`FILL_ALPHA`], rounded.
fn blend(grey: u8, colour: u8) -> u8 {
    let mixed = (u16::from(grey) * (256 - FILL_ALPHA) + u16::from(colour) * FILL_ALPHA + 128) >> 8;
    u8::try_from(mixed).expect("a convex blend of two bytes is a byte")
}

/// The rounded mean position `(z, y, x)` of the voxels with a drawn label (neither 0 nor
/// `ignore_label`); `None` when there are none.
pub fn foreground_centroid(
    labels: ArrayView3<'_, u16>,
    ignore_label: Option<u16>,
) -> Option<[usize; 3]> {
    let mut sum = [0.0f64; 3];
    let mut n = 0u64;
    for ((z, y, x), &l) in labels.indexed_iter() {
        if l != 0 && Some(l) != ignore_label {
            sum[0] += z as f64;
            sum[1] += y as f64;
            sum[2] += x as f64;
            n += 1;
        }
    }
    (n > 0).then(|| sum.map(|s| (s / n as f64).round() as usize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array3};

    fn canvas(image: &Array3<f32>, spacing: [f64; 3]) -> CaseCanvas<'_> {
        CaseCanvas {
            image: image.view(),
            spacing,
            window: Window { lo: 0.0, hi: 255.0 },
            ignore_label: None,
        }
    }

    #[test]
    fn window_is_numpys_half_and_99_5_percentile() {
        // np.percentile(np.arange(1000), [0.5, 99.5]) == [4.995, 994.005]
        let image = Array3::from_shape_fn((10, 10, 10), |(z, y, x)| (100 * z + 10 * y + x) as f32);
        let w = Window::from_percentiles(image.view()).unwrap();
        assert!(
            (w.lo - 4.995).abs() < 1e-4 && (w.hi - 994.005).abs() < 1e-3,
            "{w:?}"
        );
        assert_eq!((w.grey(4.0), w.grey(995.0), w.grey(f32::NAN)), (0, 255, 0));
        let exact = Window { lo: 0.0, hi: 200.0 };
        assert_eq!(
            (exact.grey(100.0), exact.grey(50.0), exact.grey(1.0)),
            (128, 64, 1)
        );
        let all_nan = Array3::from_elem((2, 2, 2), f32::NAN);
        assert_eq!(Window::from_percentiles(all_nan.view()), None);
    }

    #[test]
    fn a_labelled_voxel_is_half_blended_inside_and_opaque_on_its_outline() {
        let image = Array3::from_elem((9, 9, 9), 100.0f32);
        let mut labels = Array3::<u16>::zeros((9, 9, 9));
        labels.slice_mut(s![2..7, 2..7, 2..7]).fill(1);
        let panel = canvas(&image, [1.0; 3]).render(
            Some(labels.view()),
            Cut {
                view: View::Axial,
                index: 4,
            },
        );
        assert_eq!((panel.height, panel.width), (256, 256));
        // Label 1 is (230, 25, 75): half of it over grey 100, rounded.
        assert_eq!(panel.pixel(128, 128), [165, 63, 88]);
        assert_eq!(panel.pixel(10, 10), [100, 100, 100]);
        // Voxel row 2 starts at display row ceil(2 * 256 / 9 - 0.5) = 57: the outline.
        assert_eq!(panel.pixel(57, 128), [230, 25, 75]);
        assert_eq!(panel.pixel(56, 128), [100, 100, 100]);
        assert_eq!(panel.pixel(58, 128), [165, 63, 88]);
        let label_two = labels.mapv(|l| 2 * l);
        let panel = canvas(&image, [1.0; 3]).render(
            Some(label_two.view()),
            Cut {
                view: View::Axial,
                index: 4,
            },
        );
        assert_eq!(panel.pixel(128, 128), [80, 140, 88]);
    }

    #[test]
    fn panels_have_square_pixels_and_z_points_up() {
        let image = Array3::from_shape_fn((4, 10, 20), |(z, _, _)| 50.0 * z as f32);
        let c = canvas(&image, [3.0, 2.0, 1.0]);
        let size = |view| {
            let p = c.render(None, Cut { view, index: 1 });
            (p.height, p.width)
        };
        // Axial 10 x 2 mm by 20 x 1 mm; coronal 4 x 3 mm by 20 x 1 mm; sagittal 4 x 3 by 10 x 2.
        assert_eq!(size(View::Axial), (256, 256));
        assert_eq!(size(View::Coronal), (154, 256));
        assert_eq!(size(View::Sagittal), (154, 256));
        let coronal = c.render(
            None,
            Cut {
                view: View::Coronal,
                index: 0,
            },
        );
        assert_eq!(coronal.pixel(0, 0), [150, 150, 150]);
        assert_eq!(coronal.pixel(153, 0), [0, 0, 0]);
        assert_eq!(display_size(1, 3, 1.0, 1.0), (85, 256));
    }

    #[test]
    fn centroid_and_cuts_and_ignore_label() {
        let mut labels = Array3::<u16>::zeros((5, 6, 7));
        labels[[1, 2, 3]] = 1;
        labels[[3, 4, 5]] = 2;
        labels[[4, 5, 6]] = 9;
        assert_eq!(foreground_centroid(labels.view(), Some(9)), Some([2, 3, 4]));
        assert_eq!(
            foreground_centroid(Array3::<u16>::zeros((2, 2, 2)).view(), None),
            None
        );
        let cuts = cuts_through([2, 3, 4]);
        assert_eq!(
            cuts.map(|c| (c.view, c.index)),
            [(View::Axial, 2), (View::Coronal, 3), (View::Sagittal, 4)]
        );
        assert!(View::Axial.is_visible([1, 5, 5]) && !View::Coronal.is_visible([1, 5, 5]));
        let image = Array3::from_elem((5, 6, 7), 10.0f32);
        let mut c = canvas(&image, [1.0; 3]);
        c.ignore_label = Some(9);
        let panel = c.render(
            Some(labels.view()),
            Cut {
                view: View::Axial,
                index: 4,
            },
        );
        assert!(panel.pixels.iter().all(|&p| p == [10, 10, 10]));
    }
}
