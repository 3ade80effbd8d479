//! Offline tools over the data directory.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use platform::{Db, EventLog, Location};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum View {
    Status,
    Notification,
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
        let batch = log.read_after(after, 1000).await?;
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

pub async fn rebuild(data_dir: &Path, view: View) -> anyhow::Result<()> {
    match view {
        View::Status => {
            let db = Db::open(
                &Location::Sqlite(data_dir.join("status.db")),
                &status::migrations(),
            )
            .await?;
            status::rebuild(&db).await?;
        }
        View::Notification => {
            let db = Db::open(
                &Location::Sqlite(data_dir.join("notification.db")),
                &notification::migrations(),
            )
            .await?;
            notification::rebuild(&db).await?;
        }
    }
    println!(
        "{view:?} view emptied; the running server (or the next start) replays the log into it"
    );
    Ok(())
}
