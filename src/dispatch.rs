//! Dispatch: picks the command the command line named, loads the config it needs, starts
//! the async runtime and calls the stage or command that does the work (`app`, `web`,
//! `daemon`). `main.rs` maps what this returns to an exit code.

use crate::app::{self, Shutdown, commands, subscribers};
use crate::cli::{Cli, Command};
use crate::config::{self, Config};
use crate::daemon;
use crate::error::{Error, Result};
use crate::lock::InstanceLock;
use crate::store::Store;
use chrono::{DateTime, Utc};

/// Runs a parsed command line; returns the exit code.
pub fn main(cli: Cli) -> Result<u8> {
    let now = cli.now.unwrap_or_else(Utc::now);
    match &cli.command {
        Command::Init { path, force } => {
            return commands::init(&config::locate(path.as_deref().or(cli.config.as_deref())), *force);
        }
        Command::Completions { shell } => return commands::completions(*shell),
        Command::Man => return commands::man(),
        _ => {}
    }
    let path = config::locate(cli.config.as_deref());
    // A run reads the subscribers file a chunk at a time; the other commands hold it.
    let cfg = if matches!(cli.command, Command::Run | Command::Daemon) {
        Config::load_streaming(&path)?
    } else {
        Config::load(&path)?
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::internal("starting the async runtime", e))?;
    runtime.block_on(dispatch(cfg, cli.command, now, cli.now.is_some()))
}

async fn dispatch(cfg: Config, command: Command, now: DateTime<Utc>, fixed_clock: bool) -> Result<u8> {
    if !matches!(command, Command::Check { .. } | Command::Status { .. }) {
        app::database_folder(&cfg, true)?;
    }
    match command {
        Command::Run => {
            let _lock = InstanceLock::acquire(&cfg.digest.lock_file)?;
            let shutdown = Shutdown::new();
            daemon::cancel_on_signals(&shutdown)?;
            let summary = app::run_once(&cfg, now, &shutdown).await?;
            Ok(summary.exit_code())
        }
        Command::Fetch => {
            let _lock = InstanceLock::acquire(&cfg.digest.lock_file)?;
            commands::fetch(&cfg, now).await
        }
        Command::Preview(args) => commands::preview(&with_readers(cfg)?, &args, now).await,
        Command::Check { connect } => commands::check(&cfg, connect, now).await,
        Command::Status { json } => commands::status(&with_readers(cfg)?, json, now),
        Command::Resend { to, edition } => {
            let _lock = InstanceLock::acquire(&cfg.digest.lock_file)?;
            commands::resend(&with_readers(cfg)?, &to, edition, now).await
        }
        Command::Retry { edition, .. } => {
            let _lock = InstanceLock::acquire(&cfg.digest.lock_file)?;
            commands::retry_failed(&with_readers(cfg)?, edition, now).await
        }
        Command::Explain { to, paper, json } => {
            commands::explain(&with_readers(cfg)?, &to, &paper, json, now).await
        }
        Command::Serve => {
            let shutdown = Shutdown::new();
            daemon::cancel_on_signals(&shutdown)?;
            crate::web::serve(cfg, now, shutdown).await
        }
        Command::Subscribers { action } => subscribers::run(&cfg, action, now),
        Command::Daemon => {
            let clock = if fixed_clock { daemon::Clock::starting_at(now) } else { daemon::Clock::system() };
            let shutdown = Shutdown::new();
            daemon::daemon(&cfg, &shutdown, clock, |now| app::run_once(&cfg, now, &shutdown)).await
        }
        Command::Init { .. } | Command::Completions { .. } | Command::Man => {
            unreachable!("handled before the config is loaded")
        }
    }
}

/// The config with the database's readers applied: suppressed addresses left out,
/// confirmed web subscribers added, manage-page settings and votes taken into account.
fn with_readers(cfg: Config) -> Result<Config> {
    let db = &cfg.digest.database;
    if !db.exists() {
        return Ok(cfg);
    }
    // Read-only where it can be, so that `status` works on a database it may not write.
    let store = Store::open_read_only(db).or_else(|_| Store::open(db))?;
    Ok(crate::web::roster::apply(&cfg, &store)?.unwrap_or(cfg))
}
