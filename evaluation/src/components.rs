//! Connected components with full connectivity (26 neighbours in 3D; a 2D image stored as
//! `(1, y, x)` therefore gets 8-connectivity), and "keep the largest component".
//!
//! Labelling is one raster scan with union-find over the 13 already-visited neighbours, then a
//! relabelling pass that numbers components by their first voxel in raster order (as
//! `skimage.measure.label` does). Voxels join when they hold the same non-background value, so
//! one scan labels the components of every label at once.
//!
//! nnU-Net: `acvl_utils.morphology.morphology_helper.remove_all_but_largest_component` keeps
//! *every* component whose size equals the largest size; so does [`keep_largest_component`].

use std::collections::HashMap;

use ndarray::{Array3, ArrayView3, ArrayViewMut3, Zip};

use crate::classes::LabelVoxel;

/// The connected components of an image.
#[derive(Clone, Debug, PartialEq)]
pub struct Components {
    /// Component id per voxel: 0 for background, else 1..=n in raster order of first voxel.
    pub ids: Array3<u32>,
    /// Voxel count of component `i + 1` at index `i`.
    pub sizes: Vec<u64>,
}

/// Components of the `true` voxels of a mask (26-connectivity).
///
/// # Shapes
/// `mask`: `(z, y, x)`; [`Components::ids`] has the same shape.
pub fn label_mask(mask: ArrayView3<'_, bool>) -> Components {
    let mask = mask.as_standard_layout();
    let keys = mask.as_slice().expect("standard layout is contiguous");
    label_keys(keys, mask.dim(), false)
}

/// Components of every label at once: neighbours join when they hold the same non-zero value.
///
/// # Shapes
/// `segmentation`: `(z, y, x)`; [`Components::ids`] has the same shape.
pub fn label_components<T: LabelVoxel>(segmentation: ArrayView3<'_, T>) -> Components {
    let keys: Array3<i64> = segmentation.mapv(|v| v.to_i64());
    let keys = keys.as_slice().expect("a fresh array is contiguous");
    label_keys(keys, segmentation.dim(), 0)
}

/// Only the largest component(s) of the mask stay `true` (ties: all of the largest size).
pub fn keep_largest_component(mask: ArrayView3<'_, bool>) -> Array3<bool> {
    let components = label_mask(mask);
    let largest = components.sizes.iter().copied().max().unwrap_or(0);
    components
        .ids
        .mapv(|id| id > 0 && components.sizes[id as usize - 1] == largest)
}

/// In a label map, keeps only the largest component of the union of `labels`; the voxels of
/// the other components become background 0. nnU-Net:
/// `remove_all_but_largest_component_from_segmentation`.
pub fn keep_largest_component_of<T: LabelVoxel>(
    mut segmentation: ArrayViewMut3<'_, T>,
    labels: &[u16],
) {
    let in_union = |v: T| labels.iter().any(|&l| i64::from(l) == v.to_i64());
    let mask = segmentation.mapv(in_union);
    let keep = keep_largest_component(mask.view());
    Zip::from(&mut segmentation)
        .and(&mask)
        .and(&keep)
        .for_each(|v, &m, &k| {
            if m && !k {
                *v = T::BACKGROUND;
            }
        });
}

/// For each label of `labels` separately, keeps only its largest component(s) (one labelling
/// pass for all labels); removed voxels become background 0. Labels are disjoint, so this equals
/// [`keep_largest_component_of`] applied once per label.
pub fn keep_largest_component_per_label<T: LabelVoxel>(
    mut segmentation: ArrayViewMut3<'_, T>,
    labels: &[u16],
) {
    let components = label_components(segmentation.view());
    let n = components.sizes.len();
    let mut value_of = vec![0i64; n];
    Zip::from(&components.ids)
        .and(&segmentation)
        .for_each(|&id, v| {
            if id > 0 {
                value_of[id as usize - 1] = v.to_i64();
            }
        });
    let mut largest: HashMap<i64, u64> = HashMap::new();
    for (&value, &size) in value_of.iter().zip(&components.sizes) {
        let entry = largest.entry(value).or_insert(0);
        *entry = (*entry).max(size);
    }
    let selected = |value: i64| labels.iter().any(|&l| i64::from(l) == value);
    let drop: Vec<bool> = (0..n)
        .map(|i| selected(value_of[i]) && components.sizes[i] < largest[&value_of[i]])
        .collect();
    Zip::from(&mut segmentation)
        .and(&components.ids)
        .for_each(|v, &id| {
            if id > 0 && drop[id as usize - 1] {
                *v = T::BACKGROUND;
            }
        });
}

/// Union-find over provisional component ids.
struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    fn make(&mut self) -> u32 {
        let id = self.parent.len() as u32;
        self.parent.push(id);
        id
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand;
            x = grand;
        }
        x
    }

    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (low, high) = (ra.min(rb), ra.max(rb));
            self.parent[high as usize] = low;
        }
    }
}

/// The 13 neighbour offsets `(dz, dy, dx)` visited before a voxel in raster order.
const PREVIOUS: [[isize; 3]; 13] = [
    [-1, -1, -1],
    [-1, -1, 0],
    [-1, -1, 1],
    [-1, 0, -1],
    [-1, 0, 0],
    [-1, 0, 1],
    [-1, 1, -1],
    [-1, 1, 0],
    [-1, 1, 1],
    [0, -1, -1],
    [0, -1, 0],
    [0, -1, 1],
    [0, 0, -1],
];

