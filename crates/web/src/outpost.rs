//! The server side of the forward-auth outpost ([`gatehouse_outpost`]): which proxy providers
//! an outpost serves, whether a session is valid (with the application's policy bindings, the
//! identity headers and the user's state read from the database), and the steps of a login.
//!
//! The embedded outpost calls it directly ([`Sessions`] is its backend); standalone outposts
//! call the very same code through the outpost API (`api/outpost_api.rs`) with their token,
//! so both behave alike.

use std::sync::Arc;

use chrono::Utc;
use gatehouse_core::kinds::{SigningAlgorithm, SubMode, TokenIntent};
use gatehouse_core::secret;
use gatehouse_flow::policy::{self, Context, Verdict};
use gatehouse_flow::RequestInfo;
use gatehouse_outpost::headers::{identity_headers, Identity, Meta};
use gatehouse_outpost::pending::{Pending, Refusal};
use gatehouse_outpost::{redirect, BoxFuture, Identified, CALLBACK};
use gatehouse_proto::outposts::{
    ClientInfo, IdentityHeader, LoginBegin, LoginBegun, LoginComplete, LoginCompleted,
    ProxyOutpostConfig, SessionCheck, SessionGrant, SignOut, SignedOut,
};
use gatehouse_store::oauth::{self, Redeemed};
use gatehouse_store::providers::{Provider, ProviderKind, ProxySettings};
use gatehouse_store::{
    applications, groups, providers, proxy_sessions, sessions, tokens, users, Conn, Filter,
    ListSpec, Store,
};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::oidc::Keyring;

/// The name the embedded outpost reports in `X-authentik-meta-outpost`.
pub const EMBEDDED_NAME: &str = "gatehouse Embedded Outpost";

/// How long a started login may take before its pending state expires.
const PENDING_MINUTES: i64 = 15;

/// Which proxy providers an outpost serves.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Every proxy provider (the embedded outpost: T5, nothing to assign).
    Every,
    /// Those assigned to a standalone outpost.
    Only(Vec<i64>),
}

/// The outpost operations over the database, on behalf of one outpost.
#[derive(Clone)]
pub struct Sessions {
    store: Store,
    keys: Arc<Keyring>,
    external_url: String,
    /// The outpost's name, for `X-authentik-meta-outpost`.
    outpost: String,
    scope: Scope,
}

/// A proxy provider with its settings and application, as read for one call.
struct Proxy {
    provider: Provider,
    settings: ProxySettings,
    app: Option<applications::Application>,
}

impl Proxy {
    fn slug(&self) -> String {
        self.app
            .as_ref()
            .map(|a| a.fields.slug.clone())
            .unwrap_or_default()
    }

    /// The session lifetime in seconds (`access_token_validity`; a day if unreadable).
    fn validity(&self) -> i64 {
        self.provider
            .fields
            .access_token_validity
            .parse::<gatehouse_core::Duration>()
            .map(|d| d.seconds())
            .unwrap_or(86_400)
    }

    fn callback(&self) -> String {
        format!(
            "{}{CALLBACK}",
            self.settings.external_host.trim_end_matches('/')
        )
    }
}

impl Sessions {
    /// The operations for the outpost named `outpost`, serving `scope`.
    pub fn new(
        store: Store,
        keys: Arc<Keyring>,
        external_url: &str,
        outpost: &str,
        scope: Scope,
    ) -> Sessions {
        Sessions {
            store,
            keys,
            external_url: external_url.to_owned(),
            outpost: outpost.to_owned(),
            scope,
        }
    }

    fn serves(&self, provider: i64) -> bool {
        match &self.scope {
            Scope::Every => true,
            Scope::Only(ids) => ids.contains(&provider),
        }
    }

