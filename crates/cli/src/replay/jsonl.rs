//! `/v1/events` bodies, one per line, as replay input. Each event happens at its own
//! `occurred_at`; the clock never runs backwards, so an event older than its predecessor is
//! applied at the predecessor's time.

use std::path::PathBuf;

use anyhow::Context;
use nudge_core::event::parse_events;

use super::Step;

pub fn read(files: &[PathBuf]) -> anyhow::Result<(Vec<Step>, usize)> {
    let mut steps = Vec::new();
    let mut lines = 0;
    for file in files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            lines += 1;
            let events = parse_events(line.as_bytes()).map_err(|error| {
                anyhow::anyhow!("{}: line {}: {error}", file.display(), index + 1)
            })?;
            for event in events {
                steps.push(Step {
                    at: event.occurred_at(),
                    events: vec![event],
                });
            }
        }
    }
    Ok((steps, lines))
}
