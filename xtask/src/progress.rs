//! What the long-running commands share: progress bars on a terminal, Ctrl-C as a
//! cancellation, and the engine's progress reports drawn as a bar.

use std::sync::{Arc, OnceLock};

use indicatif::{ProgressBar, ProgressStyle};
use strata::{CancelToken, Control, Progress};

/// A progress bar on a terminal (hidden otherwise, and when `shown` is false).
pub fn bar(shown: bool, len: u64, unit: &str) -> ProgressBar {
    if !shown {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit}, {{per_sec}}, eta {{eta}}");
    bar.set_style(ProgressStyle::with_template(&template).expect("valid template"));
    bar
}

/// Cancelled by the first Ctrl-C (the command stops at its next check, the database at its
/// last commit); a second Ctrl-C ends the process at once.
pub fn interrupted() -> CancelToken {
    static TOKEN: OnceLock<CancelToken> = OnceLock::new();
    TOKEN
        .get_or_init(|| {
            let token = CancelToken::new();
            let flag = token.clone();
            // Without a handler (another one is installed) Ctrl-C ends the process as usual.
            let _ = ctrlc::set_handler(move || {
                if flag.is_cancelled() {
                    std::process::exit(130);
                }
                eprintln!(
                    "\ninterrupted: stopping at the next safe point (Ctrl-C again to quit now)"
                );
                flag.cancel();
            });
            token
        })
        .clone()
}

/// A `Control` that draws the engine's reports on `bar` and stops at Ctrl-C.
pub fn control(bar: &ProgressBar) -> Control {
    let bar = bar.clone();
    Control::new().cancel_with(interrupted()).on_progress(Arc::new(move |p: Progress| {
        bar.set_message(format!("{:?} {:?}", p.operation, p.stage).to_lowercase());
        bar.set_length(p.total);
        bar.set_position(p.done);
    }))
}

/// A bar for [`control`]'s reports: the step, then how far.
pub fn stage_bar(shown: bool) -> ProgressBar {
    if !shown {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    let style = ProgressStyle::with_template("{msg:>18} {bar:40} {pos}/{len}").expect("template");
    bar.set_style(style);
    bar
}
