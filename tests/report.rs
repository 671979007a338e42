//! `autoseg report` on the demo3d fixture with fake cross-validation results (the references
//! copied as predictions, their summary written by `autoseg-evaluation`), then the page rendered
//! by headless Chromium: the screenshot must show the report, overlays included, not a blank.
//!
//! Needs Chromium (`apt-get install -y chromium`); without it the test fails and says so.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use autoseg_evaluation::report::RgbImage;
use autoseg_evaluation::{
    evaluate_cases, CaseInput, EvaluationSettings, LabelValue, SurfaceSettings,
};
use autoseg_preprocessing::read_label_map;

/// How long Chromium may take to render one page.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(120);

fn run_ok(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_autoseg"))
        .args(args)
        .output()
        .expect("the autoseg binary runs");
    assert!(
        out.status.success(),
        "autoseg {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The Chromium executable on PATH (or at /usr/bin/chromium).
fn chromium() -> PathBuf {
    let names = [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ];
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path_var).collect();
    dirs.push(PathBuf::from("/usr/bin"));
    dirs.iter()
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "headless Chromium is needed to render the report but none was found on PATH \
                 ({names:?}); install it with `apt-get install -y chromium`"
            )
        })
}

/// Fold 0 of 3d_fullres "predicts" its validation cases perfectly: the references copied, with
/// a summary of them in `validation/` and `crossval/`.
fn write_fake_results(dataset: &Path, work_dir: &Path, cases: &[&str]) {
    let config = work_dir.join("results/3d_fullres");
    let validation = config.join("fold_0/validation");
    std::fs::create_dir_all(&validation).expect("mkdir");
    std::fs::create_dir_all(config.join("crossval")).expect("mkdir");
    let mut references = Vec::new();
    for case in cases {
        let name = format!("{case}.nii.gz");
        let label = dataset.join("labelsTr").join(&name);
        std::fs::copy(&label, validation.join(&name)).expect("copy the reference");
        let map = read_label_map(&label).expect("the fixture's labels read");
        references.push((name, map));
    }
    let inputs: Vec<CaseInput<'_, u16>> = references
        .iter()
        .map(|(name, map)| {
            // The one channel of a label map read from one file, as a (z, y, x) view.
            let spatial = map
                .data
                .view()
                .into_shape_with_order(map.data_shape().0)
                .expect("a label map read from one file has one channel");
            CaseInput {
                prediction_file: name.clone(),
                reference_file: name.clone(),
                prediction: spatial,
                reference: spatial,
                spacing: map.geometry.spacing().0,
            }
        })
        .collect();
    let settings = EvaluationSettings {
        classes: vec![LabelValue::Single(1), LabelValue::Single(2)],
        ignore_label: None,
        surface: Some(SurfaceSettings {
            nsd_tolerance_mm: 1.0,
        }),
    };
    let summary = evaluate_cases(&inputs, &settings).expect("evaluation of copies");
    summary
        .write(&validation.join("summary.json"))
        .expect("write summary");
    summary
        .write(&config.join("crossval/summary.json"))
        .expect("write summary");
}

/// Renders `html` with headless Chromium into a 1200 x 4000 screenshot (tall enough to reach
/// the first case's overlays below the tables).
fn screenshot(html: &Path, out_dir: &Path) -> RgbImage {
    let png = out_dir.join("screenshot.png");
    let log = out_dir.join("chromium.log");
    let profile = out_dir.join("chromium-profile");
    let log_file = std::fs::File::create(&log).expect("create the log");
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1200,4000")
        .arg(format!("file://{}", html.display()))
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("Chromium starts");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for Chromium") {
            break status;
        }
        if start.elapsed() > CHROMIUM_TIMEOUT {
            let _ = child.kill();
            panic!("Chromium did not finish in {CHROMIUM_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.success() && png.is_file(),
        "Chromium failed ({status}):\n{log_text}"
    );
    let bytes = std::fs::read(&png).expect("read the screenshot");
    RgbImage::decode_png(&bytes, &png).expect("the screenshot is a PNG")
}

#[test]
fn report_renders_in_chromium_with_plans_metrics_and_overlays() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dataset = autoseg_fixtures::write("demo3d", tmp.path()).expect("write the fixture");
    let work = tmp.path().join("work");
    let (ds, wk) = (
        dataset.to_str().expect("utf-8"),
        work.to_str().expect("utf-8"),
    );
    run_ok(&["plan", ds, "--work", wk]);
    let work_dir = work.join("Dataset901_Demo3d");
    write_fake_results(&dataset, &work_dir, &["demo_000", "demo_001"]);

    let stdout = run_ok(&["report", ds, "--work", wk]);
    let report = work_dir.join("report/index.html");
    assert_eq!(stdout.trim(), report.display().to_string());
    let html = std::fs::read_to_string(&report).expect("read the report");
    assert!(html.contains("<th>configuration</th><th>2d</th><th>3d_fullres</th>"));
    assert!(html.contains("no training results yet for 2d"));
    assert!(html.contains("<td>1 (organ)</td><td class=\"num\">1.0000 ± 0.0000</td>"));
    assert_eq!(html.matches("<img class=\"panel\"").count(), 2 * 3 * 3);

    let shot = screenshot(&report, tmp.path());
    assert_eq!((shot.width, shot.height), (1200, 4000));
    let n = shot.pixels.len();
    let non_white = shot
        .pixels
        .iter()
        .filter(|p| p.iter().any(|&v| v < 240))
        .count();
    let mut colours: Vec<[u8; 3]> = shot.pixels.clone();
    colours.sort_unstable();
    colours.dedup();
    // Organ overlay (label 1 is drawn in (230, 25, 75)): reddish pixels, far more than the
    // legend's swatches could give.
    let reddish = shot
        .pixels
        .iter()
        .filter(|p| p[0] as i32 > p[1] as i32 + 60 && p[0] as i32 > p[2] as i32 + 40)
        .count();
    eprintln!(
        "screenshot: {non_white} of {n} pixels not white, {} colours, {reddish} reddish",
        colours.len()
    );
    assert!(
        non_white * 20 > n,
        "the page looks blank: {non_white} of {n} pixels not white"
    );
    assert!(
        colours.len() > 100,
        "only {} distinct colours",
        colours.len()
    );
    assert!(
        reddish > 2000,
        "no overlay visible: {reddish} reddish pixels"
    );
}
