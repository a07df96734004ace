//! The account and the stream's settings on the backend: login, a stored token, logout,
//! and the stream's setup and title — the calls made before and between broadcasts.

use streamit_api::{LoginRequest, Role, SetupStreamRequest, User};

use super::Task;
use crate::command::StreamSetup;
use crate::error::{Result, SessionError};
use crate::state::{Account, StreamInfo};

impl Task {
    pub(super) async fn login(&mut self, username: String, password: String) -> Result<()> {
        let api = self.api.clone();
        let auth = self
            .while_media_flows(async move { api.login(&LoginRequest { username, password }).await })
            .await?;
        self.api.set_token(Some(auth.token.clone()));
        self.token_tx.send_replace(Some(auth.token));
        self.logged_in(&auth.user).await;
        Ok(())
    }

    pub(super) async fn use_token(&mut self, token: String) -> Result<()> {
        self.api.set_token(Some(token.clone()));
        let api = self.api.clone();
        match self.while_media_flows(async move { api.me().await }).await {
            Ok(user) => {
                self.token_tx.send_replace(Some(token));
                self.logged_in(&user).await;
                Ok(())
            }
            Err(e) => {
                if e.status() == Some(401) {
                    self.set_logged_out();
                }
                Err(e.into())
            }
        }
    }

    async fn logged_in(&mut self, user: &User) {
        self.state.account = Some(Account {
            user_id: user.id.clone(),
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            approved: user.is_approved || user.role == Role::Admin,
            is_creator: matches!(user.role, Role::Creator | Role::Admin),
        });
        self.deliver_spooled();
        let api = self.api.clone();
        self.state.stream = match self
            .while_media_flows(async move { api.stream_info().await })
            .await
        {
            Ok(s) => Some(StreamInfo::from(&s)),
            Err(e) => {
                tracing::debug!("no stream info yet: {e}");
                None
            }
        };
    }

    pub(super) async fn logout(&mut self) -> Result<()> {
        if self.live.is_some() {
            self.end_stream_and_wait().await?;
        }
        let api = self.api.clone();
        let r = self
            .while_media_flows(async move { api.logout().await })
            .await;
        self.set_logged_out();
        match r {
            Ok(_) => Ok(()),
            // already invalid: logged out anyway
            Err(e) if e.status() == Some(401) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) fn set_logged_out(&mut self) {
        self.drop_pending_title();
        self.api.set_token(None);
        self.token_tx.send_replace(None);
        self.state.account = None;
        self.state.stream = None;
    }

    pub(super) fn require_login(&self) -> Result<()> {
        if self.api.token().is_none() {
            return Err(SessionError::NotLoggedIn);
        }
        Ok(())
    }

    pub(super) async fn setup(&mut self, s: StreamSetup) -> Result<()> {
        self.require_login()?;
        let title = s.title.trim().to_string();
        if title.is_empty() {
            return Err(SessionError::Invalid("the title may not be empty".into()));
        }
        let request = SetupStreamRequest {
            title,
            description: s.description,
            is_chat_enabled: s.chat_enabled,
            is_chat_delayed: s.chat_delayed,
            is_chat_followers_only: s.chat_followers_only,
        };
        let api = self.api.clone();
        let stream = self
            .while_media_flows(async move { api.setup_stream(&request).await })
            .await?;
        self.state.stream = Some(StreamInfo::from(&stream));
        Ok(())
    }
}
