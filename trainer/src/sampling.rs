//! Patch sampling: nnU-Net's batch composition (uniform case draws with replacement, the last
//! third of every batch forced to contain foreground) and the lower corners of the crops, read
//! through the [`CaseSource`] trait so that the preprocessed cache format stays free.
//!
//! Crops are taken at the enlarged data-augmentation patch size `P0` ([`initial_patch_size`]);
//! the spatial transform later cuts them down to the final patch. 2D configurations sample
//! `(1, y, x)` crops (one slice) from the 3D volumes; the singleton axis is kept as `z = 1`.
//!
//! nnU-Net: `training/dataloading/data_loader.py::nnUNetDataLoader`,
//! `training/data_augmentation/compute_initial_patch_size.py::get_patch_size`.

use std::f64::consts::PI;

use autoseg_preprocessing::limits;
use autoseg_preprocessing::recycle::{filled_array, Pooled};
use ndarray::{s, Array4, ArrayView4};
use rand::Rng;

mod error;

pub use error::{DataError, SourceError};

/// nnU-Net's `oversample_foreground_percent`.
pub const NNUNET_OVERSAMPLE_FOREGROUND: f64 = 0.33;

/// nnU-Net's scale range used to enlarge the patch (`get_patch_size(.., (0.85, 1.25))`).
const INITIAL_PATCH_MIN_SCALE: f64 = 0.85;

/// The class a list of stored voxel locations belongs to (keys of nnU-Net's `class_locations`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocationClass {
    /// A foreground label.
    Label(i16),
    /// A region (region-based training): the labels it unites.
    Region(Vec<i16>),
    /// Every annotated voxel (datasets with an ignore label; nnU-Net's `(-1, *all_labels)` key).
    Annotated,
}

/// Stored voxel locations `(z, y, x)` of one class in one case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassLocations {
    /// The class.
    pub class: LocationClass,
    /// Voxels of that class (nnU-Net stores a random subset of at most 10,000).
    pub voxels: Vec<[usize; 3]>,
}

/// One preprocessed image plus segmentation crop: data `(c, z, y, x)`, seg `(s, z, y, x)` with
/// `s` the source's [`CaseSource::n_seg_channels`].
#[derive(Clone, Debug, PartialEq)]
pub struct Patch {
    /// Image channels `(c, z, y, x)`; 0 outside the case.
    pub data: Array4<f32>,
    /// Segmentation `(s, z, y, x)`: the label map, and for a cascade stage the previous stage's
    /// segmentation as channel 1; -1 outside the nonzero mask and outside the case.
    pub seg: Array4<i16>,
}

/// Where the sampler reads preprocessed cases from.
///
/// Implementations must be cheap to call from several worker threads at once.
pub trait CaseSource: Send + Sync {
    /// Number of cases.
    fn n_cases(&self) -> usize;
    /// Number of image channels (the same for every case).
    fn n_channels(&self) -> usize;
    /// Number of segmentation channels of each [`Patch::seg`]: 1 (the label map), 2 for a
    /// cascade stage (label map, previous stage's segmentation).
    fn n_seg_channels(&self) -> usize {
        1
    }
    /// Name of case `case_idx`, for error messages.
    fn case_name(&self, case_idx: usize) -> &str;
    /// Spatial shape `(z, y, x)` of case `case_idx`.
    fn shape(&self, case_idx: usize) -> [usize; 3];
    /// The crop `[lower, lower + size)` of case `case_idx`; data padded with 0 and seg with -1
    /// where the crop leaves the case.
    ///
    /// # Errors
    /// Whatever reading the case can fail with.
    fn read_patch(
        &self,
        case_idx: usize,
        lower: [isize; 3],
        size: [usize; 3],
    ) -> Result<Patch, SourceError>;
    /// Stored foreground locations of case `case_idx`.
    fn class_locations(&self, case_idx: usize) -> &[ClassLocations];
}

