//! Helpers the session's end-to-end tests share.

use std::time::Duration;

use anyhow::Result;
use streamit_session::{SessionHandle, SessionState};

/// Waits until the session's state satisfies `pred`; on timeout the error shows the state
/// the test was looking at.
pub async fn wait_for(
    s: &SessionHandle,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&SessionState) -> bool,
) -> Result<SessionState> {
    let mut rx = s.subscribe();
    let r = tokio::time::timeout(timeout, async {
        loop {
            {
                let st = rx.borrow_and_update();
                if pred(&st) {
                    return Ok(st.clone());
                }
            }
            if rx.changed().await.is_err() {
                anyhow::bail!("session stopped");
            }
        }
    })
    .await;
    match r {
        Ok(r) => r,
        Err(_) => {
            let st = s.state();
            anyhow::bail!(
                "timed out waiting for {what}: {:?}, chat {:?}, moderation {:?}, errors {:?}",
                st.stream_state,
                st.chat,
                st.moderation,
                st.errors
            )
        }
    }
}
