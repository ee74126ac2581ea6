//! Authentication to GitHub's REST API: one place that hands out an authenticated octocrab
//! client for a repository.
//!
//! - **Token** (`token_env`): one client with a personal access token, for every repository.
//! - **GitHub App** (`app_id` + `private_key_env`): a client signed with the App's JWT finds
//!   the installation that covers a repository (`GET /repos/{owner}/{repo}/installation`,
//!   cached per repository), and each installation has a client of its own (cached per
//!   installation) whose installation token is minted with the JWT.
//!
//! **Installation tokens.** They last an hour. octocrab caches one per installation client and
//! mints a new one only when fewer than 30 s are left (or after a 401), and a clone of a
//! client copies the cached token rather than sharing it. So `for_repo` makes sure the cached
//! client's token has at least [`REFRESH_MARGIN`] left (minting a new one under a lock, so
//! concurrent calls mint once), then hands out a clone that carries it: a call never starts
//! with a token that could expire during it.
//!
//! Secrets (tokens, the private key) are never logged or put into errors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use octocrab::Octocrab;
use octocrab::models::{AppId, InstallationId};
use serde::Deserialize;

use crate::config::{Config, GithubCredentials};
use crate::notify::SinkError;

/// An installation token with less than this left is replaced before it is used.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Authenticated access to GitHub for changebot. Cheap to clone; clones share the caches.
#[derive(Clone)]
pub struct GithubClient {
    inner: Arc<Inner>,
}

struct Inner {
    api_url: String,
    auth: Auth,
    /// changebot's own login on GitHub, looked up once.
    login: tokio::sync::Mutex<Login>,
}

enum Auth {
    Token(Octocrab),
    App(AppClients),
}

struct AppClients {
    /// Authenticates as the App itself (a JWT per request).
    app: Octocrab,
    /// `owner/name` → the installation covering it.
    installations: Mutex<HashMap<String, InstallationId>>,
    /// One client per installation; the lock serialises minting its token.
    clients: Mutex<HashMap<InstallationId, Arc<tokio::sync::Mutex<Octocrab>>>>,
}

enum Login {
    Unknown,
    Known(String),
    /// GitHub refused to say (a permanent answer); comments are matched by marker only.
    Unavailable,
}

/// The client settings every mode shares. Retries are the outbox's (honouring GitHub's
/// retry-after, and never re-posting a comment blindly); a hung call must not hold its lane.
fn builder(
    api_url: &str,
) -> anyhow::Result<
    octocrab::OctocrabBuilder<
        octocrab::NoSvc,
        octocrab::DefaultOctocrabBuilderConfig,
        octocrab::NoAuth,
        octocrab::NotLayerReady,
    >,
> {
    Ok(Octocrab::builder()
        .base_uri(api_url)
        .map_err(|e| anyhow::anyhow!("github: api_url {api_url} is not usable: {e}"))?
        .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
        .set_connect_timeout(Some(Duration::from_secs(10)))
        .set_read_timeout(Some(Duration::from_secs(30)))
        .set_write_timeout(Some(Duration::from_secs(30))))
}

impl GithubClient {
    /// The client `[github]` asks for: the App when `app_id` is set and `private_key_env`
    /// holds a key, else the token in `token_env`; `None` without `[github]` or credentials.
    /// A private key that cannot be used is an error naming its variable (never the key).
    pub fn from_config(config: &Config) -> anyhow::Result<Option<GithubClient>> {
        let Some(gh) = &config.github else {
            return Ok(None);
        };
        match config.github_credentials() {
            None => Ok(None),
            Some(GithubCredentials::Token(token)) => {
                GithubClient::with_token(&gh.api_url, token).map(Some)
            }
            Some(GithubCredentials::App {
                app_id,
                key_env,
                private_key,
            }) => {
                let key = app_key(app_id, &private_key).map_err(|why| {
                    anyhow::anyhow!(
                        "github: the private key in {key_env} cannot be used: {why}; it must be \
                         the PEM file GitHub generated for App {app_id} \
                         (-----BEGIN RSA PRIVATE KEY-----)"
                    )
                })?;
                if gh.token_env.is_some() {
                    tracing::info!(
                        "github: authenticating as GitHub App {app_id}; token_env is not used"
                    );
                }
                GithubClient::with_app_key(&gh.api_url, app_id, key).map(Some)
            }
        }
    }

    /// A client for `api_url` authenticated with a personal access token.
    pub fn with_token(api_url: &str, token: String) -> anyhow::Result<GithubClient> {
        let client = builder(api_url)?
            .personal_token(token)
            .build()
            .context("github: cannot build the API client")?;
        Ok(GithubClient::new(api_url, Auth::Token(client)))
    }

