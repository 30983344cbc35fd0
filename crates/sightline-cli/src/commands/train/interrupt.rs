//! Ctrl-C (SIGINT) during `sightline train`: the first asks the loop to stop after the current
//! batch, a second exits at once; the exit status of an interrupted run.

use anyhow::Context as _;
use sightline_train::control::TrainControl;

/// Exit status of a run stopped by Ctrl-C (SIGINT): 128 + 2, as shells report a SIGINT death.
pub const EXIT_INTERRUPTED: i32 = 130;

/// Listens for SIGINT: the first one asks the training loop to stop after the current batch,
/// a second one exits at once with [`EXIT_INTERRUPTED`]. On Unix the listener is registered
/// before this returns (no window in which SIGINT still kills the process by default).
pub(crate) fn on_interrupt(control: TrainControl) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    fn first(control: &TrainControl) {
        eprintln!(
            "interrupt: stopping after the current batch (the last completed epoch is kept); \
             Ctrl-C again to abort at once"
        );
        control.request_stop();
    }
    fn second() -> ! {
        eprintln!(
            "second interrupt: aborting now; the experiment's end is not recorded (its last \
             completed epoch can still be resumed)"
        );
        std::process::exit(EXIT_INTERRUPTED)
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut sigint =
            signal(SignalKind::interrupt()).context("installing the Ctrl-C handler")?;
        Ok(tokio::spawn(async move {
            if sigint.recv().await.is_some() {
                first(&control);
                if sigint.recv().await.is_some() {
                    second();
                }
            }
        }))
    }
    #[cfg(not(unix))]
    {
        Ok(tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                first(&control);
                if tokio::signal::ctrl_c().await.is_ok() {
                    second();
                }
            }
        }))
    }
}

/// Ends the process with [`EXIT_INTERRUPTED`] after flushing stdout (the `--json` events) and
/// closing the database connections (every write has been committed by then).
pub(crate) async fn exit_interrupted(db: &sightline_db::Db) -> ! {
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    db.close().await;
    std::process::exit(EXIT_INTERRUPTED)
}