    /// Proxy provider `id` with its application, if it exists and this outpost serves it.
    async fn proxy(&self, conn: &mut Conn, id: i64) -> ApiResult<Proxy> {
        let missing = || {
            ApiError::NotFound(format!(
                "proxy provider {id} served by the outpost `{}`",
                self.outpost
            ))
        };
        if !self.serves(id) {
            return Err(missing());
        }
        let provider = match providers::get(conn, self.store.key(), id).await {
            Err(gatehouse_store::Error::NotFound { .. }) => return Err(missing()),
            other => other?,
        };
        let ProviderKind::Proxy(settings) = provider.fields.kind.clone() else {
            return Err(missing());
        };
        let app = applications::find_by_provider(conn, id).await?;
        Ok(Proxy {
            provider,
            settings,
            app,
        })
    }

    /// The proxy providers this outpost serves, as it routes them.
    pub async fn providers(&self) -> ApiResult<Vec<ProxyOutpostConfig>> {
        let spec = ListSpec {
            filters: vec![Filter::Equals("p.kind", "proxy".into())],
            ordering: vec![("p.id", false)],
            page: 1,
            page_size: 10_000,
        };
        let mut conn = self.store.conn().await?;
        let mut configs = Vec::new();
        for provider in providers::list(&mut conn, self.store.key(), &spec)
            .await?
            .items
        {
            let ProviderKind::Proxy(settings) = provider.fields.kind.clone() else {
                continue;
            };
            if !self.serves(provider.id) {
                continue;
            }
            let app = applications::find_by_provider(&mut conn, provider.id).await?;
            let p = Proxy {
                provider,
                settings,
                app,
            };
            configs.push(ProxyOutpostConfig {
                pk: p.provider.id,
                name: p.provider.fields.name.clone(),
                client_id: p.provider.fields.client_id.clone(),
                mode: p.settings.mode,
                external_host: p.settings.external_host.clone(),
                internal_host: p.settings.internal_host.clone(),
                internal_host_ssl_validation: p.settings.internal_host_ssl_validation,
                cookie_domain: p.settings.cookie_domain.clone(),
                skip_path_regex: p.settings.skip_path_regex.clone(),
                intercept_header_auth: p.settings.intercept_header_auth,
                access_token_validity: p.validity(),
                assigned_application_slug: p.slug(),
                assigned_application_name: p
                    .app
                    .as_ref()
                    .map(|a| a.fields.name.clone())
                    .unwrap_or_default(),
            });
        }
        Ok(configs)
    }

    /// The session or app password of `check`, if valid for its provider: the identity
    /// headers and the application's verdict for the user.
    pub async fn check(&self, check: &SessionCheck) -> ApiResult<Option<SessionGrant>> {
        let mut conn = self.store.conn().await?;
        let p = self.proxy(&mut conn, check.provider).await?;
        let now = Utc::now();
        let (user, data, expires) = match (&check.cookie, &check.app_password) {
            (Some(cookie), _) => match proxy_sessions::find(&mut conn, cookie, now).await? {
                Some(s) if s.provider == check.provider => match s.user {
                    Some(user) => (user, s.data, s.expires.timestamp()),
                    None => return Ok(None),
                },
                _ => return Ok(None),
            },
            (None, Some(app_password)) if p.settings.intercept_header_auth => {
                match tokens::find_by_key(&mut conn, &app_password.password).await? {
                    Some(t)
                        if t.fields.intent == TokenIntent::AppPassword && !t.is_expired(now) =>
                    {
                        let expires = match t.fields.expires {
                            Some(e) if t.fields.expiring => e.timestamp(),
                            _ => 0,
                        };
                        (t.fields.user, Value::Null, expires)
                    }
                    _ => return Ok(None),
                }
            }
            (None, Some(_)) => return Ok(None),
            (None, None) => {
                return Err(ApiError::field(
                    "cookie",
                    "Send the session cookie's value (cookie) or app-password credentials (app_password).",
                ))
            }
        };
        let user = match users::get(&mut conn, user).await {
            Err(gatehouse_store::Error::NotFound { .. }) => return Ok(None),
            other => other?,
        };
        let wrong_user = check
            .app_password
            .as_ref()
            .is_some_and(|a| check.cookie.is_none() && a.username != user.fields.username);
        if !user.fields.is_active || wrong_user {
            return Ok(None);
        }
        let grant = self
            .grant(&mut conn, &p, &user, &data, &check.client)
            .await?;
        Ok(Some(SessionGrant { expires, ..grant }))
    }

