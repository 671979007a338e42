//! `autoseg predict -i IN -o OUT -m MODEL_DIR [-c CONFIG] [--folds 0,1,2,3,4] [--no-tta]
//! [--step 0.5] [--save-probabilities] [--no-postprocessing] [--continue] [--num-parts N
//! --part-id K] [--device ...]`: predicts every `CASE_XXXX` case of a folder (or one image file,
//! or one part of the folder; with `--continue` those not predicted yet) with the folds of a
//! configuration, writing masks (and probabilities) in each input's own geometry.
//!
//! Without `-c`, the choice of `results/best.toml` (or, for an nnU-Net results folder, of its
//! `inference_information.json`): one configuration, or an ensemble of configurations (each
//! predicts with probabilities, then they are averaged as `autoseg ensemble` does, then
//! postprocessed). A cascade stage (`3d_cascade_fullres`) runs its
//! `3d_lowres` stage on each case first.
//!
//! The next case is read and preprocessed on a second thread while the current one runs on the
//! device (one case ahead). A case that fails is reported and skipped; the exit code is then 1.
//! The time spent per phase is printed at the end.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;

use anyhow::Context;
use autoseg_evaluation::{ensemble_folders, read_best, BestChoice, PostprocessingPlan};
use autoseg_inference::{
    already_predicted, discover_input_cases, is_model_zip, is_nnunet_model_folder,
    is_nnunet_results_folder, nnunet_postprocessing, read_nnunet_best_choice,
    read_nnunet_postprocessing, select_cases, unpack_model_zip, unpack_nnunet_results_zip,
    unpack_nnunet_zip, Device, InputCase, Part, PredictOptions, Predictor, INFERENCE_INFORMATION,
};
use autoseg_network::checkpoint::CheckpointKind;
use autoseg_planner::WorkLayout;
use autoseg_preprocessing::{read_dataset_json, Progress};

use crate::cli::{CheckpointArg, DeviceArg, PredictArgs};
use crate::commands::EXIT_FAILURE;
use crate::progress::Bar;

mod dicom_seg;

/// Runs `autoseg predict`.
pub fn run(args: &PredictArgs) -> anyhow::Result<ExitCode> {
    let unpacked = tempfile::tempdir().context("cannot create a temporary folder")?;
    let (code, dataset_json) = predict_any(args, unpacked.path())?;
    if args.dicom_seg {
        let dataset = read_dataset_json(&dataset_json)?;
        let n_failed = dicom_seg::write_all(args, &dataset)?;
        if n_failed > 0 {
            return Ok(exit_code(n_failed));
        }
    }
    Ok(code)
}

/// Predicts with whatever kind of model `-m` names (unpacking a zip into `unpacked`); returns
/// the exit code and the model's dataset.json.
fn predict_any(args: &PredictArgs, unpacked: &Path) -> anyhow::Result<(ExitCode, PathBuf)> {
    let json_in = |folder: &Path| folder.join("dataset.json");
    if args.model.extension().is_some_and(|e| e == "zip") && args.model.is_file() {
        if is_model_zip(&args.model) {
            let model = unpack_model_zip(&args.model, unpacked)?;
            return Ok((predict_model(args, &model)?, model.dataset_json()));
        }
        if args.configuration.is_none() {
            if let Some(results) = unpack_nnunet_results_zip(&args.model, unpacked)? {
                let json = nnunet_results_dataset_json(&results);
                return Ok((predict_nnunet_results(args, &results)?, json));
            }
        }
        let folder = unpack_nnunet_zip(&args.model, args.configuration.as_deref(), unpacked)?;
        return Ok((predict_nnunet(args, &folder)?, json_in(&folder)));
    }
    if is_nnunet_results_folder(&args.model) {
        let json = nnunet_results_dataset_json(&args.model);
        return Ok((predict_nnunet_results(args, &args.model)?, json));
    }
    if is_nnunet_model_folder(&args.model) {
        return Ok((predict_nnunet(args, &args.model)?, json_in(&args.model)));
    }
    let model = WorkLayout::new(&args.model);
    Ok((predict_model(args, &model)?, model.dataset_json()))
}

/// The dataset.json of an nnU-Net results folder: its first model folder's.
fn nnunet_results_dataset_json(results: &Path) -> PathBuf {
    std::fs::read_dir(results)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("dataset.json"))
        .filter(|p| p.is_file())
        .min()
        .unwrap_or_else(|| results.join("dataset.json"))
}

/// `--folds`, else `default`.
fn folds_or(args: &PredictArgs, default: &[String]) -> Vec<String> {
    if args.folds.is_empty() {
        default.to_vec()
    } else {
        args.folds.iter().map(ToString::to_string).collect()
    }
}

