//! Foreground class locations: the voxels the training sampler may centre oversampled patches
//! on, drawn exactly as nnU-Net draws them.
//!
//! nnU-Net 2.8.1: `DefaultPreprocessor._sample_foreground_locations(seg, classes_or_regions,
//! seed=1234)` (`reference/nnunet.md` §4). For each class (one label) or region (several
//! labels) in the order given: the population is the voxels of its labels, label by label in
//! the order the region lists them, each label's voxels in C order; from `total` voxels it
//! keeps `n = max(min(10000, total), ceil(0.01 * total))` drawn without replacement by
//! `RandomState(1234).choice(total, n, replace=False)`, one generator shared by all classes
//! in turn (a class with no voxels draws nothing).

use ndarray::ArrayView3;

use crate::rng::RandomState;

/// nnU-Net's seed for class-location sampling.
pub const CLASS_LOCATION_SEED: u32 = 1234;

/// At most this many locations per class, unless 1 % of the class is more.
const MIN_NUM_SAMPLES: usize = 10_000;

/// The fraction of a class's voxels that is always kept.
const MIN_PERCENT_COVERAGE: f64 = 0.01;

/// What a list of locations belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LocationClass {
    /// One label (nnU-Net's `foreground_labels`).
    Label(i16),
    /// The union of several labels, in this order (nnU-Net's regions, and with an ignore
    /// label the tuple `(-1, *all_labels)`).
    Region(Vec<i16>),
}

impl LocationClass {
    fn labels(&self) -> &[i16] {
        match self {
            LocationClass::Label(label) => std::slice::from_ref(label),
            LocationClass::Region(labels) => labels,
        }
    }
}

/// The sampled voxels of one class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassLocations {
    /// The class or region.
    pub class: LocationClass,
    /// Voxel coordinates `(z, y, x)`, in sampling order; empty when the class is absent.
    pub voxels: Vec<[usize; 3]>,
}

/// Sample the locations of every class in `classes` from the label map `seg` `(z, y, x)` (the
/// resampled segmentation, −1 outside the nonzero mask), one [`ClassLocations`] per class in
/// the same order.
pub fn sample_class_locations(
    seg: ArrayView3<'_, i16>,
    classes: &[LocationClass],
) -> Vec<ClassLocations> {
    let voxels_by_label = collect_label_voxels(seg, classes);
    let (_, ny, nx) = seg.dim();
    let unflatten = |i: usize| [i / (ny * nx), (i / nx) % ny, i % nx];
    let mut rs = RandomState::new(CLASS_LOCATION_SEED);
    classes
        .iter()
        .map(|class| {
            let ranges: Vec<&[usize]> = class
                .labels()
                .iter()
                .filter_map(|&label| voxels_by_label.get(label))
                .filter(|voxels| !voxels.is_empty())
                .collect();
            let picked = sample_from_ranges(&ranges, &mut rs);
            ClassLocations {
                class: class.clone(),
                voxels: picked.into_iter().map(unflatten).collect(),
            }
        })
        .collect()
}

/// Flat C-order indices of the voxels of every label some class asks for.
struct LabelVoxels {
    /// Slot per label value (`label as u16` indexes it), into `voxels`.
    slot: Vec<Option<usize>>,
    voxels: Vec<Vec<usize>>,
}

impl LabelVoxels {
    fn get(&self, label: i16) -> Option<&[usize]> {
        self.slot[usize::from(label as u16)].map(|s| self.voxels[s].as_slice())
    }
}

fn collect_label_voxels(seg: ArrayView3<'_, i16>, classes: &[LocationClass]) -> LabelVoxels {
    let mut slot = vec![None; 1 << 16];
    let mut n_slots = 0;
    for &label in classes.iter().flat_map(LocationClass::labels) {
        let entry = &mut slot[usize::from(label as u16)];
        if entry.is_none() {
            *entry = Some(n_slots);
            n_slots += 1;
        }
    }
    let mut voxels = vec![Vec::new(); n_slots];
    for (flat, &label) in seg.iter().enumerate() {
        if let Some(s) = slot[usize::from(label as u16)] {
            voxels[s].push(flat);
        }
    }
    LabelVoxels { slot, voxels }
}