    /// Whose valid session the cookie of `check` is, in one indexed read (the outpost's cold
    /// path when it already holds that user's decision for the provider).
    pub async fn identify(&self, check: &SessionCheck) -> ApiResult<Identified> {
        let Some(cookie) = &check.cookie else {
            return Ok(Identified::Unknown);
        };
        if !self.serves(check.provider) {
            return Ok(Identified::NoSession);
        }
        let mut conn = self.store.conn().await?;
        Ok(
            match proxy_sessions::owner(&mut conn, cookie, check.provider, Utc::now()).await? {
                Some((user, expires)) => Identified::Session {
                    user,
                    expires: expires.timestamp(),
                },
                None => Identified::NoSession,
            },
        )
    }

    /// What an allowed request carries on for `user`, and whether the application lets them in.
    async fn grant(
        &self,
        conn: &mut Conn,
        p: &Proxy,
        user: &users::User,
        data: &Value,
        client: &ClientInfo,
    ) -> ApiResult<SessionGrant> {
        let request = RequestInfo {
            ip: client.ip.clone(),
            host: client.host.clone(),
            path: "/".into(),
            method: "GET".into(),
            user_agent: client.user_agent.clone(),
        };
        let denied = match &p.app {
            None => Some(format!(
                "The provider {} is not assigned to an application.",
                p.provider.fields.name
            )),
            Some(app) => {
                let ctx = Context {
                    user: Some(user),
                    identifier: None,
                    request: &request,
                    flow: None,
                    invitation: None,
                };
                match policy::evaluate_target(conn, app.uuid, app.fields.policy_engine_mode, ctx)
                    .await
                {
                    Ok((Verdict::Fail(message), _)) => Some(message),
                    Ok(_) => None,
                    Err(e) => return Err(ApiError::Internal(e.to_string())),
                }
            }
        };
        let names: Vec<String> = groups::effective_of_user(conn, user.id)
            .await?
            .into_iter()
            .map(|g| g.fields.name)
            .collect();
        let identity = Identity {
            username: user.fields.username.clone(),
            groups: names,
            email: user.fields.email.clone(),
            name: user.fields.name.clone(),
            uid: crate::api::users::uid(user),
            jwt: data["id_token"].as_str().unwrap_or_default().to_owned(),
        };
        let slug = p.slug();
        let meta = Meta {
            jwks: format!("{}/application/o/{slug}/jwks/", self.external_url),
            outpost: self.outpost.clone(),
            provider: p.provider.fields.name.clone(),
            app: slug,
            version: env!("CARGO_PKG_VERSION").into(),
        };
        let mut headers: Vec<IdentityHeader> = identity_headers(&identity, &meta)
            .into_iter()
            .map(|(name, value)| IdentityHeader { name, value })
            .collect();
        if p.settings.basic_auth_enabled {
            let attr = |name: &str| {
                user.fields
                    .attributes
                    .get(name)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let pair = format!(
                "{}:{}",
                attr(&p.settings.basic_auth_user_attribute),
                attr(&p.settings.basic_auth_password_attribute)
            );
            use base64::Engine;
            headers.push(IdentityHeader {
                name: "Authorization".into(),
                value: format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ),
            });
        }
        Ok(SessionGrant {
            headers,
            denied,
            user: user.id,
            expires: 0,
        })
    }