/// Copies the crop `[lower, lower + size)` of `array` `(c, z, y, x)`, filling what lies outside
/// with `pad`. nnU-Net: `acvl_utils.cropping_and_padding.bounding_boxes.crop_and_pad_nd`.
pub fn crop_and_pad<T: Pooled>(
    array: ArrayView4<'_, T>,
    lower: [isize; 3],
    size: [usize; 3],
    pad: T,
) -> Array4<T> {
    let n_channels = array.shape()[0];
    let mut out = filled_array([n_channels, size[0], size[1], size[2]], pad);
    let mut src = [(0isize, 0isize); 3];
    let mut dst = [(0isize, 0isize); 3];
    for axis in 0..3 {
        let extent = array.shape()[axis + 1] as isize;
        let lo = lower[axis].clamp(0, extent);
        let hi = (lower[axis] + size[axis] as isize).clamp(0, extent);
        let hi = hi.max(lo);
        src[axis] = (lo, hi);
        dst[axis] = (lo - lower[axis], hi - lower[axis]);
    }
    if src.iter().all(|&(lo, hi)| hi > lo) {
        out.slice_mut(s![
            ..,
            dst[0].0..dst[0].1,
            dst[1].0..dst[1].1,
            dst[2].0..dst[2].1
        ])
        .assign(&array.slice(s![
            ..,
            src[0].0..src[0].1,
            src[1].0..src[1].1,
            src[2].0..src[2].1
        ]));
    }
    out
}

/// The enlarged patch `P0` that survives rotating by up to `rotation_max` radians (capped at
/// 90°) about each axis separately and zooming out by 1/0.85; truncated to integers.
/// `patch` has 2 (2D) or 3 axes; 2D rotates the extent vector once.
///
/// nnU-Net: `compute_initial_patch_size.py::get_patch_size(ps, rot, rot, rot, (0.85, 1.25))`
/// (the caller then resets axis 0 for dummy-2D augmentation).
pub fn initial_patch_size(patch: &[usize], rotation_max: f64) -> Vec<usize> {
    initial_patch_size_scaled(patch, rotation_max, INITIAL_PATCH_MIN_SCALE)
}

/// [`initial_patch_size`] for another smallest scale factor: the rotated extent divided by
/// `min_scale` (nnU-Net's DA5 trainers pass the scaling range (0.7, 1.43), so 0.7).
///
/// nnU-Net: `get_patch_size(ps, rot, rot, rot, (min_scale, ..))`.
pub fn initial_patch_size_scaled(patch: &[usize], rotation_max: f64, min_scale: f64) -> Vec<usize> {
    let angle = rotation_max.abs().min(90.0 / 360.0 * 2.0 * PI);
    let coords: Vec<f64> = patch.iter().map(|&v| v as f64).collect();
    let mut extent = coords.clone();
    let rotated: Vec<Vec<f64>> = if coords.len() == 3 {
        (0..3)
            .map(|axis| rotate_row_vector_3d(&coords, axis, angle))
            .collect()
    } else {
        vec![rotate_row_vector_2d(&coords, angle)]
    };
    for r in rotated {
        for (e, v) in extent.iter_mut().zip(r) {
            *e = e.max(v.abs());
        }
    }
    extent.iter().map(|&e| (e / min_scale) as usize).collect()
}

/// `coords · R` for batchgenerators' rotation about array axis `axis` (row-vector convention of
/// `rotate_coords_3d`).
fn rotate_row_vector_3d(c: &[f64], axis: usize, angle: f64) -> Vec<f64> {
    let (sin, cos) = angle.sin_cos();
    match axis {
        0 => vec![c[0], c[1] * cos + c[2] * sin, -c[1] * sin + c[2] * cos],
        1 => vec![c[0] * cos - c[2] * sin, c[1], c[0] * sin + c[2] * cos],
        _ => vec![c[0] * cos + c[1] * sin, -c[0] * sin + c[1] * cos, c[2]],
    }
}

/// `coords · R` for batchgenerators' `rotate_coords_2d`.
fn rotate_row_vector_2d(c: &[f64], angle: f64) -> Vec<f64> {
    let (sin, cos) = angle.sin_cos();
    vec![c[0] * cos + c[1] * sin, -c[0] * sin + c[1] * cos]
}