/// The folds predicted with unless `--folds` or a recorded choice says otherwise: all five.
fn default_folds() -> Vec<String> {
    (0..5).map(|f| f.to_string()).collect()
}

/// Predicts with an autoseg model folder (`-m`, or unpacked from its `autoseg export` zip).
fn predict_model(args: &PredictArgs, model: &WorkLayout) -> anyhow::Result<ExitCode> {
    let model = model.clone();
    let best = read_best(&model.best())?;
    let configurations = choose_configurations(args, best.as_ref())?;
    let postprocessing = choose_postprocessing(args, &configurations, best.as_ref());
    let n_failed = match configurations.as_slice() {
        [single] => predict_configuration(
            args,
            &model,
            single,
            &args.output,
            args.save_probabilities,
            postprocessing.as_ref(),
        )?,
        members => predict_ensemble(args, &model, members, postprocessing.as_ref())?,
    };
    Ok(exit_code(n_failed))
}

/// `-c`, else what `results/best.toml` chose: one configuration or an ensemble of several.
fn choose_configurations(
    args: &PredictArgs,
    best: Option<&BestChoice>,
) -> anyhow::Result<Vec<String>> {
    if let Some(name) = &args.configuration {
        return Ok(vec![name.clone()]);
    }
    match best {
        Some(best) if !best.ensemble.is_empty() => Ok(best.ensemble.clone()),
        _ => anyhow::bail!(
            "{}: no configuration given and results/best.toml names none (run `autoseg find-best` or pass -c CONFIG)",
            args.model.display()
        ),
    }
}

/// The postprocessing of `results/best.toml`, unless `--no-postprocessing`, the file is absent,
/// or it was chosen for other configurations than `configurations`.
fn choose_postprocessing(
    args: &PredictArgs,
    configurations: &[String],
    best: Option<&BestChoice>,
) -> Option<PostprocessingPlan> {
    if args.no_postprocessing {
        return None;
    }
    let Some(best) = best else {
        tracing::info!("no results/best.toml in the model folder: no postprocessing");
        return None;
    };
    if best.ensemble.as_slice() != configurations {
        tracing::info!(
            chosen = ?best.ensemble,
            predicting = ?configurations,
            "results/best.toml's postprocessing was chosen for other configurations: not applied"
        );
        return None;
    }
    Some(best.postprocessing.clone())
}

/// Predicts every input case with the folds of `configuration` into `output`; returns the
/// number of cases that failed.
fn predict_configuration(
    args: &PredictArgs,
    model: &WorkLayout,
    configuration: &str,
    output: &Path,
    save_probabilities: bool,
    postprocessing: Option<&PostprocessingPlan>,
) -> anyhow::Result<usize> {
    let folds = folds_or(args, &default_folds());
    let device = device(args.device);
    let kind = checkpoint_kind(args.checkpoint);
    let predictor = Predictor::load_checkpoint(model, configuration, &folds, device, kind)
        .with_context(|| format!("{}: cannot load {configuration}", args.model.display()))?;
    run_predictor(
        args,
        predictor,
        configuration,
        output,
        save_probabilities,
        postprocessing,
    )
}

/// An nnU-Net v2 trained-model folder (`-m`, or unpacked from its export zip): its
/// configuration is the checkpoints', its postprocessing the one nnU-Net chose for the folds.
fn predict_nnunet(args: &PredictArgs, folder: &Path) -> anyhow::Result<ExitCode> {
    let folds = folds_or(args, &default_folds());
    let postprocessing = if args.no_postprocessing {
        None
    } else {
        nnunet_postprocessing(folder, &folds)?.map(|(file, plan)| {
            tracing::info!(file = %file.display(), steps = plan.steps.len(), "applying nnU-Net's postprocessing");
            plan
        })
    };
    let n_failed = predict_nnunet_folder(
        args,
        folder,
        &folds,
        &args.output,
        args.save_probabilities,
        postprocessing.as_ref(),
    )?;
    Ok(exit_code(n_failed))
}

/// Predicts every input case with `folds` of the nnU-Net model `folder` into `output`; returns
/// the number of cases that failed.
fn predict_nnunet_folder(
    args: &PredictArgs,
    folder: &Path,
    folds: &[String],
    output: &Path,
    save_probabilities: bool,
    postprocessing: Option<&PostprocessingPlan>,
) -> anyhow::Result<usize> {
    let predictor = Predictor::load_nnunet(
        folder,
        folds,
        checkpoint_kind(args.checkpoint),
        device(args.device),
    )
    .with_context(|| {
        format!(
            "{}: cannot load the nnU-Net model",
            model_label(args, folder)
        )
    })?;
    let configuration = predictor.configuration().name.clone();
    if let Some(asked) = args.configuration.as_ref().filter(|c| **c != configuration) {
        anyhow::bail!(
            "{}: this nnU-Net model folder holds {configuration}, not {asked}",
            model_label(args, folder)
        );
    }
    run_predictor(
        args,
        predictor,
        &configuration,
        output,
        save_probabilities,
        postprocessing,
    )
}

