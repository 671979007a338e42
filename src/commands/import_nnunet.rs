//! `autoseg import-nnunet SOURCE -o MODEL`: an nnU-Net v2 model folder, or every configuration
//! of an `nnUNetv2_export_model_to_zip` zip, written as an autoseg model folder
//! (`autoseg_inference::import_nnunet`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use autoseg_inference::{import_nnunet, nnunet_zip_configurations, unpack_nnunet_zip};
use autoseg_planner::{WorkLayout, WorkLock};

use crate::cli::ImportNnunetArgs;

/// Runs `autoseg import-nnunet`.
pub fn run(args: &ImportNnunetArgs) -> anyhow::Result<ExitCode> {
    let layout = WorkLayout::new(&args.output);
    let _lock = WorkLock::acquire(&layout, "import-nnunet")?;
    anyhow::ensure!(
        !layout.plans().exists(),
        "{}: already holds a model (plans.toml); import into a new folder",
        args.output.display()
    );
    let unpacked = tempfile::tempdir().context("cannot create a temporary folder")?;
    let sources: Vec<PathBuf> = if args.source.is_file() {
        let mut folders = Vec::new();
        for configuration in nnunet_zip_configurations(&args.source)? {
            let into = unpacked.path().join(&configuration);
            folders.push(unpack_nnunet_zip(
                &args.source,
                Some(&configuration),
                &into,
            )?);
        }
        folders
    } else {
        vec![args.source.clone()]
    };
    let summary = import_nnunet(&sources, &layout)
        .with_context(|| format!("{}: cannot import", args.source.display()))?;
    for (configuration, fold, kind) in &summary.checkpoints {
        println!("{configuration} fold {fold}: {}", kind.stem());
    }
    if let Some(file) = &summary.postprocessing {
        println!("postprocessing: {} (in results/best.toml)", file.display());
    }
    println!(
        "imported {} into {}; predict with `autoseg predict -m {}{}`",
        summary.configurations.join(", "),
        args.output.display(),
        args.output.display(),
        if summary.configurations.len() > 1 {
            " -c CONFIG"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}
