//! The command contract of `shared/design.md`, as clap types. Parsing does no I/O.

use std::path::PathBuf;
use std::str::FromStr;

use autoseg_trainer::splits::Fold;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// autoseg: self-configuring medical image segmentation (nnU-Net style) on libtorch.
///
/// Point it at a dataset folder in nnU-Net raw layout (dataset.json, imagesTr/, labelsTr/) and
/// run `autoseg plan-and-train DATASET`. `autoseg --version` also reports the libtorch in use and
/// whether CUDA is usable.
#[derive(Debug, Parser)]
#[command(name = "autoseg", disable_version_flag = true)]
pub struct Cli {
    /// Print the version, the libtorch in use and whether CUDA is usable, then exit.
    #[arg(short = 'V', long, global = true)]
    pub version: bool,
    /// Worker threads for parallel stages (default: all cores).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    /// Log more (-v: debug, -vv: trace). Logs go to stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The most memory one volume (an image read from disk, a resampled case or prediction) may
    /// take, in GB; larger ones are refused with an error before anything is allocated. Default:
    /// $AUTOSEG_MAX_VOLUME_GB, else a quarter of the memory this process may use (RAM, `ulimit
    /// -v` or the cgroup limit, whichever is smallest).
    #[arg(long, global = true, value_name = "GB", value_parser = autoseg_preprocessing::limits::parse_gb)]
    pub max_volume_gb: Option<u64>,
    /// The command to run.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands users and scripts rely on (names are a contract).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a dataset folder and list every problem found, each with its file.
    Verify(VerifyArgs),
    /// Extract the dataset fingerprint (spacings, shapes, intensities) to fingerprint.toml.
    Fingerprint(FingerprintArgs),
    /// Plan the 2D/3D U-Net configurations and write plans.toml.
    Plan(PlanArgs),
    /// Crop, normalize and resample every case into the preprocessed cache.
    Preprocess(PreprocessArgs),
    /// Train one configuration on one fold.
    Train(TrainArgs),
    /// Verify, fingerprint, plan, preprocess, train every fold and pick the best configuration.
    PlanAndTrain(PlanAndTrainArgs),
    /// Predict new cases with trained folds (sliding window, TTA, fold ensemble).
    Predict(PredictArgs),
    /// Average saved probabilities of several prediction folders and write masks.
    Ensemble(EnsembleArgs),
    /// Compute metrics of predictions against references and write summary.json.
    Evaluate(EvaluateArgs),
    /// Choose the best configuration, ensemble and postprocessing from cross-validation.
    FindBest(WorkArgs),
    /// Write an HTML report (plan, curves, metrics, overlays) of a trained dataset.
    Report(WorkArgs),
    /// Write a deterministic synthetic dataset (or broken-dataset corpus) to OUT_DIR.
    Fixtures(FixturesArgs),
    /// Write a model folder as one zip holding everything `predict` needs (`predict -m` takes it),
    /// or, with `--format nnunet`, as nnU-Net v2 model folders nnU-Net's own predictor runs.
    Export(ExportArgs),
    /// Write an nnU-Net v2 model folder (or export zip) as an autoseg model folder.
    #[command(name = "import-nnunet")]
    ImportNnunet(ImportNnunetArgs),
}

/// Where autoseg keeps its artifacts for a dataset: `<work>/<dataset folder name>/`.
#[derive(Debug, Args)]
pub struct WorkArgs {
    /// Dataset folder in nnU-Net raw layout (dataset.json, imagesTr/, labelsTr/).
    pub dataset: PathBuf,
    /// Folder for fingerprints, plans, caches and results.
    #[arg(long, default_value = "autoseg_work", value_name = "DIR")]
    pub work: PathBuf,
}

/// Arguments of `autoseg verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Dataset folder in nnU-Net raw layout.
    pub dataset: PathBuf,
}

/// Arguments of `autoseg fingerprint`.
#[derive(Debug, Args)]
pub struct FingerprintArgs {
    /// Dataset folder and work folder.
    #[command(flatten)]
    pub work: WorkArgs,
}