/// How messages name the model `folder`: itself, or, unpacked from the zip `-m` gave, the zip
/// and the folder's name in it.
fn model_label(args: &PredictArgs, folder: &Path) -> String {
    if args.model.is_file() {
        let name = folder.file_name().unwrap_or_default().to_string_lossy();
        format!("{} ({name})", args.model.display())
    } else {
        folder.display().to_string()
    }
}

/// An nnU-Net results folder (`nnUNet_results/<Dataset>`, or unpacked from its export zip): the
/// model or ensemble its `inference_information.json` chose, with the folds and the
/// postprocessing chosen with it: nnU-Net's `inference_instructions.txt` in one command.
fn predict_nnunet_results(args: &PredictArgs, dataset: &Path) -> anyhow::Result<ExitCode> {
    if let Some(asked) = &args.configuration {
        anyhow::bail!(
            "{}: an nnU-Net results folder runs the model or ensemble its {INFERENCE_INFORMATION} \
             chose; to run {asked}, pass its model folder (`{}/<Trainer>__<Plans>__{asked}`)",
            dataset.display(),
            dataset.display()
        );
    }
    let choice = read_nnunet_best_choice(dataset)?;
    let folds = folds_or(args, &choice.folds);
    let postprocessing = match (&choice.postprocessing_file, args.no_postprocessing) {
        (Some(file), false) => {
            let plan = read_nnunet_postprocessing(file)?;
            tracing::info!(file = %file.display(), steps = plan.steps.len(), "applying nnU-Net's postprocessing");
            Some(plan)
        }
        _ => None,
    };
    let names: Vec<String> = choice
        .models
        .iter()
        .map(|m| {
            m.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    tracing::info!(models = ?names, ?folds, "nnU-Net's best choice");
    let n_failed = match choice.models.as_slice() {
        [single] => predict_nnunet_folder(
            args,
            single,
            &folds,
            &args.output,
            args.save_probabilities,
            postprocessing.as_ref(),
        )?,
        members => ensemble(args, &names, postprocessing.as_ref(), |i, dir| {
            predict_nnunet_folder(args, &members[i], &folds, dir, true, None)
        })?,
    };
    Ok(exit_code(n_failed))
}

/// Sets the options of `args` on `predictor`, predicts every input case into `output` and
/// prints the phase times; returns the number of cases that failed.
fn run_predictor(
    args: &PredictArgs,
    mut predictor: Predictor,
    configuration: &str,
    output: &Path,
    save_probabilities: bool,
    postprocessing: Option<&PostprocessingPlan>,
) -> anyhow::Result<usize> {
    predictor.set_options(PredictOptions {
        step: args.step,
        use_mirroring: !args.no_tta,
        save_probabilities,
        accumulate_fp32: args.accumulate_fp32,
    })?;
    let ending = predictor.dataset().file_ending.clone();
    let part = Part::new(args.num_parts, args.part_id).with_context(|| {
        format!(
            "--part-id {} is not one of the {} parts (0 to {})",
            args.part_id,
            args.num_parts,
            args.num_parts.saturating_sub(1)
        )
    })?;
    // The final output decides what is done: an ensemble member skips a case whose ensembled
    // mask exists.
    let with_probabilities = save_probabilities && output == args.output;
    let (cases, skipped) =
        select_cases(discover_input_cases(&args.input, &ending)?, part, |case| {
            args.continue_prediction
                && already_predicted(&args.output, &case.id, &ending, with_probabilities)
        });
    if skipped > 0 {
        println!(
            "{configuration}: {skipped} case(s) already in {} skipped (--continue)",
            args.output.display()
        );
    }
    tracing::info!(n_cases = cases.len(), configuration, "predicting");
    let n_failed = predict_all(&predictor, &cases, output, postprocessing);
    let t = predictor.phase_times();
    println!(
        "{configuration}: {} of {} cases predicted -> {} (preprocessing {:.1} s, network {:.1} s, accumulation {:.1} s, export {:.1} s)",
        cases.len() - n_failed,
        cases.len(),
        output.display(),
        t.preprocessing,
        t.network,
        t.accumulation,
        t.export
    );
    Ok(n_failed)
}

/// nnU-Net's ensemble of configurations in one command.
fn predict_ensemble(
    args: &PredictArgs,
    model: &WorkLayout,
    members: &[String],
    postprocessing: Option<&PostprocessingPlan>,
) -> anyhow::Result<usize> {
    ensemble(args, members, postprocessing, |i, dir| {
        predict_configuration(args, model, &members[i], dir, true, None)
    })
}

/// An ensemble in one command: member `i` (named `members[i]`) predicts with probabilities
/// into `<output>/.ensemble_members/<name>/` (`.ensemble_members_part<K>` with `--num-parts`)
/// through `predict_member(i, folder)`, their
/// probabilities are averaged into `<output>` with the postprocessing applied
/// ([`ensemble_folders`], as `autoseg ensemble` and `nnUNetv2_ensemble` do). The members'
/// folders are removed afterwards unless `--save-probabilities`.
fn ensemble(
    args: &PredictArgs,
    members: &[String],
    postprocessing: Option<&PostprocessingPlan>,
    mut predict_member: impl FnMut(usize, &Path) -> anyhow::Result<usize>,
) -> anyhow::Result<usize> {
    // One folder per part: parts predicting into one shared output must not share it.
    let members_dir = args.output.join(if args.num_parts > 1 {
        format!(".ensemble_members_part{}", args.part_id)
    } else {
        ".ensemble_members".to_string()
    });
    let mut dirs = Vec::with_capacity(members.len());
    for (i, member) in members.iter().enumerate() {
        let dir = members_dir.join(member);
        let n_failed = predict_member(i, &dir)?;
        if n_failed > 0 {
            anyhow::bail!(
                "{member}: {n_failed} case(s) failed (listed above); the ensemble needs every case from every member"
            );
        }
        dirs.push(dir);
    }
    if dirs.iter().any(|d| !d.is_dir()) {
        println!(
            "ensemble of {}: no case left to predict -> {}",
            members.join(" + "),
            args.output.display()
        );
        return Ok(0);
    }
    let written = ensemble_folders(&dirs, &args.output, postprocessing).with_context(|| {
        format!(
            "ensembling {} into {}",
            members.join(" + "),
            args.output.display()
        )
    })?;
    if !args.save_probabilities {
        std::fs::remove_dir_all(&members_dir)
            .with_context(|| format!("{}: cannot remove", members_dir.display()))?;
    }
    println!(
        "ensemble of {}: {} cases -> {}",
        members.join(" + "),
        written.len(),
        args.output.display()
    );
    Ok(0)
}

/// Success when every case was predicted.
fn exit_code(n_failed: usize) -> ExitCode {
    if n_failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    }
}

/// `--checkpoint`.
fn checkpoint_kind(arg: CheckpointArg) -> CheckpointKind {
    match arg {
        CheckpointArg::Final => CheckpointKind::Final,
        CheckpointArg::Best => CheckpointKind::Best,
    }
}

/// `--device`, else CUDA device 0 when usable, else the CPU.
fn device(arg: Option<DeviceArg>) -> Device {
    match arg {
        Some(DeviceArg::Cpu) => Device::Cpu,
        Some(DeviceArg::Cuda(index)) => Device::Cuda(index),
        None => Device::cuda_if_available(),
    }
}

/// Predicts and writes every case, preparing the next one on another thread; returns the
/// number of cases that failed (each reported on stderr).
fn predict_all(
    predictor: &Predictor,
    cases: &[InputCase],
    output: &Path,
    postprocessing: Option<&PostprocessingPlan>,
) -> usize {
    let bar = Bar::new();
    bar.start("predict", cases.len() as u64);
    let preprocessor = predictor.preprocessor();
    let mut n_failed = 0;
    std::thread::scope(|scope| {
        // A rendezvous channel: the producer prepares one case ahead, then waits.
        let (sender, receiver) = mpsc::sync_channel(0);
        scope.spawn(move || {
            for case in cases {
                if sender.send((case, preprocessor.prepare(case))).is_err() {
                    break;
                }
            }
        });
        for (case, prepared) in receiver {
            let written = prepared
                .map_err(anyhow::Error::from)
                .and_then(|p| Ok(predictor.predict_prepared(p)?))
                .and_then(|p| Ok(predictor.write_prediction(p, output, postprocessing)?));
            if let Err(err) = written {
                let err = err.context(format!("case {}", case.id));
                eprintln!("autoseg: {}", crate::error_line(&err));
                n_failed += 1;
            }
            bar.advance(1);
        }
    });
    bar.finish();
    n_failed
}
