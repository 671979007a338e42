//! The predictor: trained folds of one configuration, loaded from a model folder, predicting
//! raw cases (or preprocessed ones) into masks and probabilities in the input's geometry.
//!
//! nnU-Net: `predict_from_raw_data.py::nnUNetPredictor` (`initialize_from_trained_model_folder`,
//! `predict_from_files`, `predict_logits_from_preprocessed_data`) and
//! `nnUNetTrainer.perform_actual_validation` (`reference/nnunet.md` §7, §6.7).
//!
//! A model folder is `<work>/<dataset>` (design.md): each fold is read from
//! `results/<config>/fold_<k>/checkpoint_final.{safetensors,toml}`, and the network is built
//! from the plans stored in the checkpoint's metadata, not from `plans.toml` (a warning is
//! logged when `plans.toml` differs). Labels, channels and the file ending come from
//! `<model_dir>/dataset.json` when present; otherwise from the checkpoint (plain labels
//! `0..n_classes`, `.nii.gz`), with a warning.
//!
//! Per case: preprocessing exactly as for training (without a label map), the Gaussian sliding
//! window with mirroring over every patch axis (nnU-Net's `inference_allowed_mirroring_axes`
//! of the default trainer), the folds' logits averaged ([`ensemble_logits`]), then
//! [`export_logits`].

use std::io;
use std::path::{Path, PathBuf};

use autoseg_evaluation::{
    apply_postprocessing, evaluate_folder, probabilities_file, properties_file,
    settings_from_dataset_json, write_probabilities, EvaluationError, FolderError, NpzError,
    PostprocessingPlan, ProbabilityProperties, SegmentationRule, Summary,
};
use autoseg_network::{NetworkError, UNet};
use autoseg_planner::{Configuration, PlanError, Plans};
use autoseg_preprocessing::cache::{
    cache_dir, case_path, prev_stage_dir, prev_stage_path, read_prev_stage_seg,
    write_prev_stage_seg, CachedCase,
};
use autoseg_preprocessing::pipeline::resample_settings;
use autoseg_preprocessing::resample::ResampleSettings;
use autoseg_preprocessing::{
    discover_image_cases, parse_dataset_json, preprocess_arrays, preprocess_case, read_channels,
    read_dataset_json, split_channel_name, write_label_map, CacheError, Case, CaseProperties,
    DatasetError, DatasetJson, Geometry, LabelMap, NiftiIoError, PreprocessError, PreprocessSpec,
};
use ndarray::{Array4, Axis};
use serde::Deserialize;
use tch::{nn, Device, Tensor};
use thiserror::Error;

use crate::{
    append_one_hot, array4_to_tensor, ensemble_logits, export_logits, next_stage_segmentation,
    ExportError, ExportSpec, InferenceError, Segmenter, SlidingWindowSettings,
};
use crate::{Phase, PhaseClock, PhaseTimes};

/// The checkpoint metadata layout this crate reads (the trainer's `CHECKPOINT_SCHEMA_VERSION`).
pub const CHECKPOINT_SCHEMA_VERSION: u32 = 1;
/// gzip level of written masks: label maps are mostly zeros, and level 1 compresses them
/// nearly as well as 6, several times faster.
const MASK_GZIP_LEVEL: u32 = 1;