    /// A client for `api_url` authenticated as GitHub App `app_id` with its PEM RSA private
    /// key. The error says what is wrong with the key without quoting it.
    pub fn with_app(
        api_url: &str,
        app_id: u64,
        private_key_pem: &str,
    ) -> anyhow::Result<GithubClient> {
        let key = app_key(app_id, private_key_pem).map_err(|why| {
            anyhow::anyhow!("github: the App's private key cannot be used: {why}")
        })?;
        GithubClient::with_app_key(api_url, app_id, key)
    }

    fn with_app_key(
        api_url: &str,
        app_id: u64,
        key: octocrab::auth::EncodingKey,
    ) -> anyhow::Result<GithubClient> {
        let app = builder(api_url)?
            .app(AppId(app_id), key)
            .build()
            .context("github: cannot build the API client")?;
        Ok(GithubClient::new(
            api_url,
            Auth::App(AppClients {
                app,
                installations: Mutex::default(),
                clients: Mutex::default(),
            }),
        ))
    }

    fn new(api_url: &str, auth: Auth) -> GithubClient {
        GithubClient {
            inner: Arc::new(Inner {
                api_url: api_url.trim_end_matches('/').to_string(),
                auth,
                login: tokio::sync::Mutex::new(Login::Unknown),
            }),
        }
    }

    /// The API's base URL (`[github] api_url`, without a trailing `/`).
    pub fn api_url(&self) -> &str {
        &self.inner.api_url
    }

    /// Whether this client authenticates as a GitHub App (else with a token).
    pub fn is_app(&self) -> bool {
        matches!(self.inner.auth, Auth::App(_))
    }

    /// A client authorised for `repository` (`owner/name`): the token's client, or the App's
    /// installation client for that repository with a token valid for at least
    /// [`REFRESH_MARGIN`].
    pub async fn for_repo(&self, repository: &str) -> Result<Octocrab, SinkError> {
        let app = match &self.inner.auth {
            Auth::Token(client) => return Ok(client.clone()),
            Auth::App(app) => app,
        };
        let installation = app.installation_for(repository).await?;
        let client = app.client(installation)?;
        let client = client.lock().await;
        let margin = chrono::Duration::seconds(REFRESH_MARGIN.as_secs() as i64);
        if let Err(e) = client.installation_token_with_buffer(margin).await {
            return Err(app.mint_failed(repository, installation, e));
        }
        Ok(client.clone())
    }

    /// changebot's own login (a token's user, or `SLUG[bot]` for an App), looked up once;
    /// `None` when it cannot be learned (then it is asked again next time, unless GitHub's
    /// answer was final).
    pub async fn bot_login(&self) -> Option<String> {
        let mut login = self.inner.login.lock().await;
        match &*login {
            Login::Known(name) => return Some(name.clone()),
            Login::Unavailable => return None,
            Login::Unknown => {}
        }
        let found = match &self.inner.auth {
            Auth::Token(client) => client
                .get::<Named, _, _>("/user", None::<&()>)
                .await
                .map(|u| u.login),
            Auth::App(app) => app
                .app
                .get::<Named, _, _>("/app", None::<&()>)
                .await
                .map(|a| a.slug.map(|slug| format!("{slug}[bot]"))),
        };
        match found.map_err(|e| classify(e, false)) {
            Ok(Some(name)) => {
                *login = Login::Known(name.clone());
                Some(name)
            }
            Ok(None) | Err(SinkError::Permanent(_)) | Err(SinkError::Gone) => {
                tracing::warn!(
                    "github: cannot learn changebot's own login; sticky comments are found by their marker alone"
                );
                *login = Login::Unavailable;
                None
            }
            Err(SinkError::Retry { .. }) => None,
        }
    }
}

/// The fields of `GET /user` and `GET /app` changebot reads.
#[derive(Deserialize)]
struct Named {
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    slug: Option<String>,
}

/// Parses the App's private key and signs one JWT with it, so a key that cannot sign fails at
/// start rather than on the first reply. The reason never quotes the key.
fn app_key(app_id: u64, pem: &str) -> Result<octocrab::auth::EncodingKey, String> {
    let key = octocrab::auth::EncodingKey::from_rsa_pem(pem.trim().as_bytes())
        .map_err(|e| key_problem(&e))?;
    octocrab::auth::create_jwt(AppId(app_id), &key).map_err(|e| key_problem(&e))?;
    Ok(key)
}