/// Planner settings shared by `plan` and `plan-and-train`.
#[derive(Debug, Args)]
pub struct PlannerArgs {
    /// GPU memory the plans are sized for, in GB (default: the preset's own target, as in
    /// nnU-Net: 8 for default and resenc-m, 24 for resenc-l, 40 for resenc-xl).
    #[arg(long, value_name = "GB")]
    pub gpu_memory_gb: Option<f64>,
    /// Planner preset: nnU-Net's default or a residual-encoder preset.
    #[arg(long, value_enum, default_value_t = PlannerPreset::Default)]
    pub planner: PlannerPreset,
}

/// The planner presets of nnU-Net.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlannerPreset {
    /// nnU-Net's ExperimentPlanner (PlainConvUNet).
    Default,
    /// nnUNetPlannerResEncM (ResidualEncoderUNet, 8 GB).
    ResencM,
    /// nnUNetPlannerResEncL (ResidualEncoderUNet, 24 GB).
    ResencL,
    /// nnUNetPlannerResEncXL (ResidualEncoderUNet, 40 GB).
    ResencXl,
}

/// Arguments of `autoseg plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Dataset folder and work folder.
    #[command(flatten)]
    pub work: WorkArgs,
    /// Memory budget and preset.
    #[command(flatten)]
    pub planner: PlannerArgs,
    /// Override the full-resolution target spacing, in array order (z y x), in mm.
    #[arg(long, num_args = 3, value_names = ["Z", "Y", "X"])]
    pub target_spacing: Option<Vec<f64>>,
    /// Use another dataset's plans instead of planning (nnU-Net's
    /// nnUNetv2_move_plans_between_datasets), e.g. to fine-tune its weights here with
    /// `train --pretrained-weights`.
    ///
    /// OTHER is an autoseg plans.toml or dataset work folder (`<work>/<dataset>`), nnU-Net's
    /// nnUNetPlans.json, or an nnU-Net model folder holding plans.json. Everything is taken
    /// as it is (spacing, patch and batch sizes, network, normalisation and the other dataset's
    /// intensity statistics, which CT normalisation uses); only the dataset name changes. The
    /// labels come from this dataset's dataset.json; the number of image channels must be the
    /// same.
    #[arg(long, value_name = "OTHER", conflicts_with_all = ["target_spacing", "gpu_memory_gb", "planner"])]
    pub plans_from: Option<PathBuf>,
}

/// Arguments of `autoseg preprocess`.
#[derive(Debug, Args)]
pub struct PreprocessArgs {
    /// Dataset folder and work folder.
    #[command(flatten)]
    pub work: WorkArgs,
    /// Configurations to preprocess, one or more (`-c 2d 3d_fullres` or repeated `-c`;
    /// default: every planned one).
    #[arg(short = 'c', long = "configuration", value_name = "CONFIG", num_args = 1..)]
    pub configurations: Vec<String>,
}

/// Training settings and device, shared by `train` and `plan-and-train`.
///
/// The settings start from the configuration's `training` table in plans.toml (nnU-Net's
/// trainer where it has none), then a `--trainer` name's values, then these flags.
#[derive(Debug, Args)]
pub struct TrainingArgs {
    /// Device to train on: cpu, cuda or cuda:N (default: cuda when usable, else cpu).
    #[arg(long)]
    pub device: Option<DeviceArg>,
    /// nnU-Net trainer class whose settings to use, as nnU-Net's `-tr` (e.g.
    /// nnUNetTrainer_250epochs, nnUNetTrainerNoMirroring, nnUNetTrainerAdam,
    /// nnUNetTrainerCosAnneal, nnUNetTrainerNoDeepSupervision, nnUNetTrainerCELoss); the
    /// names autoseg reproduces are listed in README ("Training settings") and by an unknown
    /// name's error.
    #[arg(long = "trainer", short = 't', value_name = "NAME")]
    pub trainer: Option<String>,
    /// Number of epochs (default: the plan's training.epochs, nnU-Net: 1000).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Training iterations per epoch (default: the plan's, nnU-Net: 250). Validation then runs
    /// a fifth as many (nnU-Net: 50), at least 1 and at most 50.
    #[arg(long)]
    pub iters_per_epoch: Option<usize>,
    /// Early stopping (beyond nnU-Net; off by default): stop a fold when N epochs pass without
    /// a new best EMA pseudo Dice. checkpoint_final then holds the last epoch and
    /// checkpoint_best the best one (`predict --checkpoint best`); train.log records the stop,
    /// and resuming with the same patience stops again.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub patience: Option<u64>,
}

