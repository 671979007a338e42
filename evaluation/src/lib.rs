//! `autoseg-evaluation`: how good a segmentation is, and which model to keep.
//!
//! Owns metrics per class/region and case (Dice, IoU, sensitivity, specificity, surface
//! distances), `summary.json`, connected components and postprocessing, probability averaging
//! for ensembles, the best-configuration search and the HTML report.
//!
//! Must not: depend on libtorch or run networks; it reads predictions and references only.
