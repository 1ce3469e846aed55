//! A compact terminal renderer for burn-train: one progress line per split, redrawn in place on
//! a terminal (a line at every quarter otherwise, so logs stay short), with the running epoch
//! value of every metric, throughput and time.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::{MetricDefinition, MetricEntry};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};

/// Prints `epoch 2/4 train [#######.....] 30720/60000 | Accuracy 97.9 % | Loss 0.071 | ...`.
pub struct LineRenderer {
    names: BTreeMap<String, String>,
    values: BTreeMap<String, String>,
    epoch: usize,
    epochs: usize,
    split: String,
    total: usize,
    started: Instant,
    last_draw: Instant,
    last_quarter: usize,
    tty: bool,
    unit: &'static str,
}

impl Default for LineRenderer {
    fn default() -> Self {
        Self::new()
    }
}

impl LineRenderer {
    /// A renderer writing to stdout.
    pub fn new() -> Self {
        Self {
            names: BTreeMap::new(),
            values: BTreeMap::new(),
            epoch: 1,
            epochs: 0,
            split: String::new(),
            total: 0,
            started: Instant::now(),
            last_draw: Instant::now(),
            last_quarter: 0,
            tty: std::io::stdout().is_terminal(),
            unit: "img",
        }
    }

    /// The same renderer counting items as `unit` (`"img"` by default; `"seq"` for windows of
    /// text): the rate is printed as `<n> <unit>/s`.
    pub fn with_unit(mut self, unit: &'static str) -> Self {
        self.unit = unit;
        self
    }

    fn record(&mut self, entry: &MetricEntry) {
        let id = format!("{:?}", entry.metric_id);
        let text = &entry.serialized_entry.formatted;
        // burn-train formats numeric metrics as "epoch <running> - batch <current>".
        let running = text
            .strip_prefix("epoch ")
            .and_then(|t| t.split(" - batch").next())
            .unwrap_or(text);
        self.values.insert(id, running.trim().to_string());
    }

    fn line(&self, done: usize) -> String {
        const WIDTH: usize = 24;
        let frac = done as f64 / self.total.max(1) as f64;
        let filled = ((frac * WIDTH as f64) as usize).min(WIDTH);
        let secs = self.started.elapsed().as_secs_f64();
        let mut s = format!(
            "epoch {}/{} {:<5} [{}{}] {done}/{} | {:.0} {}/s | {:.0} s",
            self.epoch,
            self.epochs,
            self.split,
            "#".repeat(filled),
            ".".repeat(WIDTH - filled),
            self.total,
            done as f64 / secs.max(1e-3),
            self.unit,
            secs
        );
        for (id, value) in &self.values {
            let name = self.names.get(id).map_or(id.as_str(), String::as_str);
            // The learning rate means nothing outside training.
            if self.split != "train" && name.contains("Learning Rate") {
                continue;
            }
            s.push_str(&format!(" | {name} {value}"));
        }
        s
    }

    fn draw(&mut self, done: usize, last: bool) {
        let quarter = 4 * done / self.total.max(1);
        let mut out = std::io::stdout().lock();
        if self.tty {
            if last || self.last_draw.elapsed() >= Duration::from_millis(250) {
                self.last_draw = Instant::now();
                let end = if last { "\n" } else { "" };
                write!(out, "\r\x1b[2K{}{end}", self.line(done)).ok();
            }
        } else if last || (quarter > self.last_quarter && quarter < 4) {
            self.last_quarter = quarter;
            writeln!(out, "{}", self.line(done)).ok();
        }
        out.flush().ok();
    }
}

impl MetricsRendererTraining for LineRenderer {
    fn update_train(&mut self, state: MetricState) {
        let (MetricState::Numeric(entry, _) | MetricState::Generic(entry)) = &state;
        self.record(entry);
    }

    fn update_valid(&mut self, state: MetricState) {
        self.update_train(state);
    }
}

impl MetricsRendererEvaluation for LineRenderer {
    fn update_test(&mut self, _name: EvaluationName, state: MetricState) {
        self.update_train(state);
    }
}

impl TrainingProgressLogger for LineRenderer {
    fn start(
        &mut self,
        total_epochs: usize,
        starting_epoch: usize,
        _total_items: Option<usize>,
        _label: Option<&str>,
    ) {
        self.epochs = total_epochs;
        self.epoch = starting_epoch.max(1);
    }

    fn update_epoch(&mut self, epoch: usize) {
        self.epoch = epoch + 1;
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        self.split = split.to_string();
        self.total = total_items;
        self.values.clear();
        self.started = Instant::now();
        self.last_draw = self.started;
        self.last_quarter = 0;
    }

    fn update_split(&mut self, items_processed: usize) {
        self.draw(items_processed, false);
    }

    fn end_split(&mut self) {
        self.draw(self.total, true);
    }

    fn end(&mut self) {}

    // Events are burn-train's per-iteration notices ("Iteration"); the progress line covers
    // them.
    fn log_event_training(&mut self, _event: String) {}
}

impl EvaluationProgressLogger for LineRenderer {
    fn start_global_progress(&mut self, _total_tests: usize) {}

    fn start_test(&mut self, name: &str, total_items: usize) {
        self.start_split(name, total_items);
    }

    fn update_test_progress(&mut self, items_processed: usize) {
        self.draw(items_processed, false);
    }

    fn end_test(&mut self) {
        self.draw(self.total, true);
    }

    fn end_global_progress(&mut self) {}

    fn log_event_evaluation(&mut self, _event: String) {}
}

impl MetricsRenderer for LineRenderer {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names.insert(
            format!("{:?}", definition.metric_id),
            definition.name.to_string(),
        );
    }
}
