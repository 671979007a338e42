//! The predictor: trained folds of one configuration, loaded from a model folder, predicting
//! raw cases (or preprocessed ones) into masks and probabilities in the input's geometry.
//!
//! nnU-Net: `predict_from_raw_data.py::nnUNetPredictor` (`initialize_from_trained_model_folder`,
//! `predict_from_files`, `predict_logits_from_preprocessed_data`) and
//! `nnUNetTrainer.perform_actual_validation` (`reference/nnunet.md` §7, §6.7).
//!
//! One module per job: `model` loads a model folder's checkpoints and dataset description,
//! `inputs` finds the cases of an input folder, `next_stage` writes a cascade's next-stage
//! inputs, `validation` is the final validation of a trained fold, and this module predicts.
//!
//! Per case: preprocessing exactly as for training (without a label map), the Gaussian sliding
//! window with mirroring over every patch axis (nnU-Net's `inference_allowed_mirroring_axes`
//! of the default trainer), the folds' logits averaged ([`ensemble_logits`]), then
//! [`export_logits`].

mod error;
mod import;
mod inputs;
mod model;
mod model_zip;
mod next_stage;
mod nnunet;
mod nnunet_best;
mod nnunet_export;
mod nnunet_postprocessing;
mod nnunet_zip;
pub(crate) mod validation;
mod zip_entries;

use std::path::{Path, PathBuf};

use autoseg_evaluation::{
    apply_postprocessing, probabilities_file, properties_file, write_probabilities,
    PostprocessingPlan, ProbabilityProperties, SegmentationRule,
};
use autoseg_network::checkpoint::CheckpointKind;
use autoseg_planner::{Configuration, Plans, WorkLayout};
use autoseg_preprocessing::cache::append_one_hot;
use autoseg_preprocessing::{
    preprocess_arrays, preprocess_case, read_channels, write_label_map, Case, CaseProperties,
    DatasetJson, Geometry, LabelMap, PreprocessSpec,
};
use ndarray::{Array4, Axis};
use tch::{Device, Tensor};

pub use error::PredictError;
pub use import::{import_nnunet, ImportSummary};
pub use inputs::{
    already_predicted, case_id_of, discover_input_cases, select_cases, InputCase, Part,
};
pub use model_zip::{export_model, is_model_zip, unpack_model_zip};
pub use nnunet::is_nnunet_model_folder;
pub use nnunet_best::{
    is_nnunet_results_folder, read_nnunet_best_choice, NnUnetBestChoice, INFERENCE_INFORMATION,
};
pub use nnunet_export::export_nnunet;
pub use nnunet_postprocessing::{nnunet_postprocessing, read_nnunet_postprocessing};
pub use nnunet_zip::{nnunet_zip_configurations, unpack_nnunet_results_zip, unpack_nnunet_zip};

use crate::{
    array4_to_tensor, ensemble_logits, export_logits, Accumulator, ExportSpec, InferenceError,
    Segmenter, SlidingWindowSettings,
};
use crate::{Phase, PhaseClock, PhaseTimes};
use error::io_err;
use model::{
    cascade_channels, check_dataset, check_same_model, load_fold, model_dataset_json,
    read_fold_meta, warn_if_plans_changed, FoldModel,
};

/// gzip level of written masks: label maps are mostly zeros, and level 1 compresses them
/// nearly as well as 6, several times faster.
const MASK_GZIP_LEVEL: u32 = 1;

/// How cases are predicted.
#[derive(Clone, Debug, PartialEq)]
pub struct PredictOptions {
    /// Sliding-window step as a fraction of the patch, in `(0, 1]`.
    pub step: f64,
    /// Mirroring test-time augmentation over every patch axis.
    pub use_mirroring: bool,
    /// Also export float32 probabilities.
    pub save_probabilities: bool,
    /// Accumulate the sliding window's logits in float32 instead of nnU-Net's float16 (twice
    /// the memory; for logits large enough to overflow float16).
    pub accumulate_fp32: bool,
}

impl PredictOptions {
    /// nnU-Net's `nnUNetv2_predict` defaults: step 0.5, mirroring on, no probabilities.
    pub fn nnunet() -> PredictOptions {
        PredictOptions {
            step: 0.5,
            use_mirroring: true,
            save_probabilities: false,
            accumulate_fp32: false,
        }
    }
}