/// Python's `round()` on a non-negative float: half to even.
pub(crate) fn round_half_even(v: f64) -> usize {
    v.round_ties_even() as usize
}

/// How one sample of a batch was drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrawnPatch {
    /// Index of the case in the source.
    pub case_idx: usize,
    /// Lower corner `(z, y, x)` of the crop (may be negative: padding).
    pub lower: [isize; 3],
    /// Whether this sample was forced to contain foreground.
    pub forced_foreground: bool,
}

/// nnU-Net's patch sampler for one configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchSampler {
    crop: [usize; 3],
    final_patch: [usize; 3],
    batch_size: usize,
    oversample_foreground: f64,
    has_ignore_label: bool,
}

impl PatchSampler {
    /// A sampler cropping `crop` (`P0`, `(z, y, x)`; `z = 1` for 2D) for a network patch of
    /// `final_patch`, with nnU-Net's foreground oversampling of 0.33. Validation uses
    /// `crop == final_patch`.
    ///
    /// # Errors
    /// [`DataError::BatchSize`] for a zero batch size, [`DataError::PatchSize`] for a zero extent
    /// or a crop smaller than the final patch, [`DataError::OverCeiling`] when one batch of crops
    /// (one float32 channel) passes the memory ceiling.
    pub fn new(
        crop: [usize; 3],
        final_patch: [usize; 3],
        batch_size: usize,
        has_ignore_label: bool,
    ) -> Result<PatchSampler, DataError> {
        if batch_size == 0 {
            return Err(DataError::BatchSize);
        }
        let bad = |p: [usize; 3]| p.contains(&0);
        if bad(crop) || bad(final_patch) || (0..3).any(|a| crop[a] < final_patch[a]) {
            return Err(DataError::PatchSize {
                patch: crop.to_vec(),
            });
        }
        let bytes = limits::volume_bytes(batch_size, crop, std::mem::size_of::<f32>());
        limits::check_volume_bytes(bytes).map_err(|memory| DataError::OverCeiling {
            crop,
            batch_size,
            memory,
        })?;
        Ok(PatchSampler {
            crop,
            final_patch,
            batch_size,
            oversample_foreground: NNUNET_OVERSAMPLE_FOREGROUND,
            has_ignore_label,
        })
    }

    /// The same sampler forcing foreground into a `share` of each batch instead of nnU-Net's
    /// 0.33 (`training.oversample_foreground`; checked to lie in [0, 1] by the plan).
    pub fn with_oversampling(self, share: f64) -> PatchSampler {
        PatchSampler {
            oversample_foreground: share,
            ..self
        }
    }

    /// The crop size `(z, y, x)` this sampler reads.
    pub fn crop(&self) -> [usize; 3] {
        self.crop
    }

    /// The network patch `(z, y, x)` the augmentation cuts the crop down to.
    pub fn final_patch(&self) -> [usize; 3] {
        self.final_patch
    }

    /// Samples per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Whether sample `sample_idx` of a batch must contain foreground: nnU-Net's
    /// `not j < round(bs * (1 - 0.33))` with Python's half-to-even `round`.
    pub fn is_forced_foreground(&self, sample_idx: usize) -> bool {
        let n_random = round_half_even(self.batch_size as f64 * (1.0 - self.oversample_foreground));
        sample_idx >= n_random
    }

    /// Draws the cases and crop corners of one batch (cases uniformly with replacement).
    ///
    /// # Errors
    /// [`DataError::NoCases`] when the source is empty.
    pub fn draw_batch<R: Rng>(
        &self,
        rng: &mut R,
        source: &dyn CaseSource,
    ) -> Result<Vec<DrawnPatch>, DataError> {
        let n_cases = source.n_cases();
        if n_cases == 0 {
            return Err(DataError::NoCases);
        }
        let cases: Vec<usize> = (0..self.batch_size)
            .map(|_| rng.gen_range(0..n_cases))
            .collect();
        Ok(cases
            .into_iter()
            .enumerate()
            .map(|(j, case_idx)| {
                let forced = self.is_forced_foreground(j);
                let shape = source.shape(case_idx);
                let locations = source.class_locations(case_idx);
                DrawnPatch {
                    case_idx,
                    lower: self.lower_corner(rng, shape, forced, locations),
                    forced_foreground: forced,
                }
            })
            .collect())
    }