/// Arguments of `autoseg train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Dataset folder and work folder.
    #[command(flatten)]
    pub work: WorkArgs,
    /// Configuration to train, e.g. 3d_fullres or 2d.
    pub configuration: String,
    /// Fold: 0..4, or `all` (train and validate on every case).
    pub fold: Fold,
    /// Length and device.
    #[command(flatten)]
    pub training: TrainingArgs,
    /// Continue from the latest checkpoint (a larger --epochs extends a finished run; a fold
    /// stopped before its first checkpoint starts anew, with a warning, as nnU-Net's `--c`).
    #[arg(long)]
    pub resume: bool,
    /// Start a fresh run from pretrained weights (nnU-Net's -pretrained_weights).
    ///
    /// FILE is an nnU-Net checkpoint (`checkpoint_final.pth`, read without running its pickle)
    /// or an autoseg fold's `checkpoint_final`, `checkpoint_best` or `checkpoint_latest`
    /// (`.safetensors` or `.toml`; the weights are checked against their digest). Every
    /// parameter of the network except the segmentation heads (`decoder.seg_layers.*`) must be
    /// in FILE with the same shape, so train with the plans the weights were trained with
    /// (`plan --plans-from`) and the same input channels; the heads start fresh, so the labels
    /// may differ. Not with --resume (a resumed run continues its own weights).
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub pretrained_weights: Option<PathBuf>,
    /// Seed for sampling, augmentation and initialisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Data-parallel ranks.
    #[command(flatten)]
    pub distributed: DistributedArgs,
}

/// Data-parallel training (nnU-Net's `-num_gpus`): the plan's batch split over ranks that
/// average their gradients through libtorch's c10d.
///
/// Started by torchrun (`torchrun --nproc-per-node N -- autoseg train ...`) or Slurm's `srun`
/// with torchrun's variables (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK), each
/// process is one rank; `--nproc N` starts N local ranks itself. Rank 0 writes the checkpoints,
/// logs and curves; on CUDA, rank r uses cuda:LOCAL_RANK; `--threads` is the machine's total,
/// shared by its ranks.
#[derive(Debug, Args)]
pub struct DistributedArgs {
    /// Start N local ranks of this command (one per visible GPU is typical on CUDA; on the CPU
    /// they share the cores). Not under torchrun, which starts the ranks itself.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub nproc: Option<u32>,
    /// The collectives' backend: gloo (CPU and CUDA tensors). nccl is not built into this
    /// autoseg yet and is refused with that message.
    #[arg(long, value_enum, default_value_t = Backend::Gloo)]
    pub backend: Backend,
    /// Seconds a rank waits for the others (meeting, and each collective) before it stops with
    /// an error naming the ranks that went silent; torch's default is 1800.
    #[arg(long, value_name = "SECONDS", default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..))]
    pub dist_timeout: u64,
}

/// The backends of libtorch's c10d.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// ProcessGroupGloo.
    Gloo,
    /// ProcessGroupNCCL.
    Nccl,
}

/// Arguments of `autoseg plan-and-train`.
#[derive(Debug, Args)]
pub struct PlanAndTrainArgs {
    /// Dataset folder and work folder.
    #[command(flatten)]
    pub work: WorkArgs,
    /// Configurations to train, one or more (`-c 2d 3d_fullres`; default: every planned one,
    /// i.e. 2d, 3d_fullres and the cascade when planned). They train in the plan's order: a
    /// cascade stage after its previous stage, whatever order they are given in.
    #[arg(short = 'c', long = "configuration", value_name = "CONFIG", num_args = 1..)]
    pub configurations: Vec<String>,
    /// Folds to train: a comma list such as `0,2`, or `all`.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,3,4")]
    pub folds: Vec<Fold>,
    /// Length and device.
    #[command(flatten)]
    pub training: TrainingArgs,
    /// Memory budget and preset.
    #[command(flatten)]
    pub planner: PlannerArgs,
    /// Train folds and configurations at the same time, one `autoseg train` process per
    /// listed device: a comma list such as `cuda:0,cuda:1` or `cpu,cpu`.
    ///
    /// Each entry is a slot that trains one fold at a time (a device listed twice trains two
    /// folds on it). Verification, planning and preprocessing run first, in this process; then
    /// every chosen fold of every configuration goes to the next free slot, a cascade stage
    /// only once every fold of its previous stage is done. `--threads` is split between the
    /// slots; each fold's output goes to `train_output.log` in its fold folder. When a fold
    /// fails, the running ones finish, no new one starts, and the command exits 1 naming every
    /// failed fold and its log. SIGINT/SIGTERM reach every running fold, which stops with a
    /// checkpoint; a re-run resumes them. Then find-best runs as without this flag. Not with
    /// --device.
    #[arg(
        long,
        value_name = "DEVICES",
        value_delimiter = ',',
        conflicts_with = "device"
    )]
    pub parallel_folds: Option<Vec<DeviceArg>>,
}