/// What is wrong with a key, in words that never include the key's bytes.
fn key_problem(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidKeyFormat => {
            "it is not a PEM RSA private key, or the key in it is damaged".to_string()
        }
        ErrorKind::InvalidRsaKey(_) | ErrorKind::RsaFailedSigning => {
            "it does not hold a valid RSA private key".to_string()
        }
        ErrorKind::Base64(_) => "its PEM body is not valid base64".to_string(),
        _ => "it could not be read as a PEM RSA private key".to_string(),
    }
}

impl AppClients {
    async fn installation_for(&self, repository: &str) -> Result<InstallationId, SinkError> {
        if let Some(id) = lock(&self.installations)?.get(repository) {
            return Ok(*id);
        }
        let (owner, name) = repository
            .split_once('/')
            .ok_or_else(|| SinkError::Permanent(format!("`{repository}` is not owner/name")))?;
        let found = self
            .app
            .apps()
            .get_repository_installation(owner, name)
            .await
            .map_err(|e| match classify(e, true) {
                SinkError::Gone => SinkError::Permanent(format!(
                    "the GitHub App is not installed on {repository} (GitHub answered 404 for \
                     /repos/{repository}/installation): install it on the repository or its \
                     organisation, then `release retry` the change"
                )),
                SinkError::Permanent(reason) => SinkError::Permanent(format!(
                    "looking up the GitHub App's installation on {repository}: {reason} (a 401 \
                     means GitHub did not accept the App's JWT: check app_id and the private key)"
                )),
                retry => retry,
            })?;
        lock(&self.installations)?.insert(repository.to_string(), found.id);
        tracing::debug!(
            repository,
            installation = found.id.0,
            "github: installation found"
        );
        Ok(found.id)
    }

    fn client(
        &self,
        installation: InstallationId,
    ) -> Result<Arc<tokio::sync::Mutex<Octocrab>>, SinkError> {
        let mut clients = lock(&self.clients)?;
        if let Some(c) = clients.get(&installation) {
            return Ok(c.clone());
        }
        let client = self
            .app
            .installation(installation)
            .map_err(|e| SinkError::Permanent(format!("github: no installation client: {e}")))?;
        let client = Arc::new(tokio::sync::Mutex::new(client));
        clients.insert(installation, client.clone());
        Ok(client)
    }

    /// Minting a token failed. When the installation is gone (404) or refused (401/403) it
    /// is forgotten, so the next try looks the repository's installation up again.
    fn mint_failed(
        &self,
        repository: &str,
        installation: InstallationId,
        e: octocrab::Error,
    ) -> SinkError {
        let status = match &e {
            octocrab::Error::GitHub { source, .. } => Some(source.status_code.as_u16()),
            _ => None,
        };
        if matches!(status, Some(401 | 403 | 404)) {
            if let Ok(mut map) = lock(&self.installations) {
                map.retain(|_, id| *id != installation);
            }
            if let Ok(mut map) = lock(&self.clients) {
                map.remove(&installation);
            }
        }
        match (status, classify(e, false)) {
            (Some(404), _) => SinkError::retry(format!(
                "installation {} of the GitHub App no longer exists; {repository}'s is looked up again",
                installation.0
            )),
            (_, SinkError::Permanent(reason)) => SinkError::Permanent(format!(
                "minting an installation token for {repository} failed: {reason} (check app_id \
                 and the private key)"
            )),
            (_, other) => other,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, SinkError> {
    m.lock()
        .map_err(|_| SinkError::retry("github: a client cache lock was poisoned"))
}

/// Sorts an octocrab error into retry (with GitHub's retry-after or rate-limit reset),
/// permanent, or gone (a 404 when `gone_if_missing`).
pub fn classify(e: octocrab::Error, gone_if_missing: bool) -> SinkError {
    match e {
        octocrab::Error::GitHub { source, .. } => {
            let status = source.status_code.as_u16();
            let retry_after = source
                .headers
                .as_ref()
                .and_then(|h| h.get("retry-after"))
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let reset = source.rate_limit_reset.map(|reset| {
                let now = chrono::Utc::now().timestamp().max(0) as u64;
                Duration::from_secs(reset.saturating_sub(now).max(1))
            });
            let reason = format!("GitHub answered {status}: {}", source.message);
            match status {
                404 if gone_if_missing => SinkError::Gone,
                403 | 429 if retry_after.is_some() || reset.is_some() => SinkError::Retry {
                    reason,
                    after: retry_after.or(reset),
                },
                408 | 429 | 500..=599 => SinkError::Retry {
                    reason,
                    after: retry_after,
                },
                _ => SinkError::Permanent(reason),
            }
        }
        other => SinkError::retry(format!("calling GitHub failed: {other}")),
    }
}