/// nnU-Net's draw over the concatenation of `ranges`: `choice(total, n, replace=False)`
/// offsets mapped back to the range they fall in.
fn sample_from_ranges(ranges: &[&[usize]], rs: &mut RandomState) -> Vec<usize> {
    let total: usize = ranges.iter().map(|r| r.len()).sum();
    if total == 0 {
        return Vec::new();
    }
    let n = MIN_NUM_SAMPLES
        .min(total)
        .max((total as f64 * MIN_PERCENT_COVERAGE).ceil() as usize);
    let offsets = rs
        .choice_without_replacement(total, n)
        .expect("n <= total: min(10000, total) and ceil(0.01 * total) are both <= total");
    offsets
        .into_iter()
        .map(|mut offset| {
            for range in ranges {
                if offset < range.len() {
                    return range[offset];
                }
                offset -= range.len();
            }
            unreachable!("offsets from choice(total, ..) are < total, the ranges' total length")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn sample_counts_follow_nnunet() {
        // 50 voxels of label 1: all kept; 20000 of label 2: 10000 kept, distinct.
        let mut seg = Array3::<i16>::zeros((10, 100, 30));
        seg.iter_mut().take(50).for_each(|v| *v = 1);
        seg.iter_mut().skip(100).take(20_000).for_each(|v| *v = 2);
        let classes = [
            LocationClass::Label(1),
            LocationClass::Label(2),
            LocationClass::Label(3),
        ];
        let locs = sample_class_locations(seg.view(), &classes);
        assert_eq!(locs[0].voxels.len(), 50);
        assert!(locs[0].voxels.iter().all(|&[z, y, x]| seg[[z, y, x]] == 1));
        assert_eq!(locs[1].voxels.len(), 10_000);
        let distinct: std::collections::HashSet<_> = locs[1].voxels.iter().collect();
        assert_eq!(distinct.len(), 10_000);
        assert!(locs[1].voxels.iter().all(|&[z, y, x]| seg[[z, y, x]] == 2));
        assert!(locs[2].voxels.is_empty());
    }

    #[test]
    fn one_percent_coverage_exceeds_ten_thousand_for_large_classes() {
        // 1_500_000 voxels: ceil(0.01 * total) = 15000 > 10000.
        let seg = Array3::<i16>::from_elem((15, 100, 1000), 4);
        let locs = sample_class_locations(seg.view(), &[LocationClass::Label(4)]);
        assert_eq!(locs[0].voxels.len(), 15_000);
    }

    // The expected draws below are the output of nnU-Net 2.8.1's own
    // `DefaultPreprocessor._sample_foreground_locations` (the function's source taken from
    // default_preprocessor.py and run with numpy 2.4.6 in a throwaway venv) on the same maps,
    // given as `seg[None, None]`; its `(0, 0, y, x)` rows are our `(0, y, x)`.

    #[test]
    fn draws_match_nnunet_for_a_small_class() {
        // f(np.ones((1, 1, 3, 4), np.int16), [1]): all 12 kept, in permutation order.
        let seg = Array3::<i16>::from_elem((1, 3, 4), 1);
        let locs = sample_class_locations(seg.view(), &[LocationClass::Label(1)]);
        let flat: Vec<usize> = locs[0].voxels.iter().map(|&[_, y, x]| y * 4 + x).collect();
        assert_eq!(flat, [7, 8, 11, 2, 9, 10, 1, 0, 4, 5, 6, 3]);
    }

    #[test]
    fn regions_concatenate_labels_in_the_order_given() {
        // f([2, 2, 2, 1, 1, 1], [(1, 2)]): the population is label 1's voxels, then label 2's.
        let seg = Array3::from_shape_vec((1, 1, 6), vec![2i16, 2, 2, 1, 1, 1]).unwrap();
        let locs = sample_class_locations(seg.view(), &[LocationClass::Region(vec![1, 2])]);
        let xs: Vec<usize> = locs[0].voxels.iter().map(|v| v[2]).collect();
        assert_eq!(xs, [5, 4, 2, 3, 1, 0]);
    }

    #[test]
    fn one_generator_is_shared_by_the_classes_in_turn() {
        // f([[1, 1, 1, 0, 2], [2, 2, 2, -1, -1]], [1, 3, 2, (-1, 0, 1, 2)]).
        let seg =
            Array3::from_shape_vec((1, 2, 5), vec![1i16, 1, 1, 0, 2, 2, 2, 2, -1, -1]).unwrap();
        let classes = [
            LocationClass::Label(1),
            LocationClass::Label(3),
            LocationClass::Label(2),
            LocationClass::Region(vec![-1, 0, 1, 2]),
        ];
        let locs = sample_class_locations(seg.view(), &classes);
        let yx = |l: &ClassLocations| l.voxels.iter().map(|v| (v[1], v[2])).collect::<Vec<_>>();
        assert_eq!(yx(&locs[0]), [(0, 0), (0, 1), (0, 2)]);
        assert_eq!(yx(&locs[1]), []);
        assert_eq!(yx(&locs[2]), [(1, 0), (1, 1), (1, 2), (0, 4)]);
        assert_eq!(
            yx(&locs[3]),
            [
                (0, 4),
                (0, 1),
                (1, 3),
                (0, 2),
                (0, 0),
                (0, 3),
                (1, 1),
                (1, 0),
                (1, 4),
                (1, 2)
            ]
        );
        assert_eq!(locs[3].class, classes[3]);
    }
}