/// Labels a C-ordered `(z, y, x)` array of keys; `background` keys belong to no component.
fn label_keys<K: Copy + PartialEq>(
    keys: &[K],
    dim: (usize, usize, usize),
    background: K,
) -> Components {
    let (nz, ny, nx) = dim;
    let mut provisional = vec![u32::MAX; keys.len()];
    let mut sets = UnionFind { parent: Vec::new() };
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let idx = (z * ny + y) * nx + x;
                if keys[idx] == background {
                    continue;
                }
                let mut own = None;
                for [dz, dy, dx] in PREVIOUS {
                    let (Some(zz), Some(yy), Some(xx)) = (
                        z.checked_add_signed(dz),
                        y.checked_add_signed(dy),
                        x.checked_add_signed(dx),
                    ) else {
                        continue;
                    };
                    if yy >= ny || xx >= nx {
                        continue;
                    }
                    let n_idx = (zz * ny + yy) * nx + xx;
                    if keys[n_idx] != keys[idx] {
                        continue;
                    }
                    let neighbour = provisional[n_idx];
                    match own {
                        None => own = Some(neighbour),
                        Some(id) => sets.union(id, neighbour),
                    }
                }
                provisional[idx] = own.unwrap_or_else(|| sets.make());
            }
        }
    }
    relabel(&provisional, dim, &mut sets)
}

/// Final ids in raster order of first voxel, and component sizes.
fn relabel(provisional: &[u32], dim: (usize, usize, usize), sets: &mut UnionFind) -> Components {
    let mut final_id = vec![0u32; sets.parent.len()];
    let mut sizes = Vec::new();
    let ids: Vec<u32> = provisional
        .iter()
        .map(|&p| {
            if p == u32::MAX {
                return 0;
            }
            let root = sets.find(p) as usize;
            if final_id[root] == 0 {
                sizes.push(0);
                final_id[root] = sizes.len() as u32;
            }
            sizes[final_id[root] as usize - 1] += 1;
            final_id[root]
        })
        .collect();
    Components {
        ids: Array3::from_shape_vec(dim, ids).expect("one id per voxel"),
        sizes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array3};

    #[test]
    fn diagonal_neighbours_join_in_3d() {
        let mut mask = Array3::from_elem((3, 3, 3), false);
        mask[[0, 0, 0]] = true;
        mask[[1, 1, 1]] = true;
        mask[[2, 2, 2]] = true;
        mask[[0, 2, 0]] = true;
        let c = label_mask(mask.view());
        // Voxels touching only at corners still form one component.
        assert_eq!(c.sizes, vec![4]);
    }

    #[test]
    fn a_ring_is_one_component_and_two_blobs_are_two() {
        let mut mask = Array3::from_elem((1, 7, 7), false);
        mask.slice_mut(s![.., 1..6, 1..6]).fill(true);
        mask.slice_mut(s![.., 2..5, 2..5]).fill(false);
        assert_eq!(label_mask(mask.view()).sizes, vec![16]);
        let mut blobs = Array3::from_elem((4, 10, 10), false);
        blobs.slice_mut(s![0..2, 0..3, 0..3]).fill(true);
        blobs.slice_mut(s![1..4, 5..9, 5..9]).fill(true);
        let c = label_mask(blobs.view());
        assert_eq!(c.sizes, vec![18, 48]);
        let kept = keep_largest_component(blobs.view());
        assert_eq!(kept.iter().filter(|&&k| k).count(), 48);
        assert!(!kept[[0, 0, 0]] && kept[[2, 6, 6]]);
    }

    #[test]
    fn equal_largest_components_are_all_kept() {
        let mut mask = Array3::from_elem((1, 1, 7), false);
        mask.slice_mut(s![.., .., 0..2]).fill(true);
        mask.slice_mut(s![.., .., 3..5]).fill(true);
        mask[[0, 0, 6]] = true;
        let kept = keep_largest_component(mask.view());
        assert_eq!(kept.iter().filter(|&&k| k).count(), 4);
    }

    #[test]
    fn per_label_keeps_each_labels_largest_component() {
        // Row: 1 1 0 1 2 2 2 0 2 ; label 2's pieces touch label 1 but never join it.
        let row = [1u8, 1, 0, 1, 2, 2, 2, 0, 2];
        let mut seg = Array3::from_shape_vec((1, 1, 9), row.to_vec()).unwrap();
        let c = label_components(seg.view());
        assert_eq!(c.sizes, vec![2, 1, 3, 1]);
        let mut one_by_one = seg.clone();
        keep_largest_component_per_label(seg.view_mut(), &[1, 2]);
        assert_eq!(seg.as_slice().unwrap(), &[1, 1, 0, 0, 2, 2, 2, 0, 0]);
        keep_largest_component_of(one_by_one.view_mut(), &[1]);
        keep_largest_component_of(one_by_one.view_mut(), &[2]);
        assert_eq!(one_by_one, seg);
    }

    #[test]
    fn union_of_labels_is_one_mask() {
        let row = [1u8, 2, 0, 1, 0, 0];
        let mut seg = Array3::from_shape_vec((1, 1, 6), row.to_vec()).unwrap();
        keep_largest_component_of(seg.view_mut(), &[1, 2]);
        assert_eq!(seg.as_slice().unwrap(), &[1, 2, 0, 0, 0, 0]);
    }
}