/// A case read and preprocessed, ready for the network.
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedCase {
    /// Image `(c, z, y, x)` on the configuration's grid (a cascade: the first stage's grid).
    pub data: Array4<f32>,
    /// What export needs to restore the input's grid.
    pub properties: CaseProperties,
    /// The channel files as read, kept only for a cascade, whose second stage preprocesses
    /// them again together with the first stage's segmentation.
    pub images: Option<RawImages>,
}

/// A case's channels as read from its files: `(c, z, y, x)` in file axis order, and the first
/// channel's geometry.
#[derive(Clone, Debug, PartialEq)]
pub struct RawImages {
    /// The channels.
    pub data: Array4<f32>,
    /// Their geometry.
    pub geometry: Geometry,
}

/// A predicted case in its input's geometry.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// Case identifier.
    pub case: String,
    /// Label map `(1, z, y, x)` with the input's shape and geometry.
    pub labels: LabelMap,
    /// Probabilities `(c, z, y, x)` on the same grid, when asked for.
    pub probabilities: Option<Array4<f32>>,
}

/// Reads and preprocesses cases; plain data, so it can run on another thread than the network.
#[derive(Clone, Debug, PartialEq)]
pub struct CasePreprocessor {
    spec: PreprocessSpec,
    clock: PhaseClock,
    /// Keep the raw channels in [`PreparedCase::images`] (the first stage of a cascade).
    keep_images: bool,
}

impl CasePreprocessor {
    /// Reads the channel files of `case` and preprocesses them as training did (no label map).
    ///
    /// # Errors
    /// [`PredictError::Preprocess`] naming the case (unreadable files, wrong channel count,
    /// shapes that differ, ...).
    pub fn prepare(&self, case: &InputCase) -> Result<PreparedCase, PredictError> {
        let case = Case {
            id: case.id.clone(),
            images: case.images.clone(),
            label: None,
        };
        self.clock.time(Phase::Preprocessing, || {
            if !self.keep_images {
                let preprocessed = preprocess_case(&case, &self.spec)?;
                return Ok(PreparedCase {
                    data: preprocessed.data,
                    properties: preprocessed.properties,
                    images: None,
                });
            }
            let (data, geometry) = read_channels(&case, self.spec.n_channels())?;
            let preprocessed =
                preprocess_arrays(&case.id, data.clone(), None, geometry.clone(), &self.spec)?;
            Ok(PreparedCase {
                data: preprocessed.data,
                properties: preprocessed.properties,
                images: Some(RawImages { data, geometry }),
            })
        })
    }
}

/// The trained folds of one configuration, ready to predict.
pub struct Predictor {
    configuration: Configuration,
    dataset: DatasetJson,
    preprocessor: CasePreprocessor,
    export: ExportSpec,
    folds: Vec<FoldModel>,
    device: Device,
    options: PredictOptions,
    /// The axes mirroring may flip (nnU-Net: the trainer's `inference_allowed_mirroring_axes`);
    /// `None`: the model allows no mirroring.
    mirror_axes: Option<Vec<usize>>,
    clock: PhaseClock,
    /// The plans stored with the checkpoints.
    plans: Plans,
    /// The previous stage, when this configuration is a cascade stage.
    cascade: Option<Cascade>,
}

/// A cascade stage's link to the stage before it.
struct Cascade {
    /// The previous stage's predictor, with the same folds.
    previous: Box<Predictor>,
    /// The labels its segmentation is one-hot encoded over (the foreground labels).
    labels: Vec<u16>,
}

impl Predictor {
    /// Loads `folds` (fold folder suffixes: `"0"`..`"4"` or `"all"`) of `configuration` from
    /// the model folder `model` onto `device`, with [`PredictOptions::nnunet`]. Labels come
    /// from the folder's `dataset.json` when it exists, else from the checkpoint (see `predictor/model.rs`).
    ///
    /// # Errors
    /// [`PredictError::NoFolds`]; [`PredictError::MissingCheckpoint`] naming the first missing
    /// file; [`PredictError::Checkpoint`] (unreadable metadata, another schema or
    /// configuration, a tensor file that does not match its digest, weights that do not fit the
    /// network); [`PredictError::FoldsDiffer`]; [`PredictError::DatasetMismatch`];
    /// [`PredictError::Dataset`] for an unreadable `dataset.json`. A cascade stage also loads
    /// its previous stage, with the same errors.
    pub fn load(
        model: &WorkLayout,
        configuration: &str,
        folds: &[String],
        device: Device,
    ) -> Result<Predictor, PredictError> {
        Predictor::load_with(
            model,
            configuration,
            folds,
            device,
            None,
            CheckpointKind::Final,
        )
    }