/// Arguments of `autoseg predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Input folder of `CASE_XXXX` channel files, or a single image file.
    #[arg(short = 'i', long = "input")]
    pub input: PathBuf,
    /// Output folder for masks (and probabilities on request).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Model: an autoseg model folder (`<work>/<dataset>` or a copy of it) or its `autoseg
    /// export` zip; an nnU-Net v2 trained-model folder (`<Trainer>__<Plans>__<configuration>/`
    /// with plans.json and `fold_<k>/checkpoint_final.pth`); an nnU-Net results folder
    /// (`nnUNet_results/<Dataset>/` with the inference_information.json of
    /// `nnUNetv2_find_best_configuration`: runs the model or ensemble it chose, with its
    /// postprocessing); or the zip `nnUNetv2_export_model_to_zip` writes (with -c to pick one
    /// configuration; without, the zip's inference_information.json choice, else its only one).
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// Configuration to use (default: the choice of results/best.toml or of nnU-Net's
    /// inference_information.json; an nnU-Net model folder's own).
    #[arg(short = 'c', long = "configuration")]
    pub configuration: Option<String>,
    /// Folds to ensemble: a comma list such as `0,1,2,3,4`, or `all` (default: 0,1,2,3,4; for
    /// an nnU-Net results folder, the folds its inference_information.json names).
    #[arg(long, value_delimiter = ',')]
    pub folds: Vec<Fold>,
    /// Disable mirroring test-time augmentation.
    #[arg(long)]
    pub no_tta: bool,
    /// Sliding-window step as a fraction of the patch size.
    #[arg(long, default_value_t = 0.5)]
    pub step: f64,
    /// Also write per-class probabilities (`<case>.npz`).
    #[arg(long)]
    pub save_probabilities: bool,
    /// For DICOM series inputs, also write `<case>.seg.dcm` beside the mask: a binary DICOM
    /// Segmentation object, one segment per dataset.json label (its name), referring to the
    /// source series and its frame of reference, for DICOM viewers (3D Slicer, OHIF).
    #[arg(long)]
    pub dicom_seg: bool,
    /// Do not apply the postprocessing recorded in results/best.toml.
    #[arg(long)]
    pub no_postprocessing: bool,
    /// Accumulate the sliding window's logits in float32 instead of nnU-Net's float16: twice
    /// the memory, for models whose logits overflow float16 (the error says when).
    #[arg(long)]
    pub accumulate_fp32: bool,
    /// Which checkpoint of each fold: `final` (after the last epoch) or `best` (the best EMA
    /// pseudo Dice), as nnU-Net's `-chk checkpoint_final.pth|checkpoint_best.pth`.
    #[arg(long, value_enum, default_value = "final")]
    pub checkpoint: CheckpointArg,
    /// Skip the cases whose outputs are already in the output folder (the mask, and with
    /// --save-probabilities its .npz and .pkl), as nnU-Net's `--continue_prediction`: a run
    /// that was stopped goes on where it stopped. Outputs are written atomically, so one that
    /// exists is complete.
    #[arg(long = "continue")]
    pub continue_prediction: bool,
    /// Split the input cases into this many parts, for several machines or devices predicting
    /// one folder; this run predicts part --part-id (nnU-Net's `-num_parts`: the sorted
    /// cases' every N-th).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub num_parts: usize,
    /// Which part this run predicts, 0 to --num-parts minus 1 (nnU-Net's `-part_id`).
    #[arg(long, default_value_t = 0, value_name = "K")]
    pub part_id: usize,
    /// Device: cpu, cuda or cuda:N (default: cuda when usable, else cpu).
    #[arg(long)]
    pub device: Option<DeviceArg>,
}

