//! The terminal side of the libraries' `Progress` trait: an indicatif bar on stderr.

use std::sync::Mutex;
use std::time::Duration;

use autoseg_preprocessing::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar per operation, drawn on stderr (hidden when stderr is not a terminal).
pub struct Bar {
    bar: Mutex<Option<ProgressBar>>,
}

impl Bar {
    /// A bar that draws nothing until `start`.
    pub fn new() -> Bar {
        Bar {
            bar: Mutex::new(None),
        }
    }
}

impl Progress for Bar {
    fn start(&self, what: &str, total: u64) {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style =
            ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} ({elapsed}, eta {eta})")
                .expect("the progress template is a valid literal")
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        *self
            .bar
            .lock()
            .expect("progress lock is never poisoned: no code panics while holding it") = Some(bar);
    }

    fn advance(&self, n: u64) {
        if let Some(bar) = self
            .bar
            .lock()
            .expect("progress lock is never poisoned")
            .as_ref()
        {
            bar.inc(n);
        }
    }

    fn finish(&self) {
        if let Some(bar) = self
            .bar
            .lock()
            .expect("progress lock is never poisoned")
            .take()
        {
            bar.finish();
        }
    }
}