    /// [`Predictor::load`] from checkpoint `kind` of each fold (`Best`: the best EMA pseudo
    /// Dice's, as nnU-Net's `-chk checkpoint_best.pth`).
    ///
    /// # Errors
    /// As [`Predictor::load`].
    pub fn load_checkpoint(
        model: &WorkLayout,
        configuration: &str,
        folds: &[String],
        device: Device,
        kind: CheckpointKind,
    ) -> Result<Predictor, PredictError> {
        Predictor::load_with(model, configuration, folds, device, None, kind)
    }

    /// [`Predictor::load_checkpoint`] with the dataset's `dataset.json` given (the trainer has
    /// it).
    ///
    /// # Errors
    /// As [`Predictor::load`].
    pub fn load_with(
        model: &WorkLayout,
        configuration: &str,
        folds: &[String],
        device: Device,
        dataset: Option<&DatasetJson>,
        kind: CheckpointKind,
    ) -> Result<Predictor, PredictError> {
        let (first, rest) = folds.split_first().ok_or(PredictError::NoFolds)?;
        let (meta_path, meta) = read_fold_meta(model, configuration, first, kind)?;
        let config = meta
            .plans
            .resolve(configuration)
            .map_err(|source| PredictError::Plan {
                path: meta_path.clone(),
                source: Box::new(source),
            })?;
        warn_if_plans_changed(model, &meta.plans);
        let mut rest_metas = Vec::with_capacity(rest.len());
        for fold in rest {
            let (path, other) = read_fold_meta(model, configuration, fold, kind)?;
            check_same_model(path, &meta, &other)?;
            rest_metas.push(other);
        }
        // A cascade loads its first stage first: without a dataset.json that stage's
        // checkpoint (which takes only the image channels) describes the dataset.
        let previous = match &config.previous_stage {
            Some(previous) => Some(Box::new(Predictor::load_with(
                model, previous, folds, device, dataset, kind,
            )?)),
            None => None,
        };
        let dataset = match (dataset, &previous) {
            (Some(json), _) => json.clone(),
            (None, Some(previous)) => previous.dataset.clone(),
            (None, None) => model_dataset_json(model, &meta)?,
        };
        let cascade = previous.map(|previous| Cascade {
            previous,
            labels: dataset.labels.foreground_labels(),
        });
        check_dataset(
            meta_path,
            &meta,
            &dataset,
            cascade_channels(&config, &dataset),
        )?;
        // Each fold's weights are checked against its own metadata's digest.
        let models = folds
            .iter()
            .zip(std::iter::once(&meta).chain(&rest_metas))
            .map(|(fold, fold_meta)| load_fold(model, &config, (fold, kind), fold_meta, device))
            .collect::<Result<Vec<_>, _>>()?;
        let mirror_axes = meta.inference_mirror_axes(config.patch_size.len());
        let mut predictor =
            Predictor::assemble(meta.plans, config, dataset, models, device, mirror_axes)?;
        predictor.cascade = cascade;
        Ok(predictor)
    }

    /// A predictor of `config` from loaded fold networks, with [`PredictOptions::nnunet`], the
    /// preprocessing and export of `plans`, and no previous stage.
    fn assemble(
        plans: Plans,
        config: Configuration,
        dataset: DatasetJson,
        folds: Vec<FoldModel>,
        device: Device,
        mirror_axes: Option<Vec<usize>>,
    ) -> Result<Predictor, PredictError> {
        let rule = segmentation_rule(&dataset);
        let spec = PreprocessSpec::new(&plans, &config, &dataset.labels)?;
        let export = ExportSpec::new(&plans, &config, rule)?;
        let clock = PhaseClock::default();
        Ok(Predictor {
            configuration: config,
            dataset,
            preprocessor: CasePreprocessor {
                spec,
                clock: clock.clone(),
                keep_images: false,
            },
            export,
            folds,
            device,
            options: PredictOptions::nnunet(),
            mirror_axes,
            clock,
            plans,
            cascade: None,
        })
    }

