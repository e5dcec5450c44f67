//! Where the `user`, `token` and `audit` commands act: a coordinator's API as a logged-in admin,
//! or its data directory directly (`--data`), through the same account operations the API uses.

use std::path::Path;

use anyhow::{Context, bail};
use idlefarm_protocol::accounts::{
    AuditEntry, CreatedEnrolmentToken, EnrolmentTokenInfo, NewUser, Role, UserInfo,
};

use super::Target;
use crate::accounts::{self, KeepLogin};
use crate::cli::{DEFAULT_SERVER, default_data_dir};
use crate::client::Client;
use crate::store::Store;

/// Where account commands act.
pub(super) enum Backend {
    /// Directly on a data directory.
    Local { store: Store, actor: String },
    /// Over the API, logged in.
    Remote(Client),
}

impl Backend {
    /// `--data` wins; else the saved login for the server; else, with no server named, the
    /// default data directory if a coordinator keeps its data there (as `idlefarm token` always
    /// worked on the coordinator's machine).
    pub(super) async fn open(target: &Target) -> anyhow::Result<Backend> {
        if let Some(dir) = &target.data {
            return Backend::local(dir).await;
        }
        let url = target.server.as_deref().unwrap_or(DEFAULT_SERVER);
        let client = Client::for_cli(url)?;
        if client.has_token() {
            return Ok(Backend::Remote(client));
        }
        let default = default_data_dir();
        if target.server.is_none() && default.join("idlefarm.db").exists() {
            return Backend::local(&default).await;
        }
        bail!(
            "not logged in to {url}: run `idlefarm login --server {url} --user NAME`, \
             or on the coordinator's machine pass `--data DIR`"
        )
    }

    async fn local(dir: &Path) -> anyhow::Result<Backend> {
        if !dir.is_dir() {
            bail!(
                "{} is not a directory; --data names the coordinator's data directory",
                dir.display()
            );
        }
        let store = Store::open(dir)
            .await
            .with_context(|| format!("cannot open the database in {}", dir.display()))?;
        Ok(Backend::Local {
            store,
            actor: accounts::local_actor(),
        })
    }

    pub(super) async fn users(&self) -> anyhow::Result<Vec<UserInfo>> {
        match self {
            Backend::Local { store, .. } => {
                Ok(store.users().await?.iter().map(|u| u.info()).collect())
            }
            Backend::Remote(c) => c.users().await,
        }
    }

    pub(super) async fn add_user(
        &self,
        req: NewUser,
    ) -> anyhow::Result<(UserInfo, Option<String>)> {
        let res = match self {
            Backend::Local { store, actor } => accounts::add_user(store, actor, req).await?,
            Backend::Remote(c) => c.add_user(&req).await?,
        };
        Ok((res.user, res.password))
    }

    pub(super) async fn remove_user(&self, name: &str) -> anyhow::Result<()> {
        match self {
            Backend::Local { store, actor } => Ok(accounts::remove_user(store, actor, name).await?),
            Backend::Remote(c) => c.remove_user(name).await,
        }
    }

    pub(super) async fn set_password(
        &self,
        name: &str,
        password: Option<String>,
    ) -> anyhow::Result<Option<String>> {
        match self {
            Backend::Local { store, actor } => {
                let keep = KeepLogin::default();
                Ok(accounts::change_password(store, actor, name, password, keep).await?)
            }
            Backend::Remote(c) => c.set_password(name, password).await,
        }
    }

    pub(super) async fn set_role(&self, name: &str, role: Role) -> anyhow::Result<UserInfo> {
        match self {
            Backend::Local { store, actor } => {
                Ok(accounts::set_role(store, actor, name, role).await?)
            }
            Backend::Remote(c) => c.set_role(name, role).await,
        }
    }

    pub(super) async fn enrolment_tokens(&self) -> anyhow::Result<Vec<EnrolmentTokenInfo>> {
        match self {
            Backend::Local { store, .. } => Ok(store.enrolment_tokens().await?),
            Backend::Remote(c) => c.enrolment_tokens().await,
        }
    }

    pub(super) async fn create_enrolment_token(
        &self,
        expires_secs: Option<u64>,
    ) -> anyhow::Result<CreatedEnrolmentToken> {
        match self {
            Backend::Local { store, actor } => {
                Ok(accounts::create_enrolment_token(store, actor, expires_secs).await?)
            }
            Backend::Remote(c) => c.create_enrolment_token(expires_secs).await,
        }
    }

    /// The standing enrolment token (live, never expires), made if there is none.
    pub(super) async fn standing_enrolment_token(&self) -> anyhow::Result<String> {
        match self {
            Backend::Local { store, .. } => Ok(store
                .enrolment_token(crate::auth::new_secret, accounts::now_secs())
                .await?
                .0),
            Backend::Remote(c) => {
                let standing = c
                    .enrolment_tokens()
                    .await?
                    .into_iter()
                    .find(|t| t.revoked_at.is_none() && t.expires_at.is_none());
                match standing {
                    Some(t) => Ok(t.token),
                    None => Ok(c.create_enrolment_token(None).await?.token),
                }
            }
        }
    }

    pub(super) async fn revoke_enrolment_token(&self, id: i64) -> anyhow::Result<()> {
        match self {
            Backend::Local { store, actor } => {
                Ok(accounts::revoke_enrolment_token(store, actor, id).await?)
            }
            Backend::Remote(c) => c.revoke_enrolment_token(id).await,
        }
    }

    pub(super) async fn audit(&self, limit: u32) -> anyhow::Result<Vec<AuditEntry>> {
        match self {
            Backend::Local { store, .. } => Ok(store.audit_log(limit).await?),
            Backend::Remote(c) => c.audit(limit).await,
        }
    }
}