/// Which checkpoint `predict` loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckpointArg {
    /// `checkpoint_final`.
    Final,
    /// `checkpoint_best`.
    Best,
}

/// Arguments of `autoseg ensemble`.
#[derive(Debug, Args)]
pub struct EnsembleArgs {
    /// Prediction folders written with --save-probabilities (two or more).
    #[arg(short = 'i', long = "input", num_args = 2.., required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output folder for the ensembled masks.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
}

/// Arguments of `autoseg evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Folder of predicted masks.
    #[arg(long)]
    pub pred: PathBuf,
    /// Folder of reference masks (same file names).
    #[arg(long = "ref")]
    pub reference: PathBuf,
    /// dataset.json giving the labels (default: labels found in the references).
    #[arg(long)]
    pub dataset_json: Option<PathBuf>,
    /// Where to write summary.json (default: PRED/summary.json).
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
}

/// Arguments of `autoseg fixtures`.
#[derive(Debug, Args)]
pub struct FixturesArgs {
    /// Name of the synthetic dataset (or `broken`/`hostile` for the corpora of damaged and
    /// forged datasets); `list` prints the names.
    pub name: String,
    /// Folder to write it into.
    pub out_dir: Option<PathBuf>,
    /// The image format of its files, by ending: `.nii.gz` (default), `.nii`, `.nrrd`,
    /// `.nhdr`, `.mha`, `.mhd`, `.gipl`, `.png`, `.bmp`, `.tif` or `.tiff` (natural formats as
    /// 8-bit grey images; the `broken` and `hostile` corpora keep their entries' own formats).
    #[arg(long, default_value = ".nii.gz")]
    pub file_ending: String,
}

/// Arguments of `autoseg export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The autoseg model folder (`<work>/<dataset>`, or one `import-nnunet` wrote).
    pub model: PathBuf,
    /// The zip to write; with `--format nnunet` a zip (`FILE.zip`, as
    /// `nnUNetv2_export_model_to_zip` writes) or a folder to write
    /// `<dataset>/nnUNetTrainer__<Plans>__<configuration>/` into (an `nnUNet_results`).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Configurations to include (default: those results/best.toml chose, else every trained
    /// one).
    #[arg(short = 'c', long = "configuration", num_args = 1..)]
    pub configurations: Vec<String>,
    /// `autoseg`: one zip `predict -m` runs (safetensors weights with their digests).
    /// `nnunet`: nnU-Net v2 model folders (`plans.json`, `dataset.json`,
    /// `fold_<k>/checkpoint_{final,best}.pth` as `torch.save` writes them) that nnU-Net 2.8.1's
    /// `nnUNetv2_predict_from_modelfolder` and `-pretrained_weights` take.
    #[arg(long, value_enum, default_value_t = ExportFormat::Autoseg)]
    pub format: ExportFormat,
}

/// The format `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// autoseg's own model zip.
    Autoseg,
    /// nnU-Net v2 trained-model folders (or their export zip).
    Nnunet,
}

/// Arguments of `autoseg import-nnunet`.
#[derive(Debug, Args)]
pub struct ImportNnunetArgs {
    /// nnU-Net model folder (`<Trainer>__<Plans>__<configuration>/`) or the zip
    /// `nnUNetv2_export_model_to_zip` writes (every configuration in it is imported).
    pub source: PathBuf,
    /// The autoseg model folder to write (must not hold a model yet); `predict -m` takes it.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
}

/// A compute device as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceArg {
    /// The CPU.
    Cpu,
    /// CUDA device N.
    Cuda(usize),
}

impl FromStr for DeviceArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(DeviceArg::Cpu),
            "cuda" => Ok(DeviceArg::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceArg::Cuda)
                .ok_or_else(|| format!("device must be cpu, cuda or cuda:N; got `{s}`")),
        }
    }
}

