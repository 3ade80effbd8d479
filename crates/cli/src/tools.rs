//! Offline tools over the data directory.

use std::io::Write;
use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::Context;
use platform::event_log::LogError;
use platform::service::ServiceDescription;
use platform::EventLog;

/// A read model `rebuild` can rebuild: a service of the list with a view.
#[derive(Debug, Clone, Copy)]
pub struct View(&'static ServiceDescription);

static VIEWS: LazyLock<Vec<View>> = LazyLock::new(|| {
    services::ALL
        .into_iter()
        .filter(|s| s.view.is_some())
        .map(View)
        .collect()
});

impl clap::ValueEnum for View {
    fn value_variants<'a>() -> &'a [Self] {
        &VIEWS
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.0.name))
    }
}

pub async fn print_events(data_dir: &Path, from: i64, follow: bool) -> anyhow::Result<()> {
    let path = data_dir.join("events.db");
    if !path.exists() {
        anyhow::bail!(
            "no event log at {} (start the server first)",
            path.display()
        );
    }
    let log = EventLog::open(&path)
        .await
        .context("opening the event log")?;
    let mut after = from;
    let stdout = std::io::stdout();
    loop {
        let batch = match log.read_after(after, 1000).await {
            Ok(batch) => batch,
            // Older entries were folded into the views' snapshots: say so
            // once (on stderr, so stdout stays JSON lines) and go on from
            // where the retained log starts.
            Err(LogError::Compacted { through, .. }) => {
                eprintln!(
                    "the retained log starts after position {through}; earlier entries were compacted into the views' snapshots"
                );
                after = through;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        {
            let mut out = stdout.lock();
            for ev in &batch {
                writeln!(out, "{}", ev.payload)?;
                after = ev.seq;
            }
            out.flush()?;
        }
        if batch.is_empty() {
            if !follow {
                return Ok(());
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
    }
}

/// Prints a Kafka topic's events as JSON lines, from its beginning, as a
/// consumer written for the original system reads them; with `follow`,
/// until Ctrl-C.
pub async fn print_topic(brokers: String, topic: String, follow: bool) -> anyhow::Result<()> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            let stdout = std::io::stdout();
            platform::kafka::read_topic(&brokers, &topic, follow, &stop, |value| {
                let mut out = stdout.lock();
                out.write_all(value)?;
                out.write_all(b"\n")?;
                out.flush()
            })
            .with_context(|| format!("reading topic {topic} on {brokers}"))
        })
    };
    let mut reader = std::pin::pin!(reader);
    tokio::select! {
        done = &mut reader => return done?,
        _ = tokio::signal::ctrl_c() => stop.store(true, std::sync::atomic::Ordering::Relaxed),
    }
    reader.await?
}

/// Rebuilds a read model beside the served one and swaps it in once it has
/// caught up; safe while the server runs, which keeps serving the old copy
/// until then.
pub async fn rebuild(data_dir: &Path, view: View) -> anyhow::Result<()> {
    let path = data_dir.join("events.db");
    if !path.exists() {
        anyhow::bail!(
            "no event log at {} (start the server first)",
            path.display()
        );
    }
    let log = EventLog::open(&path)
        .await
        .context("opening the event log")?;
    let started = std::time::Instant::now();
    let View(service) = view;
    let name = service.name;
    let db = crate::all_in_one::open(data_dir, name, (service.migrations)()).await?;
    let done = match service.view {
        Some(view) => platform::rebuild::rebuild(view(), &db, &log).await,
        None => unreachable!("only services with a view are offered"),
    };
    db.close().await;
    log.close().await;
    let done = done.with_context(|| format!("rebuilding the {name} view"))?;
    let origin = match done.snapshot {
        0 => String::new(),
        at => format!("the snapshot at position {at} and "),
    };
    println!(
        "{name} view rebuilt from {origin}{} log entries up to position {} in {} ms and swapped in{}",
        done.replayed,
        done.position,
        started.elapsed().as_millis(),
        match done.buried {
            0 => String::new(),
            n => format!("; {n} events failed and are now dead letters"),
        }
    );
    Ok(())
}