    /// Starts a login: the pending cookie's value and the authorize URL whose state is sealed
    /// with it ([`gatehouse_outpost::pending`]); no row is written. The return URL is checked
    /// here: the server never relies on an outpost for that.
    pub async fn begin(&self, begin: &LoginBegin) -> ApiResult<LoginBegun> {
        let mut conn = self.store.conn().await?;
        let p = self.proxy(&mut conn, begin.provider).await?;
        let target = redirect::safe_return(
            &begin.return_to,
            &p.settings.external_host,
            p.settings.mode,
            &p.settings.cookie_domain,
        )
        .unwrap_or_else(|| p.settings.external_host.clone());
        // Nothing is written: the login in progress is sealed into the state with the cookie.
        let key = secret::new_token();
        let login_state = gatehouse_outpost::pending::seal(
            &key,
            &Pending {
                provider: p.provider.id,
                return_to: target,
                expires: (Utc::now() + chrono::Duration::minutes(PENDING_MINUTES)).timestamp(),
            },
        );
        let authorize_url = crate::oidc::url_with(
            &format!("{}/application/o/authorize/", self.external_url),
            &[
                ("client_id", &p.provider.fields.client_id),
                ("redirect_uri", &p.callback()),
                ("response_type", "code"),
                ("scope", "openid profile email groups"),
                ("state", &login_state),
            ],
        );
        Ok(LoginBegun {
            cookie: key,
            max_age: PENDING_MINUTES * 60,
            authorize_url,
        })
    }

    /// Completes a login at the callback: the state must be sealed with the pending cookie, the code
    /// unused and issued to this provider for its callback. A replayed code revokes what it
    /// produced.
    pub async fn complete(&self, complete: &LoginComplete) -> ApiResult<LoginCompleted> {
        let refused = |why: &str| {
            Ok(LoginCompleted {
                return_to: None,
                cookie: None,
                max_age: 0,
                refused: Some(why.to_owned()),
            })
        };
        // Taken before the transaction: it may need a pooled connection of its own.
        let signer = self
            .keys
            .signer(&self.store, SigningAlgorithm::Rs256)
            .await?;
        let mut tx = self.store.begin().await?;
        let p = self.proxy(&mut tx, complete.provider).await?;
        let now = Utc::now();
        let pending =
            match gatehouse_outpost::pending::open(
                &complete.cookie,
                &complete.state,
                now.timestamp(),
            ) {
                Ok(pending) if pending.provider == p.provider.id => pending,
                Err(Refusal::Expired) => {
                    return refused("The login took too long or was already completed.")
                }
                _ => return refused(
                    "The login answer does not belong to this browser's login (state mismatch).",
                ),
            };
        let grant = match oauth::redeem_code(&mut tx, &complete.code, now).await? {
            Redeemed::Valid { grant, .. }
                if grant.provider == p.provider.id && grant.redirect_uri == p.callback() =>
            {
                grant
            }
            Redeemed::Replayed { code_hash } => {
                oauth::revoke_from_code(&mut tx, &code_hash).await?;
                gatehouse_store::commit(tx).await?;
                return refused("The login answer was already used.");
            }
            _ => return refused("The login answer is not valid or has expired."),
        };
        let user = users::get(&mut tx, grant.user).await?;
        let slug = p.slug();
        let mappings = gatehouse_store::scope_mappings::of_provider(&mut tx, p.provider.id).await?;
        let mut claims = crate::oidc::user_claims(
            &mut tx,
            &user,
            &["openid", "profile", "email", "groups"],
            SubMode::HashedUserId,
            &mappings,
        )
        .await?;
        let validity = p.validity();
        claims.insert(
            "iss".into(),
            crate::oidc::issuer(&self.external_url, &slug).into(),
        );
        claims.insert("aud".into(), p.provider.fields.client_id.clone().into());
        claims.insert("iat".into(), now.timestamp().into());
        claims.insert(
            "exp".into(),
            (now + chrono::Duration::seconds(validity))
                .timestamp()
                .into(),
        );
        let id_token = signer.sign(Value::Object(claims)).await?;
        // A fresh value: the pending one may have been planted by someone else (#13 item 2).
        let fresh = secret::new_token();
        proxy_sessions::create(
            &mut tx,
            &fresh,
            p.provider.id,
            user.id,
            grant.session,
            &json!({"id_token": id_token}),
            now + chrono::Duration::seconds(validity),
        )
        .await?;
        gatehouse_store::commit(tx).await?;
        // Checked again: the sealed state is only as trustworthy as the browser holding it.
        let target = redirect::safe_return(
            &pending.return_to,
            &p.settings.external_host,
            p.settings.mode,
            &p.settings.cookie_domain,
        )
        .unwrap_or_else(|| p.settings.external_host.clone());
        Ok(LoginCompleted {
            return_to: Some(target),
            cookie: Some(fresh),
            max_age: validity,
            refused: None,
        })
    }