    /// Reads the crop of a drawn sample from the source and checks its shape.
    ///
    /// # Errors
    /// [`DataError::ReadPatch`] when the source fails, [`DataError::PatchShape`] when it returns
    /// arrays of another shape.
    pub fn read(&self, source: &dyn CaseSource, drawn: &DrawnPatch) -> Result<Patch, DataError> {
        let case = || source.case_name(drawn.case_idx).to_string();
        let patch = source
            .read_patch(drawn.case_idx, drawn.lower, self.crop)
            .map_err(|e| DataError::ReadPatch {
                case: case(),
                lower: drawn.lower,
                size: self.crop,
                source: e,
            })?;
        let [z, y, x] = self.crop;
        let n_channels = source.n_channels();
        let n_seg = source.n_seg_channels();
        if patch.data.shape() != [n_channels, z, y, x] || patch.seg.shape() != [n_seg, z, y, x] {
            return Err(DataError::PatchShape {
                case: case(),
                size: self.crop,
                n_channels,
                data: patch.data.shape().to_vec(),
                seg: patch.seg.shape().to_vec(),
            });
        }
        Ok(patch)
    }

    /// The crop's lower corner for a case of spatial `shape` (nnU-Net's `get_bbox`): uniform in
    /// `[lb, ub]` per axis, or centred on a stored foreground voxel when `forced` (and on an
    /// annotated voxel for ignore-label datasets), `lb = max(lb_min, voxel - P0 // 2)`.
    pub fn lower_corner<R: Rng>(
        &self,
        rng: &mut R,
        shape: [usize; 3],
        forced: bool,
        locations: &[ClassLocations],
    ) -> [isize; 3] {
        let (lbs, ubs) = self.corner_bounds(shape);
        let chosen = if forced {
            choose_foreground_class(rng, locations)
        } else if self.has_ignore_label {
            locations
                .iter()
                .find(|l| l.class == LocationClass::Annotated && !l.voxels.is_empty())
        } else {
            None
        };
        match chosen {
            Some(class) => {
                let voxel = class.voxels[rng.gen_range(0..class.voxels.len())];
                std::array::from_fn(|a| lbs[a].max(voxel[a] as isize - (self.crop[a] / 2) as isize))
            }
            None => std::array::from_fn(|a| rng.gen_range(lbs[a]..=ubs[a])),
        }
    }

    /// Per-axis range `[lb, ub]` of random lower corners; `need_to_pad = P0 - final` grows so
    /// that a case smaller than `P0` still fits; `lb = (-need) // 2` with Python's floor division.
    fn corner_bounds(&self, shape: [usize; 3]) -> ([isize; 3], [isize; 3]) {
        let mut lbs = [0isize; 3];
        let mut ubs = [0isize; 3];
        for a in 0..3 {
            let crop = self.crop[a] as isize;
            let extent = shape[a] as isize;
            let mut need = crop - self.final_patch[a] as isize;
            if need + extent < crop {
                need = crop - extent;
            }
            lbs[a] = (-need).div_euclid(2);
            ubs[a] = extent + need / 2 + need % 2 - crop;
        }
        (lbs, ubs)
    }
}

