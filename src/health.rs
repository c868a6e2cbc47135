//! Why a running `glance` is or is not healthy, in words a user can act on: what status
//! messages, `STATUS=` for systemd and the log say. The watchdog rule (fed only while a live
//! source delivers frames) lives in the run loop; this module only names the problems.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a live source may give no frame before it counts as stalled (and the watchdog is
/// no longer fed, so that systemd's `WatchdogSec` restarts the service).
pub(crate) const STALLED: Duration = Duration::from_secs(10);

/// How long after a sink dropped a message it is still reported as dropping.
pub(crate) const SINK_DROP_MEMORY: Duration = Duration::from_secs(60);

/// What a capture thread reports to the run loop: its current trouble (a camera that vanished
/// or cannot be opened), and whether it gave up for good.
#[derive(Debug, Default)]
pub(crate) struct SourceHealth {
    state: Mutex<SourceState>,
}

#[derive(Debug, Default, Clone)]
struct SourceState {
    trouble: Option<String>,
    gave_up: Option<String>,
}

impl SourceHealth {
    fn with<T>(&self, f: impl FnOnce(&mut SourceState) -> T) -> T {
        // A poisoned lock only means a capture thread panicked mid-update; the state is two
        // strings and stays meaningful.
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// The source is in trouble for this reason (it keeps trying).
    pub(crate) fn trouble(&self, why: String) {
        self.with(|s| s.trouble = Some(why));
    }

    /// The source delivers again.
    pub(crate) fn fine(&self) {
        self.with(|s| s.trouble = None);
    }

    /// The source stopped for good for this reason; the run ends with it as its error.
    pub(crate) fn give_up(&self, why: String) {
        self.with(|s| s.gave_up = Some(why));
    }

    /// The current trouble, if any.
    pub(crate) fn current_trouble(&self) -> Option<String> {
        self.with(|s| s.trouble.clone())
    }

    /// Why the source gave up, if it did.
    pub(crate) fn gave_up(&self) -> Option<String> {
        self.with(|s| s.gave_up.clone())
    }
}

/// Remembers when a monotonically growing drop counter last grew.
#[derive(Debug, Default)]
pub(crate) struct DropWatch {
    seen: u64,
    grew: Option<Instant>,
}

impl DropWatch {
    /// Takes the counter's current value.
    pub(crate) fn observe(&mut self, count: u64) {
        if count > self.seen {
            self.seen = count;
            self.grew = Some(Instant::now());
        }
    }

    /// True when the counter grew within `window`.
    pub(crate) fn recent(&self, window: Duration) -> bool {
        self.grew.is_some_and(|t| t.elapsed() < window)
    }
}

/// What the run loop knows when it is asked how it is.
#[derive(Debug, Default)]
pub(crate) struct Observations<'a> {
    /// Time since a live source's last frame (`None`: files, which cannot stall).
    pub since_frame: Option<Duration>,
    /// The capture thread's current trouble.
    pub source_trouble: Option<&'a str>,
    /// Why the last save of the store failed, if the store holds changes not on disk.
    pub unsaved: Option<&'a str>,
    /// Messages the sink dropped in all, when it dropped one within [`SINK_DROP_MEMORY`].
    pub sink_dropping: Option<u64>,
    /// Why the MQTT link is down, while it is.
    pub mqtt_trouble: Option<&'a str>,
    /// The scene has drifted from the bundle's validation images ([`crate::drift::problem`]).
    pub drift: Option<&'a str>,
}

/// The one-line verdict status text and systemd's `STATUS=` both show: `healthy`, or
/// `NOT HEALTHY: ` and the problems joined by `; `.
pub(crate) fn summary(problems: &[String]) -> String {
    if problems.is_empty() {
        "healthy".to_string()
    } else {
        format!("NOT HEALTHY: {}", problems.join("; "))
    }
}

/// The problems in `o`, most urgent first; empty means healthy.
pub(crate) fn problems(o: &Observations<'_>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(since) = o.since_frame.filter(|s| *s >= STALLED) {
        let why = o.source_trouble.map_or_else(
            || "the source is not delivering".to_string(),
            str::to_string,
        );
        out.push(format!("no frame for {} s: {why}", since.as_secs()));
    } else if let Some(why) = o.source_trouble {
        out.push(format!("source: {why}"));
    }
    if let Some(why) = o.unsaved {
        out.push(format!("store not saved: {why}"));
    }
    if let Some(n) = o.sink_dropping {
        out.push(format!(
            "output dropping messages ({n} so far; the serial peer is slow or away)"
        ));
    }
    if let Some(why) = o.mqtt_trouble {
        out.push(format!("mqtt: {why}"));
    }
    if let Some(why) = o.drift {
        out.push(why.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_problem_is_named_and_nothing_is_healthy() {
        assert!(problems(&Observations::default()).is_empty());
        let fresh = Observations {
            since_frame: Some(Duration::from_secs(2)),
            ..Default::default()
        };
        assert!(
            problems(&fresh).is_empty(),
            "a frame 2 s ago is not a stall"
        );
        let gone = Observations {
            since_frame: Some(Duration::from_secs(42)),
            source_trouble: Some("/dev/video0: No such device"),
            unsaved: Some("No space left on device"),
            sink_dropping: Some(7),
            mqtt_trouble: None,
            drift: None,
        };
        let p = problems(&gone);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(
            p[0].contains("no frame for 42 s") && p[0].contains("/dev/video0"),
            "{p:?}"
        );
        assert!(
            p[1].contains("store not saved") && p[1].contains("No space"),
            "{p:?}"
        );
        assert!(p[2].contains("7 so far"), "{p:?}");
        let reopening = Observations {
            since_frame: Some(Duration::from_secs(1)),
            source_trouble: Some("select timed out"),
            ..Default::default()
        };
        assert_eq!(
            problems(&reopening),
            vec!["source: select timed out".to_string()]
        );
        let broker = Observations {
            mqtt_trouble: Some("broker 10.0.0.2:1883 unreachable"),
            ..Default::default()
        };
        assert_eq!(
            problems(&broker),
            vec!["mqtt: broker 10.0.0.2:1883 unreachable".to_string()]
        );
    }

    #[test]
    fn the_summary_is_healthy_or_lists_every_problem() {
        assert_eq!(summary(&[]), "healthy");
        assert_eq!(
            summary(&["a".to_string(), "b".to_string()]),
            "NOT HEALTHY: a; b"
        );
    }

    #[test]
    fn drops_are_recent_only_when_the_count_grew() {
        let mut w = DropWatch::default();
        w.observe(0);
        assert!(!w.recent(SINK_DROP_MEMORY));
        w.observe(3);
        assert!(w.recent(SINK_DROP_MEMORY));
        assert!(!w.recent(Duration::ZERO));
    }

    #[test]
    fn a_source_that_recovers_clears_its_trouble() {
        let h = SourceHealth::default();
        h.trouble("unplugged".into());
        assert_eq!(h.current_trouble().as_deref(), Some("unplugged"));
        h.fine();
        assert_eq!(h.current_trouble(), None);
        assert_eq!(h.gave_up(), None);
        h.give_up("never a camera".into());
        assert_eq!(h.gave_up().as_deref(), Some("never a camera"));
    }
}
