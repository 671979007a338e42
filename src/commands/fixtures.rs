//! `autoseg fixtures NAME OUT_DIR`: writes a deterministic synthetic dataset.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::FixturesArgs;
use crate::commands::EXIT_USAGE;

/// Writes fixture `name` into `out_dir`, or lists the names for `list`.
pub fn run(args: &FixturesArgs) -> anyhow::Result<ExitCode> {
    if args.name == "list" {
        for name in autoseg_fixtures::names() {
            println!("{name}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(out_dir) = &args.out_dir else {
        eprintln!("autoseg: fixtures {} needs an OUT_DIR", args.name);
        return Ok(ExitCode::from(EXIT_USAGE));
    };
    if !autoseg_fixtures::names().contains(&args.name.as_str()) {
        eprintln!(
            "autoseg: unknown fixture `{}`; known: {}",
            args.name,
            autoseg_fixtures::names().join(", ")
        );
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let written = autoseg_fixtures::write_as(&args.name, out_dir, &args.file_ending)
        .with_context(|| format!("writing fixture {} into {}", args.name, out_dir.display()))?;
    println!("wrote {}", written.display());
    Ok(ExitCode::SUCCESS)
}