/// Why a model could not be loaded or a case not be predicted. Every variant names the file,
/// fold or case involved.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PredictError {
    /// No fold was asked for.
    #[error("no fold to predict with")]
    NoFolds,
    /// A requested fold has no final checkpoint.
    #[error("{}: checkpoint missing (was this fold trained to the end?)", path.display())]
    MissingCheckpoint {
        /// The missing file.
        path: PathBuf,
    },
    /// A file could not be read, written or listed.
    #[error("{}: cannot {action}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A checkpoint's metadata is not valid TOML of the expected layout.
    #[error("{}: not a readable checkpoint metadata file", path.display())]
    CheckpointMeta {
        /// The metadata file.
        path: PathBuf,
        /// The parser's error, naming the key.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A checkpoint does not fit the request or the other folds.
    #[error("{}: {fault}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        fault: String,
    },
    /// The plans stored with a checkpoint do not resolve the configuration.
    #[error("{}: the stored plans cannot resolve the configuration", path.display())]
    Plan {
        /// The metadata file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<PlanError>,
    },
    /// A cascade stage was given a case prepared without its images (see
    /// [`Predictor::preprocessor`]).
    #[error("case {case}: a cascade stage needs the case's images; prepare it with this predictor's preprocessor")]
    CascadeInput {
        /// Case identifier.
        case: String,
    },
    /// The network of a checkpoint cannot be built.
    #[error("{}: cannot build the network", path.display())]
    Network {
        /// The metadata file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: NetworkError,
    },
    /// `dataset.json` cannot be read.
    #[error(transparent)]
    Dataset(Box<DatasetError>),
    /// The input holds no case, or a file name that is not `CASE_XXXX<ending>`.
    #[error("{}: {fault}", path.display())]
    Input {
        /// The input folder or file.
        path: PathBuf,
        /// What is wrong.
        fault: String,
    },
    /// `results/best.toml` cannot be used.
    #[error("{}: {fault}", path.display())]
    BestChoice {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        fault: String,
    },
    /// Preprocessing a case failed.
    #[error(transparent)]
    Preprocess(Box<PreprocessError>),
    /// Reading a preprocessed case failed.
    #[error(transparent)]
    Cache(Box<CacheError>),
    /// The sliding window or the ensemble failed.
    #[error("case {case}: prediction failed")]
    Inference {
        /// Case identifier.
        case: String,
        /// The cause.
        #[source]
        source: InferenceError,
    },
    /// Export failed.
    #[error(transparent)]
    Export(Box<ExportError>),
    /// Writing a mask failed.
    #[error(transparent)]
    WriteMask(Box<NiftiIoError>),
    /// Writing probabilities failed.
    #[error(transparent)]
    Npz(Box<NpzError>),
    /// Evaluating the validation predictions failed.
    #[error(transparent)]
    Evaluation(Box<FolderError>),
    /// Writing `summary.json` failed.
    #[error("{}: cannot write the summary", path.display())]
    Summary {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: EvaluationError,
    },
    /// The prediction options are invalid.
    #[error("invalid prediction options")]
    Options(#[source] InferenceError),
    /// libtorch failed (e.g. reading weights).
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// `From` for the boxed sources, so that `?` boxes them.
macro_rules! boxed_from {
    ($($variant:ident: $source:ty),* $(,)?) => {$(
        impl From<$source> for PredictError {
            fn from(source: $source) -> PredictError {
                PredictError::$variant(Box::new(source))
            }
        }
    )*};
}

boxed_from!(
    Dataset: DatasetError,
    Preprocess: PreprocessError,
    Cache: CacheError,
    Export: ExportError,
    WriteMask: NiftiIoError,
    Npz: NpzError,
    Evaluation: FolderError,
);

fn io_err<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> PredictError + 'a {
    move |source| PredictError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// How cases are predicted.
#[derive(Clone, Debug, PartialEq)]
pub struct PredictOptions {
    /// Sliding-window step as a fraction of the patch, in `(0, 1]`.
    pub step: f64,
    /// Mirroring test-time augmentation over every patch axis.
    pub use_mirroring: bool,
    /// Also export float32 probabilities.
    pub save_probabilities: bool,
}

impl PredictOptions {
    /// nnU-Net's `nnUNetv2_predict` defaults: step 0.5, mirroring on, no probabilities.
    pub fn nnunet() -> PredictOptions {
        PredictOptions {
            step: 0.5,
            use_mirroring: true,
            save_probabilities: false,
        }
    }
}

/// The fields of `checkpoint_<kind>.toml` inference needs; the trainer's other fields are
/// ignored.
#[derive(Debug, Deserialize)]
struct CheckpointInfo {
    schema_version: u32,
    configuration: String,
    in_channels: usize,
    n_classes: usize,
    plans: Plans,
}

/// One fold's network with its variables.
struct FoldModel {
    /// Keeps the variables the network refers to alive.
    _vs: nn::VarStore,
    net: UNet,
}

/// The files of a case to predict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputCase {
    /// Case identifier (the file name without `_XXXX<ending>`).
    pub id: String,
    /// One file per channel, in channel order.
    pub images: Vec<PathBuf>,
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
    /// `model_dir` onto `device`, with [`PredictOptions::nnunet`]. Labels come from
    /// `<model_dir>/dataset.json` when it exists, else from the checkpoint (see module docs).
    ///
    /// # Errors
    /// [`PredictError::NoFolds`]; [`PredictError::MissingCheckpoint`] naming the first missing
    /// file; [`PredictError::CheckpointMeta`], [`PredictError::Checkpoint`] (schema, folds that
    /// disagree, weights that do not fit the network); [`PredictError::CascadeNotSupported`];
    /// [`PredictError::Dataset`] for an unreadable `dataset.json`.
    pub fn load(
        model_dir: &Path,
        configuration: &str,
        folds: &[String],
        device: Device,
    ) -> Result<Predictor, PredictError> {
        Predictor::load_with(model_dir, configuration, folds, device, None)
    }

    /// [`Predictor::load`] with the dataset's `dataset.json` given (the trainer has it).
    ///
    /// # Errors
    /// As [`Predictor::load`].
    pub fn load_with(
        model_dir: &Path,
        configuration: &str,
        folds: &[String],
        device: Device,
        dataset: Option<&DatasetJson>,
    ) -> Result<Predictor, PredictError> {
        let (first, rest) = folds.split_first().ok_or(PredictError::NoFolds)?;
        let (meta_path, info) = read_checkpoint_info(model_dir, configuration, first)?;
        let config = info
            .plans
            .resolve(configuration)
            .map_err(|source| PredictError::Plan {
                path: meta_path.clone(),
                source: Box::new(source),
            })?;
        warn_if_plans_changed(model_dir, &info.plans);
        for fold in rest {
            let (path, other) = read_checkpoint_info(model_dir, configuration, fold)?;
            check_same_model(&path, &info, &other)?;
        }
        // A cascade loads its first stage first: without a dataset.json that stage's
        // checkpoint (which takes only the image channels) describes the dataset.
        let previous = match &config.previous_stage {
            Some(previous) => Some(Box::new(Predictor::load_with(
                model_dir, previous, folds, device, dataset,
            )?)),
            None => None,
        };
        let dataset = match (dataset, &previous) {
            (Some(json), _) => json.clone(),
            (None, Some(previous)) => previous.dataset.clone(),
            (None, None) => model_dataset_json(model_dir, &info)?,
        };
        let cascade = previous.map(|previous| Cascade {
            previous,
            labels: dataset.labels.foreground_labels(),
        });
        let extra_channels = cascade.as_ref().map_or(0, |c| c.labels.len());
        check_dataset(&meta_path, &info, &dataset, extra_channels)?;
        let rule = segmentation_rule(&dataset);
        let spec = PreprocessSpec::new(&info.plans, &config, &dataset.labels)?;
        let export = ExportSpec::new(&info.plans, &config, rule)?;
        let models = folds
            .iter()
            .map(|fold| load_fold(model_dir, &config, fold, &info, device))
            .collect::<Result<Vec<_>, _>>()?;
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
            folds: models,
            device,
            options: PredictOptions::nnunet(),
            clock,
            plans: info.plans,
            cascade,
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
        let first = images.first().ok_or_else(|| PredictError::Input {
            path: PathBuf::new(),
            fault: "a case needs at least one image file".into(),
        })?;
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
        let axes: Vec<usize> = (0..patch.len()).collect();
        let mirror = self.options.use_mirroring.then_some(axes.as_slice());
        SlidingWindowSettings {
            step: self.options.step,
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

/// `<model_dir>/results/<config>/fold_<fold>`.
pub fn fold_dir(model_dir: &Path, configuration: &str, fold: &str) -> PathBuf {
    model_dir
        .join("results")
        .join(configuration)
        .join(format!("fold_{fold}"))
}

/// Reads `checkpoint_final.toml` of a fold and checks its schema and configuration.
fn read_checkpoint_info(
    model_dir: &Path,
    configuration: &str,
    fold: &str,
) -> Result<(PathBuf, CheckpointInfo), PredictError> {
    let path = fold_dir(model_dir, configuration, fold).join("checkpoint_final.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(PredictError::MissingCheckpoint { path })
        }
        Err(e) => return Err(io_err(&path, "read")(e)),
    };
    let info: CheckpointInfo =
        toml::from_str(&text).map_err(|source| PredictError::CheckpointMeta {
            path: path.clone(),
            source: Box::new(source),
        })?;
    let fault = if info.schema_version != CHECKPOINT_SCHEMA_VERSION {
        Some(format!(
            "schema_version {} is not supported (this build reads {CHECKPOINT_SCHEMA_VERSION})",
            info.schema_version
        ))
    } else if info.configuration != configuration {
        Some(format!(
            "trained configuration {}, not {configuration}",
            info.configuration
        ))
    } else {
        None
    };
    match fault {
        Some(fault) => Err(PredictError::Checkpoint { path, fault }),
        None => Ok((path, info)),
    }
}

/// Folds of one ensemble must share plans, channels and classes.
fn check_same_model(
    path: &Path,
    first: &CheckpointInfo,
    other: &CheckpointInfo,
) -> Result<(), PredictError> {
    let same = first.plans == other.plans
        && first.in_channels == other.in_channels
        && first.n_classes == other.n_classes;
    if same {
        return Ok(());
    }
    Err(PredictError::Checkpoint {
        path: path.to_path_buf(),
        fault: "its plans, channels or classes differ from the first fold's".into(),
    })
}

/// Logs a warning when `<model_dir>/plans.toml` exists and differs from the checkpoint's plans
/// (predict always uses the checkpoint's, design.md).
fn warn_if_plans_changed(model_dir: &Path, stored: &Plans) {
    let path = model_dir.join("plans.toml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    match Plans::from_toml_str(&text) {
        Ok(current) if &current == stored => {}
        Ok(_) => tracing::warn!(
            path = %path.display(),
            "plans.toml has changed since training; predicting with the plans stored in the checkpoint"
        ),
        Err(e) => tracing::warn!(
            path = %path.display(),
            error = %e,
            "plans.toml cannot be read; predicting with the plans stored in the checkpoint"
        ),
    }
}

/// `<model_dir>/dataset.json`, or a plain-label description built from the checkpoint.
fn model_dataset_json(
    model_dir: &Path,
    info: &CheckpointInfo,
) -> Result<DatasetJson, PredictError> {
    let path = model_dir.join("dataset.json");
    if path.is_file() {
        return Ok(read_dataset_json(&path)?);
    }
    tracing::warn!(
        path = %path.display(),
        n_classes = info.n_classes,
        "no dataset.json in the model folder: assuming plain labels 0..n_classes and .nii.gz files"
    );
    let channels: serde_json::Map<String, serde_json::Value> = (0..info.in_channels)
        .map(|c| (c.to_string(), format!("channel_{c}").into()))
        .collect();
    let mut labels = serde_json::Map::new();
    labels.insert("background".into(), 0.into());
    for label in 1..info.n_classes {
        labels.insert(format!("label_{label}"), label.into());
    }
    let json = serde_json::json!({
        "channel_names": channels,
        "labels": labels,
        "numTraining": 1,
        "file_ending": ".nii.gz",
    });
    Ok(parse_dataset_json(json.to_string().as_bytes(), &path)?)
}

/// The dataset's channels (plus `extra_channels`: a cascade's one-hot inputs) and
/// segmentation heads must be the network's.
fn check_dataset(
    path: &Path,
    info: &CheckpointInfo,
    dataset: &DatasetJson,
    extra_channels: usize,
) -> Result<(), PredictError> {
    let heads = dataset.labels.num_segmentation_heads();
    let channels = dataset.n_channels() + extra_channels;
    if channels == info.in_channels && heads == info.n_classes {
        return Ok(());
    }
    Err(PredictError::Checkpoint {
        path: path.to_path_buf(),
        fault: format!(
            "the network takes {} channels and predicts {} classes, but dataset.json declares {channels} channels{} and {heads} outputs",
            info.in_channels,
            info.n_classes,
            if extra_channels > 0 { " (with the previous stage's one-hot labels)" } else { "" }
        ),
    })
}

/// Builds a fold's network on `device` and loads `checkpoint_final.safetensors` into it.
fn load_fold(
    model_dir: &Path,
    config: &Configuration,
    fold: &str,
    info: &CheckpointInfo,
    device: Device,
) -> Result<FoldModel, PredictError> {
    let dir = fold_dir(model_dir, &config.name, fold);
    let weights = dir.join("checkpoint_final.safetensors");
    if !weights.is_file() {
        return Err(PredictError::MissingCheckpoint { path: weights });
    }
    let vs = nn::VarStore::new(device);
    let net = UNet::new(
        &vs.root(),
        config.unet_spec(),
        info.in_channels as i64,
        info.n_classes as i64,
    )
    .map_err(|source| PredictError::Network {
        path: dir.join("checkpoint_final.toml"),
        source,
    })?;
    copy_weights(&vs, &Tensor::read_safetensors(&weights)?, &weights)?;
    Ok(FoldModel { _vs: vs, net })
}

/// Copies named tensors into the variables of `vs`: every variable must be present with its
/// shape, and nothing else.
fn copy_weights(
    vs: &nn::VarStore,
    tensors: &[(String, Tensor)],
    path: &Path,
) -> Result<(), PredictError> {
    let fault = |fault: String| PredictError::Checkpoint {
        path: path.to_path_buf(),
        fault,
    };
    let mut variables = vs.variables();
    if tensors.len() != variables.len() {
        return Err(fault(format!(
            "holds {} tensors, the network has {} parameters",
            tensors.len(),
            variables.len()
        )));
    }
    let _no_grad = tch::no_grad_guard();
    for (name, tensor) in tensors {
        let var = variables.get_mut(name).ok_or_else(|| {
            fault(format!(
                "tensor '{name}' is not a parameter of this network"
            ))
        })?;
        if var.size() != tensor.size() {
            return Err(fault(format!(
                "'{name}' has shape {:?}, the network expects {:?}",
                tensor.size(),
                var.size()
            )));
        }
        var.f_copy_(tensor)?;
    }
    Ok(())
}

/// The case identifier of a channel file: its name without `_XXXX<ending>` (or without
/// `<ending>` when it has no channel suffix).
pub fn case_id_of(path: &Path, file_ending: &str) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match split_channel_name(&name, file_ending) {
        Some((case, _)) => case.to_string(),
        None => name.strip_suffix(file_ending).unwrap_or(&name).to_string(),
    }
}

/// The cases of `input`: a single image file (one case, one channel), or a folder of
/// `CASE_XXXX<file_ending>` files grouped by case (sorted ids, channels sorted by name), as
/// nnU-Net's `create_lists_from_splitted_dataset_folder`.
///
/// # Errors
/// [`PredictError::Io`] when the folder cannot be listed; [`PredictError::Input`] naming a
/// file with the ending whose name is not `CASE_XXXX<file_ending>`, or a folder without cases.
pub fn discover_input_cases(
    input: &Path,
    file_ending: &str,
) -> Result<Vec<InputCase>, PredictError> {
    if input.is_file() {
        return Ok(vec![InputCase {
            id: case_id_of(input, file_ending),
            images: vec![input.to_path_buf()],
        }]);
    }
    let (cases, misnamed) =
        discover_image_cases(input, file_ending).map_err(io_err(input, "list the folder"))?;
    if let Some(path) = misnamed.into_iter().next() {
        return Err(PredictError::Input {
            path,
            fault: format!("not named CASE_XXXX{file_ending} (XXXX: the channel, e.g. 0000)"),
        });
    }
    if cases.is_empty() {
        return Err(PredictError::Input {
            path: input.to_path_buf(),
            fault: format!("no CASE_XXXX{file_ending} image files"),
        });
    }
    Ok(cases
        .into_iter()
        .map(|c| InputCase {
            id: c.id,
            images: c.images,
        })
        .collect())
}

/// What `results/best.toml` says predict should use.
#[derive(Clone, Debug, PartialEq)]
pub struct BestChoice {
    /// The chosen configuration, when a single one was chosen.
    pub configuration: Option<String>,
    /// The configurations whose probabilities are averaged (the winner of find-best: one
    /// configuration, or an ensemble of several).
    pub ensemble: Vec<String>,
    /// The chosen postprocessing (empty steps: none).
    pub postprocessing: PostprocessingPlan,
}

/// `results/best.toml` as far as predict reads it: a top-level `configuration = "<name>"` (a
/// single winner), `ensemble = ["<name>", ...]` (its members) and a `[postprocessing]` table (`steps = [{ keep_largest_component_of = [1, 2] }, ...]`); other
/// keys are ignored. `None` when the file does not exist.
///
/// # Errors
/// [`PredictError::Io`] for an unreadable file; [`PredictError::BestChoice`] for invalid TOML
/// or a `postprocessing` table that is not a plan.
pub fn read_best_choice(model_dir: &Path) -> Result<Option<BestChoice>, PredictError> {
    let path = model_dir.join("results").join("best.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path, "read")(e)),
    };
    let fault = |fault: String| PredictError::BestChoice {
        path: path.clone(),
        fault,
    };
    let table: toml::Table = text.parse().map_err(|e| fault(format!("{e}")))?;
    let configuration = table
        .get("configuration")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let ensemble = match table.get("ensemble") {
        Some(value) => value
            .clone()
            .try_into::<Vec<String>>()
            .map_err(|e| fault(format!("ensemble: {e}")))?,
        None => configuration.iter().cloned().collect(),
    };
    let postprocessing = match table.get("postprocessing") {
        Some(value) => value
            .clone()
            .try_into::<PostprocessingPlan>()
            .map_err(|e| fault(format!("[postprocessing]: {e}")))?,
        None => PostprocessingPlan { steps: Vec::new() },
    };
    Ok(Some(BestChoice {
        configuration,
        ensemble,
        postprocessing,
    }))
}

/// Where a `3d_lowres` fold's validation writes the segmentations its next stage trains on.
struct NextStage {
    /// `results/<config>/predicted_next_stage/<next>/`.
    dir: PathBuf,
    /// The next stage's preprocessed cache, whose case shapes are the targets.
    cache: PathBuf,
    /// This configuration's spacing (current and target spacing of nnU-Net's resampling).
    spacing: [f64; 3],
    /// This configuration's probability resampling.
    resampling: ResampleSettings,
}

impl NextStage {
    fn new(
        dataset_dir: &Path,
        plans: &Plans,
        configuration: &str,
        next: &str,
    ) -> Result<NextStage, PredictError> {
        let config = plans
            .resolve(configuration)
            .map_err(|source| PredictError::Plan {
                path: dataset_dir.join("plans.toml"),
                source: Box::new(source),
            })?;
        let spacing = match config.spacing.as_slice() {
            &[z, y, x] => [z, y, x],
            _ => {
                return Err(PredictError::Checkpoint {
                    path: dataset_dir.join("plans.toml"),
                    fault: format!("{configuration} has a next stage but is not 3D"),
                })
            }
        };
        let resampling = resample_settings(&config.resampling_probabilities);
        let dir = prev_stage_dir(dataset_dir, configuration, next);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir, "create the folder"))?;
        Ok(NextStage {
            dir,
            cache: cache_dir(dataset_dir, plans.data_configuration(next)),
            spacing,
            resampling,
        })
    }

    /// Resamples `logits` of `case` onto the next stage's grid and writes its segmentation.
    fn write(
        &self,
        predictor: &Predictor,
        logits: &Tensor,
        case: &str,
    ) -> Result<(), PredictError> {
        let target = case_path(&self.cache, case);
        if !target.is_file() {
            return Err(PredictError::Input {
                path: target,
                fault: "the next stage's preprocessed case is missing; preprocess that configuration first (`autoseg preprocess`, which plan-and-train runs)".into(),
            });
        }
        let shape = CachedCase::open(&target)?.shape();
        let seg = next_stage_segmentation(
            logits,
            shape,
            self.spacing,
            &self.resampling,
            &predictor.export.rule,
        )
        .map_err(|source| PredictError::Inference {
            case: case.to_string(),
            source,
        })?;
        write_prev_stage_seg(&prev_stage_path(&self.dir, case), seg.view())?;
        Ok(())
    }
}

