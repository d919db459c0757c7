//! A certificate and key that follow their files on disk.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use rustls::sign::CertifiedKey;
use tracing::{info, warn};

use crate::{IdentityFiles, TlsError, pem, provider};

/// How often a handshake may look at the files for a change. Certificates are renewed in
/// hours or days; a second keeps the `stat` calls off the handshake path in practice.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A node's or client's identity, served to every handshake, re-read when its files change.
///
/// Invariant: `current` always holds a pair whose key matches its certificate; a change that
/// does not load (a renewal caught between writing the certificate and the key) leaves it
/// alone and is retried when the files change again.
#[derive(Debug)]
pub struct ReloadingIdentity {
    files: IdentityFiles,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    current: Arc<CertifiedKey>,
    /// What the files looked like when last read, successfully or not.
    seen: FileStamps,
    checked_at: Instant,
}

/// Modification time and length of both files: a rewrite changes at least one of them.
#[derive(Debug, PartialEq, Eq)]
struct FileStamps([Option<(SystemTime, u64)>; 2]);

impl FileStamps {
    fn of(files: &IdentityFiles) -> Self {
        let stamp = |path: &Path| {
            let metadata = std::fs::metadata(path).ok()?;
            Some((metadata.modified().ok()?, metadata.len()))
        };
        Self([stamp(&files.certificate), stamp(&files.key)])
    }
}

impl ReloadingIdentity {
    pub fn load(files: IdentityFiles) -> Result<Self, TlsError> {
        let seen = FileStamps::of(&files);
        let current = Arc::new(certified_key(&files)?);
        Ok(Self {
            files,
            state: Mutex::new(State {
                current,
                seen,
                checked_at: Instant::now(),
            }),
        })
    }

    /// The identity to present now, after re-reading the files if they changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self.lock();
        if state.checked_at.elapsed() >= CHECK_INTERVAL {
            state.checked_at = Instant::now();
            let stamps = FileStamps::of(&self.files);
            if stamps != state.seen {
                state.seen = stamps;
                match certified_key(&self.files) {
                    Ok(renewed) => {
                        info!(certificate = %self.files.certificate.display(), "TLS certificate reloaded");
                        state.current = Arc::new(renewed);
                    }
                    Err(error) => warn!(
                        %error,
                        "TLS certificate files changed but do not load; still serving the previous certificate"
                    ),
                }
            }
        }
        state.current.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is replaced whole, never left half-updated, so a panic elsewhere cannot
        // have broken it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn certified_key(files: &IdentityFiles) -> Result<CertifiedKey, TlsError> {
    let chain = pem::certificates(&files.certificate)?;
    let key = pem::private_key(&files.key)?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|error| TlsError::Invalid {
        path: files.key.clone(),
        message: format!(
            "does not go with the certificate in {}: {error}",
            files.certificate.display()
        ),
    })
}

impl rustls::server::ResolvesServerCert for ReloadingIdentity {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl rustls::client::ResolvesClientCert for ReloadingIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
