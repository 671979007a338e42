//! `autoseg predict -i IN -o OUT -m MODEL_DIR [-c CONFIG] [--folds 0,1,2,3,4] [--no-tta]
//! [--step 0.5] [--save-probabilities] [--no-postprocessing] [--device ...]`: predicts every
//! `CASE_XXXX` case of a folder (or one image file) with the folds of a configuration, writing
//! masks (and probabilities) in each input's own geometry.
//!
//! The next case is read and preprocessed on a second thread while the current one runs on the
//! device (one case ahead). A case that fails is reported and skipped; the exit code is then 1.

use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc;

use anyhow::Context;
use autoseg_evaluation::PostprocessingPlan;
use autoseg_inference::{
    discover_input_cases, read_best_choice, BestChoice, Device, InputCase, PredictOptions,
    Predictor,
};
use autoseg_preprocessing::Progress;

use crate::cli::{DeviceArg, PredictArgs};
use crate::commands::EXIT_FAILURE;
use crate::progress::Bar;

/// Runs `autoseg predict`.
pub fn run(args: &PredictArgs) -> anyhow::Result<ExitCode> {
    let best = read_best_choice(&args.model)?;
    let configuration = choose_configuration(args, best.as_ref())?;
    let postprocessing = choose_postprocessing(args, &configuration, best.as_ref());
    let folds: Vec<String> = args.folds.iter().map(ToString::to_string).collect();
    let device = device(args.device);
    let mut predictor = Predictor::load(&args.model, &configuration, &folds, device)
        .with_context(|| format!("{}: cannot load {configuration}", args.model.display()))?;
    predictor.set_options(PredictOptions {
        step: args.step,
        use_mirroring: !args.no_tta,
        save_probabilities: args.save_probabilities,
    })?;
    let cases = discover_input_cases(&args.input, &predictor.dataset().file_ending)?;
    tracing::info!(
        n_cases = cases.len(),
        configuration,
        folds = ?folds,
        device = ?device,
        "predicting"
    );
    let n_failed = predict_all(&predictor, &cases, &args.output, postprocessing.as_ref());
    println!(
        "{configuration}: {} of {} cases predicted -> {}",
        cases.len() - n_failed,
        cases.len(),
        args.output.display()
    );
    Ok(if n_failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}

/// `-c`, else the configuration `results/best.toml` chose.
fn choose_configuration(args: &PredictArgs, best: Option<&BestChoice>) -> anyhow::Result<String> {
    if let Some(name) = &args.configuration {
        return Ok(name.clone());
    }
    best.and_then(|b| b.configuration.clone()).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no configuration given and results/best.toml names none (run `autoseg find-best` or pass -c CONFIG)",
            args.model.display()
        )
    })
}

/// The postprocessing of `results/best.toml`, unless `--no-postprocessing`, the file is absent,
/// or it was chosen for another configuration.
fn choose_postprocessing(
    args: &PredictArgs,
    configuration: &str,
    best: Option<&BestChoice>,
) -> Option<PostprocessingPlan> {
    if args.no_postprocessing {
        return None;
    }
    let Some(best) = best else {
        tracing::info!("no results/best.toml in the model folder: no postprocessing");
        return None;
    };
    match best.configuration.as_deref() {
        Some(chosen) if chosen != configuration => {
            tracing::info!(
                chosen,
                configuration,
                "results/best.toml's postprocessing was chosen for another configuration: not applied"
            );
            None
        }
        _ => Some(best.postprocessing.clone()),
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
                eprintln!("autoseg: case {}: {err:#}", case.id);
                n_failed += 1;
            }
            bar.advance(1);
        }
    });
    bar.finish();
    n_failed
}