/// A class chosen uniformly among those with stored voxels; the `Annotated` entry only when it
/// is the only one (nnU-Net pops it from the eligible list otherwise). `None`: no foreground.
fn choose_foreground_class<'a, R: Rng>(
    rng: &mut R,
    locations: &'a [ClassLocations],
) -> Option<&'a ClassLocations> {
    let mut eligible: Vec<&ClassLocations> =
        locations.iter().filter(|l| !l.voxels.is_empty()).collect();
    if eligible.len() > 1 {
        if let Some(pos) = eligible
            .iter()
            .position(|l| l.class == LocationClass::Annotated)
        {
            eligible.remove(pos);
        }
    }
    if eligible.is_empty() {
        return None;
    }
    Some(eligible[rng.gen_range(0..eligible.len())])
}

/// One case held in memory (tests, benchmarks, small datasets).
#[derive(Clone, Debug)]
pub struct InMemoryCase {
    /// Case name.
    pub name: String,
    /// Image `(c, z, y, x)`.
    pub data: Array4<f32>,
    /// Segmentation `(1, z, y, x)`, -1 outside the nonzero mask.
    pub seg: Array4<i16>,
    /// Foreground locations.
    pub locations: Vec<ClassLocations>,
}

impl InMemoryCase {
    /// A case whose class locations are every voxel of each label > 0 (sorted by label).
    pub fn new(name: &str, data: Array4<f32>, seg: Array4<i16>) -> InMemoryCase {
        let mut by_label: std::collections::BTreeMap<i16, Vec<[usize; 3]>> = Default::default();
        for ((_, z, y, x), &v) in seg.indexed_iter() {
            if v > 0 {
                by_label.entry(v).or_default().push([z, y, x]);
            }
        }
        let locations = by_label
            .into_iter()
            .map(|(label, voxels)| ClassLocations {
                class: LocationClass::Label(label),
                voxels,
            })
            .collect();
        InMemoryCase {
            name: name.to_string(),
            data,
            seg,
            locations,
        }
    }
}

/// A [`CaseSource`] over cases held in memory.
#[derive(Clone, Debug, Default)]
pub struct InMemorySource {
    cases: Vec<InMemoryCase>,
    n_channels: usize,
}

impl InMemorySource {
    /// A source over `cases`; every case must have the same number of channels and matching
    /// data/seg spatial shapes.
    ///
    /// # Errors
    /// [`DataError::PatchShape`] naming the first case that breaks this.
    pub fn new(cases: Vec<InMemoryCase>) -> Result<InMemorySource, DataError> {
        let n_channels = cases.first().map_or(0, |c| c.data.shape()[0]);
        for case in &cases {
            let d = case.data.shape();
            let g = case.seg.shape();
            if d[0] != n_channels || g[0] != 1 || d[1..] != g[1..] {
                return Err(DataError::PatchShape {
                    case: case.name.clone(),
                    size: [d[1], d[2], d[3]],
                    n_channels,
                    data: d.to_vec(),
                    seg: g.to_vec(),
                });
            }
        }
        Ok(InMemorySource { cases, n_channels })
    }
}

impl CaseSource for InMemorySource {
    fn n_cases(&self) -> usize {
        self.cases.len()
    }

    fn n_channels(&self) -> usize {
        self.n_channels
    }

    fn case_name(&self, case_idx: usize) -> &str {
        &self.cases[case_idx].name
    }

    fn shape(&self, case_idx: usize) -> [usize; 3] {
        let s = self.cases[case_idx].data.shape();
        [s[1], s[2], s[3]]
    }

    fn read_patch(
        &self,
        case_idx: usize,
        lower: [isize; 3],
        size: [usize; 3],
    ) -> Result<Patch, SourceError> {
        let case = &self.cases[case_idx];
        Ok(Patch {
            data: crop_and_pad(case.data.view(), lower, size, 0.0),
            seg: crop_and_pad(case.seg.view(), lower, size, -1),
        })
    }

    fn class_locations(&self, case_idx: usize) -> &[ClassLocations] {
        &self.cases[case_idx].locations
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(17)
    }

    fn one_case(shape: [usize; 3], foreground: &[[usize; 3]]) -> InMemoryCase {
        let [z, y, x] = shape;
        let data = Array4::<f32>::zeros((1, z, y, x));
        let mut seg = Array4::<i16>::zeros((1, z, y, x));
        for v in foreground {
            seg[[0, v[0], v[1], v[2]]] = 1;
        }
        InMemoryCase::new("case", data, seg)
    }