    /// Sets the step, mirroring and probability export.
    ///
    /// # Errors
    /// [`PredictError::Options`] ([`InferenceError::InvalidStep`]) for a step outside
    /// `(0, 1]`.
    pub fn set_options(&mut self, options: PredictOptions) -> Result<(), PredictError> {
        let mut window = self.window_settings(self.device);
        window.step = options.step;
        window.validate().map_err(PredictError::Options)?;
        if let Some(cascade) = &mut self.cascade {
            // The first stage's segmentation is an input here: no probabilities for it.
            cascade.previous.set_options(PredictOptions {
                save_probabilities: false,
                ..options.clone()
            })?;
        }
        self.options = options;
        Ok(())
    }

    /// Seconds per phase (preprocessing, network, accumulation, export) over the cases
    /// predicted so far, including those prepared by [`Predictor::preprocessor`]'s clones.
    pub fn phase_times(&self) -> PhaseTimes {
        self.clock.times()
    }

    /// The resolved configuration (from the checkpoint's plans).
    pub fn configuration(&self) -> &Configuration {
        &self.configuration
    }

    /// The dataset description in use (labels, channels, file ending).
    pub fn dataset(&self) -> &DatasetJson {
        &self.dataset
    }

    /// A preprocessor for this model's configuration, to run on another thread. For a cascade
    /// stage it is the first stage's, keeping the images for the second preprocessing.
    pub fn preprocessor(&self) -> CasePreprocessor {
        match &self.cascade {
            Some(cascade) => CasePreprocessor {
                keep_images: true,
                clock: self.clock.clone(),
                ..cascade.previous.preprocessor.clone()
            },
            None => self.preprocessor.clone(),
        }
    }

    /// Reads, preprocesses and predicts one case given its channel files.
    ///
    /// # Errors
    /// As [`CasePreprocessor::prepare`] and [`Predictor::predict_prepared`].
    pub fn predict_case(&self, images: &[PathBuf]) -> Result<Prediction, PredictError> {
        let first = images.first().ok_or(PredictError::NoImages)?;
        let id = case_id_of(first, &self.dataset.file_ending);
        let case = InputCase {
            id,
            images: images.to_vec(),
        };
        self.predict_prepared(self.preprocessor().prepare(&case)?)
    }

    /// Predicts a preprocessed case: the folds' mean logits, exported to the input's grid.
    ///
    /// # Errors
    /// [`PredictError::Inference`] naming the case; [`PredictError::Export`].
    pub fn predict_prepared(&self, case: PreparedCase) -> Result<Prediction, PredictError> {
        let PreparedCase {
            data,
            properties,
            images,
        } = case;
        let Some(cascade) = &self.cascade else {
            return self.predict_ready(data, properties);
        };
        let images = images.ok_or_else(|| PredictError::CascadeInput {
            case: properties.case.clone(),
        })?;
        let case = properties.case.clone();
        let first = cascade.previous.predict_ready(data, properties)?;
        let seg = first.labels.data.mapv(|v| v.min(i16::MAX as u16) as i16);
        drop(first);
        let preprocessed = self.clock.time(Phase::Preprocessing, || {
            preprocess_arrays(
                &case,
                images.data,
                Some(seg),
                images.geometry,
                &self.preprocessor.spec,
            )
            .map_err(PredictError::from)
        })?;
        let seg = preprocessed
            .seg
            .expect("preprocess_arrays returns the segmentation it was given");
        let data = append_one_hot(
            preprocessed.data,
            seg.index_axis(Axis(0), 0),
            &cascade.labels,
        );
        self.predict_ready(data, preprocessed.properties)
    }

    /// Predicts image data that is ready for this configuration's network (a cascade: with
    /// the one-hot channels appended).
    fn predict_ready(
        &self,
        data: Array4<f32>,
        properties: CaseProperties,
    ) -> Result<Prediction, PredictError> {
        let logits = self.clock.time(Phase::SlidingWindow, || {
            self.logits(&data, &properties.case)
        })?;
        drop(data);
        self.export_prediction(&logits, properties)
    }