/// Where one fold's final validation reads and writes.
#[derive(Clone, Copy, Debug)]
pub struct ValidationJob<'a> {
    /// `<work>/<dataset>`: checkpoints under `results/`, the cache under `preprocessed/`.
    pub dataset_dir: &'a Path,
    /// Configuration trained.
    pub configuration: &'a str,
    /// Fold folder suffix (`"0"`..`"4"` or `"all"`).
    pub fold: &'a str,
    /// The fold's validation cases (their preprocessed files must exist).
    pub cases: &'a [String],
    /// The reference label maps (`labelsTr`), named `<case><file_ending>`.
    pub labels_dir: &'a Path,
    /// The dataset's description.
    pub dataset: &'a DatasetJson,
    /// Where the network runs.
    pub device: Device,
}

/// nnU-Net's final validation of a fold (`perform_actual_validation`): predicts every
/// validation case from the preprocessed cache with `checkpoint_final` (step 0.5, Gaussian,
/// mirroring), exports `fold_<k>/validation/<case><file_ending>` plus `<case>.npz` and
/// `<case>.props.toml`, evaluates the folder against `labels_dir` (voxel metrics) and writes
/// `validation/summary.json`. Returns the summary.
///
/// # Errors
/// [`Predictor::load_with`]'s errors; [`PredictError::Cache`] for a missing or unreadable
/// preprocessed case; prediction, export and write errors naming the case;
/// [`PredictError::Evaluation`].
pub fn validate_fold(job: &ValidationJob<'_>) -> Result<Summary, PredictError> {
    let fold = [job.fold.to_string()];
    let mut predictor = Predictor::load_with(
        job.dataset_dir,
        job.configuration,
        &fold,
        job.device,
        Some(job.dataset),
    )?;
    predictor.set_options(PredictOptions {
        save_probabilities: true,
        ..PredictOptions::nnunet()
    })?;
    let out_dir = fold_dir(job.dataset_dir, job.configuration, job.fold).join("validation");
    let plans = &predictor.plans;
    let cache = cache_dir(job.dataset_dir, plans.data_configuration(job.configuration));
    let previous_dir = predictor
        .configuration
        .previous_stage
        .as_ref()
        .map(|previous| prev_stage_dir(job.dataset_dir, previous, job.configuration));
    let next_stage = match &predictor.configuration.next_stage {
        Some(next) => Some(NextStage::new(
            job.dataset_dir,
            plans,
            job.configuration,
            next,
        )?),
        None => None,
    };
    for case in job.cases {
        let cached = CachedCase::open(&case_path(&cache, case))?;
        let (mut data, _) = cached.read_all()?;
        if let (Some(cascade), Some(dir)) = (&predictor.cascade, &previous_dir) {
            let seg = read_prev_stage_seg(&prev_stage_path(dir, case), cached.shape())?;
            data = append_one_hot(data, seg.view(), &cascade.labels);
        }
        let logits = predictor
            .clock
            .time(Phase::SlidingWindow, || predictor.logits(&data, case))?;
        drop(data);
        if let Some(next) = &next_stage {
            next.write(&predictor, &logits, case)?;
        }
        let prediction = predictor.export_prediction(&logits, cached.properties().clone())?;
        predictor.write_prediction(prediction, &out_dir, None)?;
    }
    let settings = settings_from_dataset_json(job.dataset, None);
    let summary = evaluate_folder(
        &out_dir,
        job.labels_dir,
        &settings,
        &job.dataset.file_ending,
    )?;
    let summary_path = out_dir.join("summary.json");
    summary
        .write(&summary_path)
        .map_err(|source| PredictError::Summary {
            path: summary_path.clone(),
            source,
        })?;
    Ok(summary)
}