    #[test]
    fn forced_foreground_is_the_last_third_of_every_batch() {
        // nnU-Net: bs 2 -> 1 forced sample, bs 9 -> 3 (reference §6.4); in general
        // bs - round(bs · 0.67), which equals round(bs · 0.33) (Python: bs 50 -> 50 · 0.67 =
        // 33.5 -> 34, so 16).
        for (bs, want) in [
            (1, 0),
            (2, 1),
            (3, 1),
            (4, 1),
            (5, 2),
            (9, 3),
            (12, 4),
            (50, 16),
        ] {
            let s = PatchSampler::new([8, 8, 8], [8, 8, 8], bs, false).unwrap();
            let forced = (0..bs).filter(|&j| s.is_forced_foreground(j)).count();
            assert_eq!(forced, want, "batch size {bs}");
            assert_eq!(forced, round_half_even(bs as f64 * 0.33), "batch size {bs}");
        }
        // training.oversample_foreground: nnU-Net's `not j < round(bs * (1 - p))`; for bs 9:
        // p = 1 -> 9 forced, p = 0 -> 0, p = 0.5 -> round(4.5) = 4 random, so 5 forced.
        for (share, want) in [(1.0, 9), (0.0, 0), (0.5, 5)] {
            let s = PatchSampler::new([8, 8, 8], [8, 8, 8], 9, false)
                .unwrap()
                .with_oversampling(share);
            let forced = (0..9).filter(|&j| s.is_forced_foreground(j)).count();
            assert_eq!(forced, want, "share {share}");
        }
        let source = InMemorySource::new(vec![
            one_case([30, 30, 30], &[[3, 25, 4]]),
            one_case([20, 40, 30], &[[18, 2, 29]]),
        ])
        .unwrap();
        let s = PatchSampler::new([12, 12, 12], [8, 8, 8], 9, false).unwrap();
        let mut rng = rng();
        for _ in 0..200 {
            let batch = s.draw_batch(&mut rng, &source).unwrap();
            let flags: Vec<bool> = batch.iter().map(|d| d.forced_foreground).collect();
            assert_eq!(flags, [vec![false; 6], vec![true; 3]].concat());
            for d in batch.iter().filter(|d| d.forced_foreground) {
                let v = source.class_locations(d.case_idx)[0].voxels[0];
                let inside = (0..3).all(|a| {
                    let lo = d.lower[a];
                    (lo..lo + 12).contains(&(v[a] as isize))
                });
                assert!(inside, "{d:?} misses voxel {v:?}");
            }
        }
    }

    #[test]
    fn random_corners_span_nnunets_bounds() {
        // P0 73, final 40, shape 100: need 33, lb = (-33) // 2 = -17, ub = 100 + 16 + 1 - 73.
        // A case of 20 < 73 needs 53: lb = -27, ub = 20 + 26 + 1 - 73 = -26.
        let s = PatchSampler::new([73, 73, 1], [40, 40, 1], 2, false).unwrap();
        let mut rng = rng();
        let (mut lo, mut hi) = ([isize::MAX; 3], [isize::MIN; 3]);
        for _ in 0..5000 {
            let c = s.lower_corner(&mut rng, [100, 20, 7], false, &[]);
            for a in 0..3 {
                lo[a] = lo[a].min(c[a]);
                hi[a] = hi[a].max(c[a]);
            }
        }
        assert_eq!(lo, [-17, -27, 0]);
        assert_eq!(hi, [44, -26, 6]);
    }

    #[test]
    fn forced_corners_centre_the_voxel_with_only_a_lower_clamp() {
        let s = PatchSampler::new([73, 73, 73], [40, 40, 40], 2, false).unwrap();
        let locations = [ClassLocations {
            class: LocationClass::Label(1),
            voxels: vec![[5, 90, 50]],
        }];
        let c = s.lower_corner(&mut rng(), [100, 100, 100], true, &locations);
        // max(-17, 5 - 36), 90 - 36 (beyond ub 44: no upper clamp), 50 - 36.
        assert_eq!(c, [-17, 54, 14]);
    }