    /// Ends every outpost session of the cookie's user, on every outpost (the change feed
    /// tells them at once), and the IdP session the cookie's login came from; names the
    /// end-session URL the browser goes on to.
    pub async fn sign_out(&self, sign_out: &SignOut) -> ApiResult<SignedOut> {
        let mut tx = self.store.begin().await?;
        let p = self.proxy(&mut tx, sign_out.provider).await?;
        if let Some(cookie) = &sign_out.cookie {
            if let Some(session) = proxy_sessions::find(&mut tx, cookie, Utc::now()).await? {
                if let Some(user) = session.user {
                    proxy_sessions::end_all_of(&mut tx, user).await?;
                }
                // The sign-out page's POST confirmed it, so the IdP session the login came
                // from ends here too: end-session, where the browser goes next, asks for a
                // confirmation when it has a session to end.
                if let Some(idp) = session.idp_session {
                    sessions::revoke(&mut tx, idp).await?;
                }
            }
        }
        gatehouse_store::commit(tx).await?;
        Ok(SignedOut {
            end_session_url: format!(
                "{}/application/o/{}/end-session/",
                self.external_url,
                p.slug()
            ),
        })
    }
}

/// How an outpost sees a failed call: the database's trouble is an outage (degraded mode),
/// anything the caller got wrong is a refusal.
fn outpost_error(e: ApiError) -> gatehouse_outpost::Error {
    match e {
        ApiError::Unavailable(_) | ApiError::Internal(_) => {
            gatehouse_outpost::Error::Unreachable(e.to_string())
        }
        other => gatehouse_outpost::Error::Refused(other.to_string()),
    }
}

impl gatehouse_outpost::Backend for Sessions {
    fn providers(
        &self,
    ) -> BoxFuture<'_, gatehouse_outpost::backend::Result<Vec<ProxyOutpostConfig>>> {
        Box::pin(async move { self.providers().await.map_err(outpost_error) })
    }

    fn check<'a>(
        &'a self,
        check: &'a SessionCheck,
    ) -> BoxFuture<'a, gatehouse_outpost::backend::Result<Option<SessionGrant>>> {
        Box::pin(async move { self.check(check).await.map_err(outpost_error) })
    }

    fn identify<'a>(
        &'a self,
        check: &'a SessionCheck,
    ) -> BoxFuture<'a, gatehouse_outpost::backend::Result<Identified>> {
        Box::pin(async move { self.identify(check).await.map_err(outpost_error) })
    }

    fn begin<'a>(
        &'a self,
        begin: &'a LoginBegin,
    ) -> BoxFuture<'a, gatehouse_outpost::backend::Result<LoginBegun>> {
        Box::pin(async move { self.begin(begin).await.map_err(outpost_error) })
    }

    fn complete<'a>(
        &'a self,
        complete: &'a LoginComplete,
    ) -> BoxFuture<'a, gatehouse_outpost::backend::Result<LoginCompleted>> {
        Box::pin(async move { self.complete(complete).await.map_err(outpost_error) })
    }

    fn sign_out<'a>(
        &'a self,
        sign_out: &'a SignOut,
    ) -> BoxFuture<'a, gatehouse_outpost::backend::Result<SignedOut>> {
        Box::pin(async move { self.sign_out(sign_out).await.map_err(outpost_error) })
    }
}

/// Deletes expired outpost sessions (called by the server's reaper).
pub async fn reap(conn: &mut Conn) -> gatehouse_store::Result<u64> {
    proxy_sessions::reap(conn, Utc::now()).await
}
