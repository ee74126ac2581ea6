//! How backfill shows its progress on stderr: a progress bar on a terminal, plain lines
//! otherwise (a log, CI, a pipe), such as `backfill: 2/3 acme/payments#12 imported (1
//! deployment)`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Receives backfill's progress.
pub trait Progress: Send {
    /// Listing closed pull requests: page `page` is being read.
    fn listing(&mut self, repository: &str, page: u32);
    /// The listing is done: `total` pull requests were merged in the period.
    fn found(&mut self, repository: &str, total: usize, days: u32);
    /// Pull request `index` of `total` (from 1) is done: `what` happened to it.
    fn pull(&mut self, index: usize, total: usize, place: &str, what: &str);
    /// Backfill ended (done or stopped).
    fn finish(&mut self);
}

/// The progress display for this process's stderr: a bar on a terminal, lines otherwise.
pub fn for_stderr() -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Box::new(Bar::default())
    } else {
        Box::new(Lines::new(std::io::stderr()))
    }
}

/// Plain lines, one per step.
pub struct Lines<W> {
    out: W,
}

impl<W: Write + Send> Lines<W> {
    pub fn new(out: W) -> Self {
        Lines { out }
    }

    fn line(&mut self, text: &str) {
        // A reader that went away is not a reason to stop importing.
        let _ = writeln!(self.out, "backfill: {text}");
    }
}

impl<W: Write + Send> Progress for Lines<W> {
    fn listing(&mut self, repository: &str, page: u32) {
        if page > 1 {
            self.line(&format!(
                "reading closed pull requests of {repository}, page {page}"
            ));
        }
    }

    fn found(&mut self, repository: &str, total: usize, days: u32) {
        let s = if total == 1 { "" } else { "s" };
        self.line(&format!(
            "{total} pull request{s} of {repository} merged in the last {days} days"
        ));
    }

    fn pull(&mut self, index: usize, total: usize, place: &str, what: &str) {
        self.line(&format!("{index}/{total} {place} {what}"));
    }

    fn finish(&mut self) {
        let _ = self.out.flush();
    }
}

/// An indicatif bar: a spinner while pull requests are listed, then a bar over them.
#[derive(Default)]
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Progress for Bar {
    fn listing(&mut self, repository: &str, page: u32) {
        let bar = self.bar.get_or_insert_with(|| {
            let spinner = ProgressBar::new_spinner();
            spinner.enable_steady_tick(Duration::from_millis(120));
            spinner
        });
        bar.set_message(format!(
            "listing closed pull requests of {repository} (page {page})"
        ));
    }

    fn found(&mut self, repository: &str, total: usize, days: u32) {
        if let Some(spinner) = self.bar.take() {
            spinner.finish_and_clear();
        }
        let bar = ProgressBar::new(total as u64);
        // The template is a constant: it parses, and the fallback is only a safety net.
        let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {wide_msg}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(format!("backfill {repository} ({days} days)"));
        self.bar = Some(bar);
    }

    fn pull(&mut self, index: usize, _total: usize, place: &str, what: &str) {
        if let Some(bar) = &self.bar {
            bar.set_position(index as u64);
            bar.set_message(format!("{place} {what}"));
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
