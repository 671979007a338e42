//! Benchmark (report only): predicts every case of a folder with the public [`Predictor`] API,
//! one case after the other on one thread, and prints each case's seconds per phase
//! (preprocessing, network, accumulation, export) from [`Predictor::phase_times`] as one JSON
//! object per line, as `scripts/compare_nnunet_predict.py` reads them.
//!
//! Run: `cargo run --release -p autoseg-inference --example predict_bench -- MODEL_DIR CONFIG
//! FOLDS IN_DIR OUT_DIR [--no-tta]` (FOLDS: a comma list such as `0,1`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use autoseg_inference::{discover_input_cases, Device, PhaseTimes, PredictOptions, Predictor};
use autoseg_planner::WorkLayout;

/// The command line: positional arguments plus `--no-tta`.
struct Args {
    model: PathBuf,
    configuration: String,
    folds: Vec<String>,
    input: PathBuf,
    output: PathBuf,
    tta: bool,
}

fn parse_args() -> Option<Args> {
    let mut raw: Vec<String> = std::env::args().skip(1).collect();
    let before = raw.len();
    raw.retain(|a| a != "--no-tta");
    let tta = raw.len() == before;
    let [model, configuration, folds, input, output] = <[String; 5]>::try_from(raw).ok()?;
    Some(Args {
        model: model.into(),
        configuration,
        folds: folds.split(',').map(str::to_string).collect(),
        input: input.into(),
        output: output.into(),
        tta,
    })
}

/// `now - before`, phase by phase.
fn difference(now: PhaseTimes, before: PhaseTimes) -> PhaseTimes {
    PhaseTimes {
        preprocessing: now.preprocessing - before.preprocessing,
        network: now.network - before.network,
        accumulation: now.accumulation - before.accumulation,
        export: now.export - before.export,
        cases: now.cases - before.cases,
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut predictor = Predictor::load(
        &WorkLayout::new(&args.model),
        &args.configuration,
        &args.folds,
        Device::Cpu,
    )?;
    predictor.set_options(PredictOptions {
        use_mirroring: args.tta,
        ..PredictOptions::nnunet()
    })?;
    let cases = discover_input_cases(&args.input, &predictor.dataset().file_ending)?;
    let preprocessor = predictor.preprocessor();
    for case in &cases {
        let before = predictor.phase_times();
        let start = Instant::now();
        let prepared = preprocessor.prepare(case)?;
        let prediction = predictor.predict_prepared(prepared)?;
        predictor.write_prediction(prediction, &args.output, None)?;
        let wall = start.elapsed().as_secs_f64();
        let t = difference(predictor.phase_times(), before);
        println!(
            "{{\"case\": \"{}\", \"tta\": {}, \"threads\": {}, \"preprocessing\": {:.4}, \"network\": {:.4}, \"accumulation\": {:.4}, \"export\": {:.4}, \"total\": {:.4}}}",
            case.id, args.tta, tch::get_num_threads(), t.preprocessing, t.network, t.accumulation, t.export, wall
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let Some(args) = parse_args() else {
        eprintln!("usage: predict_bench MODEL_DIR CONFIG FOLDS IN_DIR OUT_DIR [--no-tta]");
        return ExitCode::from(2);
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("predict_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
