//! Prometheus metrics and health of the daemon, in the text exposition format.

use crate::observed::Observed;
use crate::recorded::{Recorded, machine_ready};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    iterations: u64,
    iteration_errors: u64,
    commits: u64,
    steps_applied: u64,
    steps_failed: u64,
    desired_valid: bool,
    machines: u64,
    machines_ready: u64,
    last_duration: Duration,
    last_success: Option<Instant>,
    last_error: Option<String>,
    /// What the cluster kinds exported after the last iteration.
    kinds: Vec<Gauge>,
}

/// One sample a cluster kind exports (e.g. who holds a VIP), rendered under `orbiter_<name>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Gauge {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

/// A label value in the exposition format: backslash, quote and newline escaped.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_desired_valid(&self, valid: bool) {
        self.lock().desired_valid = valid;
    }

    pub fn commit(&self) {
        self.lock().commits += 1;
    }

    /// One iteration that ran: how long it took, how many steps it applied and how many failed.
    pub fn record_iteration(
        &self,
        took: Duration,
        (applied, failed): (usize, usize),
        observed: &Observed,
        recorded: &Recorded,
    ) {
        let mut m = self.lock();
        m.iterations += 1;
        m.steps_applied += applied as u64;
        m.steps_failed += failed as u64;
        m.machines = observed.machines().count() as u64;
        m.machines_ready = observed
            .machines()
            .filter(|o| machine_ready(o, recorded))
            .count() as u64;
        m.last_duration = took;
        m.last_success = Some(Instant::now());
        m.last_error = None;
    }

    /// The cluster kinds' gauges of the iteration that just ran (replacing the last ones).
    pub fn set_kind_gauges(&self, gauges: Vec<Gauge>) {
        self.lock().kinds = gauges;
    }

    pub fn record_error(&self, e: &str) {
        let mut m = self.lock();
        m.iterations += 1;
        m.iteration_errors += 1;
        m.last_error = Some(e.to_owned());
    }

    /// Healthy when the last iteration succeeded and is recent.
    pub fn health(&self, max_age: Duration) -> Result<(), String> {
        let m = self.lock();
        if let Some(e) = &m.last_error {
            return Err(format!("last iteration failed: {e}"));
        }
        match m.last_success {
            Some(t) if t.elapsed() <= max_age => Ok(()),
            Some(t) => Err(format!(
                "no successful iteration for {}s",
                t.elapsed().as_secs()
            )),
            None => Err("no iteration finished yet".to_owned()),
        }
    }

    pub fn render(&self) -> String {
        let m = self.lock();
        let mut s = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, v: f64| {
            let _ = writeln!(
                s,
                "# HELP orbiter_{name} {help}\n# TYPE orbiter_{name} {kind}\norbiter_{name} {v}"
            );
        };
        metric(
            "iterations_total",
            "counter",
            "Reconcile iterations started.",
            m.iterations as f64,
        );
        metric(
            "iteration_errors_total",
            "counter",
            "Iterations that failed before planning.",
            m.iteration_errors as f64,
        );
        metric(
            "commits_total",
            "counter",
            "Commits of observed state.",
            m.commits as f64,
        );
        metric(
            "steps_applied_total",
            "counter",
            "Plan steps applied.",
            m.steps_applied as f64,
        );
        metric(
            "steps_failed_total",
            "counter",
            "Plan steps that failed.",
            m.steps_failed as f64,
        );
        metric(
            "desired_valid",
            "gauge",
            "1 when the newest orbiter.yml is valid and in force.",
            if m.desired_valid { 1.0 } else { 0.0 },
        );
        metric("machines", "gauge", "Machines observed.", m.machines as f64);
        metric(
            "machines_ready",
            "gauge",
            "Machines whose agent reports the desired generation in sync.",
            m.machines_ready as f64,
        );
        metric(
            "last_iteration_seconds",
            "gauge",
            "Duration of the last iteration.",
            m.last_duration.as_secs_f64(),
        );
        let mut named: Vec<&'static str> = m.kinds.iter().map(|g| g.name).collect();
        named.dedup();
        named.sort_unstable();
        named.dedup();
        for name in named {
            let mut first = true;
            for g in m.kinds.iter().filter(|g| g.name == name) {
                if first {
                    let _ = writeln!(
                        s,
                        "# HELP orbiter_{name} {}\n# TYPE orbiter_{name} gauge",
                        g.help
                    );
                    first = false;
                }
                let labels: Vec<String> = g
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", label_value(v)))
                    .collect();
                let _ = writeln!(s, "orbiter_{name}{{{}}} {}", labels.join(","), g.value);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_gauges_are_grouped_by_name_with_escaped_labels() {
        let m = Metrics::default();
        let g = |name, machine: &str, value| Gauge {
            name,
            help: "Help.",
            labels: vec![("machine", machine.to_owned())],
            value,
        };
        m.set_kind_gauges(vec![
            g("lb_backend_up", "w-1", 1.0),
            g("lb_vip_holders", "x", 1.0),
            g("lb_backend_up", "w\"2\n", 0.0),
        ]);
        let text = m.render();
        let tail = &text[text.find("orbiter_lb_").unwrap() - 30..];
        assert_eq!(
            text.matches("# TYPE orbiter_lb_backend_up gauge").count(),
            1,
            "{text}"
        );
        assert!(
            tail.contains("orbiter_lb_backend_up{machine=\"w-1\"} 1\n"),
            "{text}"
        );
        assert!(
            tail.contains("orbiter_lb_backend_up{machine=\"w\\\"2\\n\"} 0\n"),
            "{text}"
        );
        assert!(
            tail.contains("orbiter_lb_vip_holders{machine=\"x\"} 1\n"),
            "{text}"
        );
        m.set_kind_gauges(Vec::new());
        assert!(!m.render().contains("orbiter_lb_"));
    }
}
