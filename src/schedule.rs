//! The built-in daemon: `app::run_once` on a cron schedule. (stub: being written)