    /// Exports the folds' mean logits of a case to its input's grid.
    fn export_prediction(
        &self,
        logits: &Tensor,
        properties: CaseProperties,
    ) -> Result<Prediction, PredictError> {
        let exported = self.clock.time(Phase::Export, || {
            export_logits(
                logits,
                &properties,
                &self.export,
                self.options.save_probabilities,
            )
        })?;
        self.clock.count_case();
        Ok(Prediction {
            case: properties.case.clone(),
            labels: exported.labels,
            probabilities: exported.probabilities,
        })
    }

    /// The folds' mean logits of a preprocessed image `(c, z, y, x)`, on the CPU, in float16
    /// as nnU-Net's. On CUDA the window's buffers live on the device; when that fails (e.g.
    /// out of memory) the case is run again with buffers on the CPU, as nnU-Net does.
    fn logits(&self, data: &Array4<f32>, case: &str) -> Result<Tensor, PredictError> {
        let inference = |source| PredictError::Inference {
            case: case.to_string(),
            source,
        };
        let input = array4_to_tensor(data.view()).map_err(inference)?;
        let timed: Vec<_> = self
            .folds
            .iter()
            .map(|f| self.clock.timed(&f.net))
            .collect();
        let models: Vec<&dyn Segmenter> = timed.iter().map(|t| t as _).collect();
        let on_device = self.window_settings(self.device);
        match ensemble_logits(&models, &input, &on_device) {
            Err(InferenceError::Torch(e)) if self.device != Device::Cpu => {
                tracing::warn!(case, error = %e, "prediction on the device failed; retrying with results on the CPU");
                let on_cpu = SlidingWindowSettings {
                    results_device: Device::Cpu,
                    ..on_device
                };
                ensemble_logits(&models, &input, &on_cpu).map_err(inference)
            }
            other => other.map_err(inference),
        }
    }

    fn window_settings(&self, device: Device) -> SlidingWindowSettings {
        let patch = &self.configuration.patch_size;
        let mirror = self
            .mirror_axes
            .as_deref()
            .filter(|_| self.options.use_mirroring);
        let accumulator = if self.options.accumulate_fp32 {
            Accumulator::Float
        } else {
            Accumulator::Half
        };
        SlidingWindowSettings {
            step: self.options.step,
            accumulator,
            ..SlidingWindowSettings::nnunet(patch, mirror, device)
        }
    }

    /// Writes `prediction` into `out_dir`: `<case><file_ending>` (after `postprocessing`, if
    /// given) and, when it has probabilities, `<case>.npz` + `<case>.props.toml`. Returns the
    /// files written.
    ///
    /// # Errors
    /// [`PredictError::Io`] when `out_dir` cannot be created; [`PredictError::WriteMask`],
    /// [`PredictError::Npz`].
    pub fn write_prediction(
        &self,
        prediction: Prediction,
        out_dir: &Path,
        postprocessing: Option<&PostprocessingPlan>,
    ) -> Result<Vec<PathBuf>, PredictError> {
        let _export = self.clock.start(Phase::Export);
        std::fs::create_dir_all(out_dir).map_err(io_err(out_dir, "create the folder"))?;
        let Prediction {
            case,
            mut labels,
            probabilities,
        } = prediction;
        if let Some(plan) = postprocessing {
            apply_postprocessing(plan, labels.data.index_axis_mut(Axis(0), 0));
        }
        let ending = &self.dataset.file_ending;
        let mask = out_dir.join(format!("{case}{ending}"));
        write_label_map(&mask, &labels, MASK_GZIP_LEVEL)?;
        let mut written = vec![mask];
        if let Some(probabilities) = probabilities {
            let npz = probabilities_file(out_dir, &case);
            write_probabilities(&npz, probabilities.view())?;
            let props = properties_file(out_dir, &case);
            ProbabilityProperties {
                geometry: labels.geometry.clone(),
                file_ending: ending.clone(),
                regions_class_order: self.dataset.regions_class_order.clone(),
            }
            .write(&props)?;
            written.extend([npz, props]);
        }
        Ok(written)
    }
}

/// nnU-Net's label rule of a dataset: regions in `regions_class_order`, else argmax.
fn segmentation_rule(dataset: &DatasetJson) -> SegmentationRule {
    match &dataset.regions_class_order {
        Some(order) if dataset.labels.has_regions() => SegmentationRule::Regions {
            regions_class_order: order.clone(),
        },
        _ => SegmentationRule::Argmax,
    }
}
