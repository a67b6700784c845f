//! Secrets in the configuration: a string whose `Debug` never shows it, the command that
//! prints one, and the permission check on files that hold one.

use super::error_at_key;
use crate::error::Result;
use std::fmt;
use std::path::{Path, PathBuf};

/// A secret string (the SMTP password). Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub(super) String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself: call only where it is handed to the transport.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(\"***\")")
    }
}

/// `mail.smtp.password_command`: run with `sh -c`, its standard output (without the
/// trailing newline) is the password or, with `auth = "xoauth2"`, the access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordCommand {
    pub command: String,
    /// The config file, for errors that name it.
    pub config: PathBuf,
}

impl PasswordCommand {
    /// Runs the command. Its output is never logged; a failure names the key and the exit
    /// status (and the command's last line of standard error, which carries no secret).
    pub fn run(&self) -> Result<Secret> {
        let fail = |message: String| error_at_key(&self.config, "mail.smtp.password_command", message);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| fail(format!("cannot run `sh -c {:?}`: {e}", self.command)))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let said = stderr.lines().rev().find(|l| !l.trim().is_empty()).map(str::trim).unwrap_or_default();
            let said: String = said.chars().take(200).collect();
            let status = out.status.code().map_or_else(|| "a signal".to_string(), |c| format!("status {c}"));
            return Err(fail(format!(
                "`{}` exited with {status}{}",
                self.command,
                if said.is_empty() { String::new() } else { format!(": {said}") }
            )));
        }
        let secret = String::from_utf8(out.stdout)
            .map_err(|_| fail(format!("`{}` printed something that is not UTF-8", self.command)))?;
        let secret = secret.strip_suffix('\n').unwrap_or(&secret);
        let secret = secret.strip_suffix('\r').unwrap_or(secret);
        if secret.is_empty() {
            return Err(fail(format!(
                "`{}` printed nothing; expected the secret on standard output",
                self.command
            )));
        }
        Ok(Secret(secret.to_string()))
    }
}

/// A password file readable by group or others is refused, the way ssh refuses keys.
pub(super) fn check_private(path: &Path) -> std::result::Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "{} is readable by others (mode {mode:o}); run `chmod 600 {}`",
                path.display(),
                path.display()
            ));
        }
    }
    Ok(())
}