    #[test]
    fn annotated_key_is_used_only_when_alone_or_for_ignore_labels() {
        let s = PatchSampler::new([4, 4, 4], [4, 4, 4], 2, true).unwrap();
        let both = [
            ClassLocations {
                class: LocationClass::Annotated,
                voxels: vec![[10, 10, 10]],
            },
            ClassLocations {
                class: LocationClass::Label(2),
                voxels: vec![[30, 30, 30]],
            },
        ];
        let mut rng = rng();
        for _ in 0..50 {
            assert_eq!(s.lower_corner(&mut rng, [40; 3], true, &both), [28; 3]);
            // Not forced, with an ignore label: centred on an annotated voxel.
            assert_eq!(s.lower_corner(&mut rng, [40; 3], false, &both), [8; 3]);
        }
        assert_eq!(s.lower_corner(&mut rng, [40; 3], true, &both[..1]), [8; 3]);
    }

    #[test]
    fn cases_are_drawn_uniformly_with_replacement() {
        let cases = (0..4).map(|_| one_case([4, 4, 4], &[])).collect();
        let source = InMemorySource::new(cases).unwrap();
        let s = PatchSampler::new([4, 4, 4], [4, 4, 4], 5, false).unwrap();
        let mut rng = rng();
        let mut counts = [0usize; 4];
        let mut repeats = 0;
        for _ in 0..4000 {
            let batch = s.draw_batch(&mut rng, &source).unwrap();
            let mut seen = [false; 4];
            for d in &batch {
                counts[d.case_idx] += 1;
                repeats += usize::from(seen[d.case_idx]);
                seen[d.case_idx] = true;
            }
        }
        // 20,000 draws: each case 5,000 ± 61 (1 sd); 5 draws from 4 cases always repeat.
        assert!(counts.iter().all(|&c| c.abs_diff(5000) < 300), "{counts:?}");
        assert!(repeats >= 4000);
    }

    #[test]
    fn crop_and_pad_fills_outside() {
        let a = Array4::from_shape_fn((1, 2, 3, 4), |(_, z, y, x)| (z * 100 + y * 10 + x) as i16);
        let c = crop_and_pad(a.view(), [-1, 1, 2], [3, 3, 3], -1);
        assert_eq!(c.shape(), &[1, 3, 3, 3]);
        assert_eq!(c[[0, 0, 0, 0]], -1);
        assert_eq!(c[[0, 1, 0, 0]], 12);
        assert_eq!(c[[0, 2, 1, 1]], 123);
        assert_eq!(c[[0, 2, 2, 1]], -1);
        assert_eq!(c[[0, 1, 0, 2]], -1);
        let far = crop_and_pad(a.view(), [5, 0, 0], [1, 1, 1], 7);
        assert_eq!(far[[0, 0, 0, 0]], 7);
    }

    #[test]
    fn sources_and_samplers_reject_bad_input() {
        assert!(matches!(
            PatchSampler::new([4, 4, 4], [4, 4, 4], 0, false),
            Err(DataError::BatchSize)
        ));
        assert!(PatchSampler::new([4, 4, 4], [8, 4, 4], 1, false).is_err());
        let bad = InMemoryCase {
            name: "bad".into(),
            data: Array4::zeros((1, 2, 2, 2)),
            seg: Array4::zeros((1, 2, 2, 3)),
            locations: vec![],
        };
        let err = InMemorySource::new(vec![bad]).unwrap_err();
        assert!(err.to_string().contains("case 'bad'"));
        let empty = InMemorySource::new(vec![]).unwrap();
        let s = PatchSampler::new([4, 4, 4], [4, 4, 4], 1, false).unwrap();
        assert!(matches!(
            s.draw_batch(&mut rng(), &empty),
            Err(DataError::NoCases)
        ));
    }
}
