//! The desktop's consent to a screen share, kept in the OS keyring between runs: on Wayland
//! the next share of the same monitor or window then needs no dialog (see
//! [`GrantStore`]). The token grants a view of the screen: a secret, kept where the session
//! token is.

use streamit_session::{GrantStore, MemoryGrants};

use super::KEYRING_SERVICE;

/// The keyring entry's user: one grant per OS account, whatever the StreamIt server.
const ENTRY: &str = "screen-share-grant";

/// The OS keyring, and this run's memory where there is no keyring.
#[derive(Debug, Default)]
pub struct KeyringGrants {
    run: MemoryGrants,
}

impl GrantStore for KeyringGrants {
    fn load(&self) -> Option<String> {
        keyring::Entry::new(KEYRING_SERVICE, ENTRY)
            .and_then(|e| e.get_password())
            .ok()
            .or_else(|| self.run.load())
    }

    fn save(&self, token: Option<&str>) {
        self.run.save(token);
        let kept = keyring::Entry::new(KEYRING_SERVICE, ENTRY).and_then(|e| match token {
            Some(t) => e.set_password(t),
            None => e.delete_credential(),
        });
        match kept {
            Ok(()) | Err(keyring::Error::NoEntry) => {}
            Err(e) => tracing::warn!(
                "the desktop's screen-share grant is kept for this run only (OS keyring: {e})"
            ),
        }
    }
}