/// As `--device` takes it: `cpu` or `cuda:N`.
impl std::fmt::Display for DeviceArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceArg::Cpu => f.write_str("cpu"),
            DeviceArg::Cuda(idx) => write!(f, "cuda:{idx}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap()
    }

    #[test]
    fn folds_parse_as_a_comma_list_and_all() {
        let cli = parse(&["autoseg", "plan-and-train", "ds", "--folds", "0,2"]);
        assert!(matches!(cli.command, Some(Command::PlanAndTrain(a))
            if a.folds == vec![Fold::Index(0), Fold::Index(2)]));
        let cli = parse(&["autoseg", "plan-and-train", "ds", "--folds", "all"]);
        assert!(
            matches!(cli.command, Some(Command::PlanAndTrain(a)) if a.folds == vec![Fold::All])
        );
        assert!(Cli::try_parse_from(["autoseg", "plan-and-train", "ds", "--folds", "x"]).is_err());
    }

    /// nnU-Net's way (`-c 2d 3d_fullres`) and repeated `-c` on every command that takes several.
    #[test]
    fn several_configurations_as_nnunet_names_them_or_repeated() {
        let both = vec!["2d".to_string(), "3d_fullres".to_string()];
        for args in [
            &["-c", "2d", "3d_fullres"][..],
            &["-c", "2d", "-c", "3d_fullres"][..],
            &["--configuration", "2d", "3d_fullres"][..],
        ] {
            let configurations = |command: &[&str]| {
                let argv = [&["autoseg"], command, args].concat();
                match parse(&argv).command {
                    Some(Command::Preprocess(a)) => a.configurations,
                    Some(Command::PlanAndTrain(a)) => a.configurations,
                    Some(Command::Export(a)) => a.configurations,
                    other => panic!("parsed {other:?}"),
                }
            };
            assert_eq!(configurations(&["preprocess", "ds"]), both);
            assert_eq!(configurations(&["plan-and-train", "ds"]), both);
            assert_eq!(configurations(&["export", "m", "-o", "x.zip"]), both);
        }
    }

    #[test]
    fn plan_and_train_defaults_to_five_folds_and_the_plans_lengths() {
        let cli = parse(&["autoseg", "plan-and-train", "ds"]);
        let Some(Command::PlanAndTrain(a)) = cli.command else {
            panic!("parsed another command")
        };
        assert_eq!(a.folds, (0..5).map(Fold::Index).collect::<Vec<_>>());
        // No flag: the plan's training table (nnU-Net's 1000 x 250 without one) decides.
        assert_eq!(
            (a.training.epochs, a.training.iters_per_epoch),
            (None, None)
        );
        assert_eq!(a.training.trainer, None);
        assert_eq!(a.work.work, PathBuf::from("autoseg_work"));
        assert_eq!(a.planner.gpu_memory_gb, None);
    }

    #[test]
    fn train_takes_dataset_config_fold_and_device() {
        let cli = parse(&[
            "autoseg",
            "train",
            "ds",
            "3d_fullres",
            "all",
            "--device",
            "cuda:1",
            "--resume",
        ]);
        let Some(Command::Train(a)) = cli.command else {
            panic!("parsed another command")
        };
        assert_eq!(
            (a.configuration.as_str(), a.fold, a.resume),
            ("3d_fullres", Fold::All, true)
        );
        assert_eq!(a.training.device, Some(DeviceArg::Cuda(1)));
        assert!(
            Cli::try_parse_from(["autoseg", "train", "ds", "2d", "0", "--device", "gpu"]).is_err()
        );
    }

    #[test]
    fn pretrained_weights_take_a_file_and_exclude_resume() {
        let cli = parse(&[
            "autoseg",
            "train",
            "ds",
            "2d",
            "0",
            "--pretrained-weights",
            "pre/checkpoint_final.pth",
        ]);
        let Some(Command::Train(a)) = cli.command else {
            panic!("parsed another command")
        };
        assert_eq!(
            a.pretrained_weights,
            Some(PathBuf::from("pre/checkpoint_final.pth"))
        );
        assert!(!a.resume);
        let err = Cli::try_parse_from([
            "autoseg",
            "train",
            "ds",
            "2d",
            "0",
            "--resume",
            "--pretrained-weights",
            "w.pth",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn plan_takes_target_spacing_and_preset() {
        let cli = parse(&[
            "autoseg",
            "plan",
            "ds",
            "--target-spacing",
            "3",
            "0.5",
            "0.5",
            "--planner",
            "resenc-l",
        ]);
        let Some(Command::Plan(a)) = cli.command else {
            panic!("parsed another command")
        };
        assert_eq!(a.target_spacing, Some(vec![3.0, 0.5, 0.5]));
        assert_eq!(a.planner.planner, PlannerPreset::ResencL);
        assert!(
            Cli::try_parse_from(["autoseg", "plan", "ds", "--target-spacing", "3", "0.5"]).is_err()
        );
    }

    #[test]
    fn plans_from_takes_a_path_and_excludes_planner_settings() {
        let cli = parse(&["autoseg", "plan", "ds", "--plans-from", "other/plans.toml"]);
        let Some(Command::Plan(a)) = cli.command else {
            panic!("parsed another command")
        };
        assert_eq!(a.plans_from, Some(PathBuf::from("other/plans.toml")));
        for flag in [
            &["--target-spacing", "1", "1", "1"][..],
            &["--gpu-memory-gb", "24"],
            &["--planner", "resenc-m"],
        ] {
            let args = [&["autoseg", "plan", "ds", "--plans-from", "o"][..], flag].concat();
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{flag:?}"
            );
        }
    }

    #[test]
    fn predict_and_ensemble_use_the_short_flags_of_the_contract() {
        let cli = parse(&[
            "autoseg", "predict", "-i", "in", "-o", "out", "-m", "model", "-c", "2d", "--no-tta",
            "--step", "0.25",
        ]);
        let Some(Command::Predict(a)) = cli.command else {
            panic!("parsed another command")
        };
        assert_eq!(
            (a.no_tta, a.step, a.configuration.as_deref()),
            (true, 0.25, Some("2d"))
        );
        let cli = parse(&["autoseg", "ensemble", "-i", "a", "b", "-o", "out"]);
        let Some(Command::Ensemble(a)) = cli.command else {
            panic!("parsed another command")
        };
        assert_eq!(a.inputs, vec![PathBuf::from("a"), PathBuf::from("b")]);
        assert!(Cli::try_parse_from(["autoseg", "ensemble", "-i", "a", "-o", "out"]).is_err());
    }

    #[test]
    fn parallel_folds_take_a_device_list_and_exclude_device() {
        let cli = parse(&[
            "autoseg",
            "plan-and-train",
            "ds",
            "--parallel-folds",
            "cuda:0,cuda:1",
        ]);
        let Some(Command::PlanAndTrain(a)) = cli.command else {
            panic!("parsed another command")
        };
        assert_eq!(
            a.parallel_folds,
            Some(vec![DeviceArg::Cuda(0), DeviceArg::Cuda(1)])
        );
        let cli = parse(&[
            "autoseg",
            "plan-and-train",
            "ds",
            "--parallel-folds",
            "cpu,cpu",
        ]);
        let Some(Command::PlanAndTrain(a)) = cli.command else {
            panic!("parsed another command")
        };
        assert_eq!(a.parallel_folds, Some(vec![DeviceArg::Cpu; 2]));
        assert_eq!(
            parse(&["autoseg", "plan-and-train", "ds"])
                .command
                .map(|c| match c {
                    Command::PlanAndTrain(a) => a.parallel_folds,
                    _ => None,
                }),
            Some(None)
        );
        let bad = [
            "autoseg",
            "plan-and-train",
            "ds",
            "--parallel-folds",
            "cpu,gpu7",
        ];
        let err = Cli::try_parse_from(bad).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(err.to_string().contains("`gpu7`"), "{err}");
        let both = [
            "autoseg",
            "plan-and-train",
            "ds",
            "--parallel-folds",
            "cpu",
            "--device",
            "cpu",
        ];
        let err = Cli::try_parse_from(both).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        for device in [DeviceArg::Cpu, DeviceArg::Cuda(3)] {
            assert_eq!(device.to_string().parse::<DeviceArg>(), Ok(device));
        }
    }

    #[test]
    fn threads_is_global() {
        let cli = parse(&["autoseg", "verify", "ds", "--threads", "3"]);
        assert_eq!(cli.threads, Some(3));
    }
}
