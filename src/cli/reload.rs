//! What `arbiter serve` re-reads while it runs: on SIGHUP the permissions file
//! (`--bootstrap`) is synced again and the key file (`--keys`) is reloaded. A file that
//! does not validate is refused and logged at error level; the server keeps serving what it
//! had (the old relationships, the old keys).

use std::path::{Path, PathBuf};

use crate::engine::{Arbiter, SyncRequest};
use crate::server::AppState;
use crate::server::keys::{KeyFileError, KeyRing};

/// The key file's keys, plus the `--token` key when there is one.
pub fn key_ring(file: &Path, token: Option<&str>) -> Result<KeyRing, KeyFileError> {
    let ring = KeyRing::load(file)?;
    Ok(match token {
        Some(token) => ring.with(KeyRing::from_token(token)),
        None => ring,
    })
}

/// Makes the store match the permissions file at start-up; a refusal stops the start.
pub fn bootstrap(engine: &Arbiter, file: &Path, request: &SyncRequest) -> Result<(), String> {
    let report = engine
        .sync(request, false)
        .map_err(|err| format!("{}: {err}", file.display()))?;
    tracing::info!(
        file = %file.display(),
        revision = report.revision.map(|it| it.0),
        schema_changed = report.schema_changed,
        added = report.added.len(),
        removed = report.removed.len(),
        "permissions file synced"
    );
    Ok(())
}

/// What a SIGHUP reloads.
pub struct Reloadable {
    pub state: AppState,
    pub bootstrap: Option<PathBuf>,
    pub keys: Option<PathBuf>,
    /// `--token`, kept as an admin key across key-file reloads.
    pub token: Option<String>,
}

impl Reloadable {
    /// Re-reads both files; each is applied only if it validates. Returns whether both
    /// were applied (or absent).
    pub fn reload(&self) -> bool {
        let mut ok = true;
        if let Some(file) = &self.keys {
            match key_ring(file, self.token.as_deref()) {
                Ok(ring) => {
                    let names: Vec<&str> = ring.names().collect();
                    tracing::info!(file = %file.display(), keys = ?names, "key file reloaded");
                    self.state.keys().replace(ring);
                }
                Err(err) => {
                    ok = false;
                    tracing::error!(error = %err, "key file refused; keeping the old keys");
                }
            }
        }
        if let Some(file) = &self.bootstrap {
            let res = crate::sync::read(file)
                .map_err(|err| err.to_string())
                .and_then(|request| bootstrap(self.state.engine(), file, &request));
            if let Err(err) = res {
                ok = false;
                tracing::error!(error = %err, "permissions file refused; nothing changed");
            }
        }
        ok
    }
}

/// Reloads on every SIGHUP until the process ends (Unix only; elsewhere a no-op).
pub fn spawn_on_sighup(reloadable: Reloadable) {
    if reloadable.bootstrap.is_none() && reloadable.keys.is_none() {
        return;
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGHUP; reloads are off");
                return;
            }
        };
        let reloadable = std::sync::Arc::new(reloadable);
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading");
                let reloadable = std::sync::Arc::clone(&reloadable);
                if let Err(err) = tokio::task::spawn_blocking(move || reloadable.reload()).await {
                    tracing::error!(error = %err, "reload failed");
                }
            }
        });
    }
}
