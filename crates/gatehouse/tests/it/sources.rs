//! The login sources library (`gatehouse-sources`) against stand-ins of Google, GitHub and
//! Facebook (`gatehouse_testkit::upstream`) over real HTTP: the preset code a deployment runs,
//! pointed at loopback through the documented URL overrides. The browser follows the upstream's
//! 302 here by hand; the journeys through the server's routes live with the flows.

use gatehouse_core::kinds::{SourceProviderType, UserMatchingMode};
use gatehouse_sources::{
    decide, CallbackQuery, Decision, DenyReason, Error, Identity, MatchInput, PendingLogin,
    SourceClient, SourceSettings,
};
use gatehouse_testkit::upstream::{
    IdTokenFlaw, Person, Service, Upstream, CLIENT_ID, CLIENT_SECRET,
};
use reqwest::header::LOCATION;

/// Where the server's callback would be; the tests stop at the redirect to it.
const CALLBACK: &str = "http://localhost:9000/source/oauth/callback/test/";

fn settings(upstream: &Upstream, provider_type: SourceProviderType) -> SourceSettings {
    let overrides = upstream.overrides();
    SourceSettings {
        name: String::new(),
        provider_type,
        consumer_key: CLIENT_ID.into(),
        consumer_secret: CLIENT_SECRET.into(),
        authorization_url: overrides.authorization_url,
        access_token_url: overrides.access_token_url,
        profile_url: overrides.profile_url,
        oidc_well_known_url: overrides.oidc_well_known_url,
        oidc_jwks_url: String::new(),
        additional_scopes: String::new(),
    }
}

fn provider_type(service: Service) -> SourceProviderType {
    match service {
        Service::Google => SourceProviderType::Google,
        Service::Github => SourceProviderType::Github,
        Service::Facebook => SourceProviderType::Facebook,
    }
}

/// A started login: the source, the client, what the caller keeps, and the callback's query
/// after following the upstream's redirect as a browser would.
struct Login {
    source: SourceSettings,
    client: SourceClient,
    pending: PendingLogin,
    callback: CallbackQuery,
}

impl Login {
    async fn start(upstream: &Upstream, source: SourceSettings) -> anyhow::Result<Login> {
        let client = SourceClient::new()?;
        let start = client.start(&source, CALLBACK).await?;
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let response = browser.get(&start.redirect_url).send().await?;
        assert_eq!(
            response.status(),
            reqwest::StatusCode::FOUND,
            "{}",
            upstream.url
        );
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .unwrap_or_default();
        assert!(location.starts_with(CALLBACK), "{location}");
        let query = url::Url::parse(location)?
            .query()
            .unwrap_or_default()
            .to_owned();
        let callback: CallbackQuery = serde_urlencoded::from_str(&query)?;
        Ok(Login {
            source,
            client,
            pending: start.pending,
            callback,
        })
    }

    async fn finish(&self) -> Result<Identity, Error> {
        self.client
            .finish(&self.source, CALLBACK, &self.pending, &self.callback)
            .await
    }
}

async fn started(service: Service, person: Person) -> anyhow::Result<(Upstream, Login)> {
    let upstream = Upstream::start(service, person).await?;
    let login = Login::start(&upstream, settings(&upstream, provider_type(service))).await?;
    Ok((upstream, login))
}

#[tokio::test]
async fn google_login_yields_the_subject_and_verified_email_from_a_checked_id_token(
) -> anyhow::Result<()> {
    let (upstream, login) = started(Service::Google, Person::default()).await?;
    let asked = upstream.last_authorization().unwrap_or_default();
    assert_eq!(
        asked.get("code_challenge_method").map(String::as_str),
        Some("S256")
    );
    assert!(
        asked.get("nonce").is_some_and(|n| n.len() >= 16),
        "{asked:?}"
    );
    let scope = asked.get("scope").cloned().unwrap_or_default();
    for wanted in ["openid", "email", "profile"] {
        assert!(scope.split(' ').any(|s| s == wanted), "{scope}");
    }
    let identity = login.finish().await?;
    assert_eq!(identity.id, "583231");
    assert_eq!(identity.email.as_deref(), Some("octocat@example.com"));
    assert!(identity.email_verified);
    assert_eq!(identity.name.as_deref(), Some("Octo Cat"));
    assert_eq!(identity.username.as_deref(), Some("octocat@example.com"));
    assert_eq!(
        identity.attributes["picture"],
        "https://example.com/photo.jpg"
    );
    Ok(())
}

#[tokio::test]
async fn generic_oidc_source_signs_in_through_discovery_and_jwks() -> anyhow::Result<()> {
    let upstream = Upstream::start(Service::Google, Person::default()).await?;
    let source = settings(&upstream, SourceProviderType::OpenIdConnect);
    let identity = Login::start(&upstream, source).await?.finish().await?;
    assert_eq!(identity.id, "583231");
    assert_eq!(identity.verified_email(), Some("octocat@example.com"));
    // A generic provider without nickname or preferred_username suggests no username.
    assert_eq!(identity.username, None);
    Ok(())
}

#[tokio::test]
async fn github_login_yields_the_numeric_id_and_only_the_verified_primary_email(
) -> anyhow::Result<()> {
    let (upstream, login) = started(Service::Github, Person::default()).await?;
    let asked = upstream.last_authorization().unwrap_or_default();
    assert_eq!(
        asked.get("scope").map(String::as_str),
        Some("read:user user:email")
    );
    assert_eq!(
        asked.get("code_challenge_method").map(String::as_str),
        Some("S256")
    );
    let identity = login.finish().await?;
    assert_eq!(identity.id, "583231");
    assert_eq!(identity.username.as_deref(), Some("octocat"));
    assert_eq!(identity.email.as_deref(), Some("octocat@example.com"));
    assert!(identity.email_verified);
    assert_eq!(
        identity.attributes["emails"].as_array().map(Vec::len),
        Some(2)
    );
    Ok(())
}

#[tokio::test]
async fn an_unverified_github_primary_email_counts_as_no_email_and_never_links(
) -> anyhow::Result<()> {
    let person = Person {
        email_verified: false,
        ..Person::default()
    };
    // The stand-in also lists a verified secondary address, which must not stand in.
    let (_upstream, login) = started(Service::Github, person).await?;
    let identity = login.finish().await?;
    assert_eq!(identity.email, None);
    assert!(!identity.email_verified);
    let facts = MatchInput {
        user_with_email: Some(1),
        ..MatchInput::default()
    };
    assert_eq!(
        decide(UserMatchingMode::EmailLink, &identity, facts),
        Decision::Deny(DenyReason::NoVerifiedEmail)
    );
    Ok(())
}

#[tokio::test]
async fn github_without_access_to_the_email_list_signs_in_without_email() -> anyhow::Result<()> {
    let (upstream, login) = started(Service::Github, Person::default()).await?;
    upstream.set(|knobs, _| knobs.without_email = true);
    let identity = login.finish().await?;
    assert_eq!(identity.id, "583231");
    assert_eq!(identity.email, None);
    let why = identity.attributes["emails"].as_str().unwrap_or_default();
    assert!(why.contains("403"), "{why}");
    Ok(())
}

#[tokio::test]
async fn facebook_login_reads_the_graph_profile() -> anyhow::Result<()> {
    let (upstream, login) = started(Service::Facebook, Person::default()).await?;
    let asked = upstream.last_authorization().unwrap_or_default();
    assert_eq!(asked.get("scope").map(String::as_str), Some("email"));
    let identity = login.finish().await?;
    assert_eq!(identity.id, "583231");
    assert_eq!(identity.name.as_deref(), Some("Octo Cat"));
    assert_eq!(identity.username.as_deref(), Some("Octo Cat"));
    assert_eq!(identity.verified_email(), Some("octocat@example.com"));
    Ok(())
}

#[tokio::test]
async fn facebook_without_the_email_permission_yields_no_email() -> anyhow::Result<()> {
    let (upstream, login) = started(Service::Facebook, Person::default()).await?;
    upstream.set(|knobs, _| knobs.without_email = true);
    let identity = login.finish().await?;
    assert_eq!(identity.email, None);
    assert!(!identity.email_verified);
    Ok(())
}

#[tokio::test]
async fn an_unverified_google_email_is_kept_but_not_vouched_for() -> anyhow::Result<()> {
    let person = Person {
        email_verified: false,
        ..Person::default()
    };
    let (_upstream, login) = started(Service::Google, person).await?;
    let identity = login.finish().await?;
    assert_eq!(identity.email.as_deref(), Some("octocat@example.com"));
    assert_eq!(identity.verified_email(), None);
    Ok(())
}

#[tokio::test]
async fn declining_at_the_upstream_is_refused_with_a_message_saying_so() -> anyhow::Result<()> {
    for service in [Service::Google, Service::Github, Service::Facebook] {
        let upstream = Upstream::start(service, Person::default()).await?;
        upstream.set(|knobs, _| knobs.deny = true);
        let mut source = settings(&upstream, provider_type(service));
        source.name = "My Login".into();
        let login = Login::start(&upstream, source).await?;
        assert_eq!(login.callback.error.as_deref(), Some("access_denied"));
        let err = login.finish().await.err();
        assert!(
            matches!(err, Some(Error::Denied { .. })),
            "{service:?}: {err:?}"
        );
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("You cancelled the sign-in at My Login"),
            "{message}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_callback_with_a_wrong_or_missing_state_is_refused_before_the_code_is_used(
) -> anyhow::Result<()> {
    for service in [Service::Google, Service::Github, Service::Facebook] {
        let (_upstream, mut login) = started(service, Person::default()).await?;
        let state = login.callback.state.clone();
        login.callback.state = Some("forged-state".into());
        assert!(
            matches!(login.finish().await, Err(Error::StateMismatch)),
            "{service:?}"
        );
        login.callback.state = None;
        assert!(
            matches!(login.finish().await, Err(Error::StateMismatch)),
            "{service:?}"
        );
        // The code was not spent on the forged callbacks: the genuine one still works.
        login.callback.state = state;
        login.finish().await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_replayed_callback_is_refused_by_the_upstream() -> anyhow::Result<()> {
    for service in [Service::Google, Service::Github, Service::Facebook] {
        let (_upstream, login) = started(service, Person::default()).await?;
        login.finish().await?;
        let err = login.finish().await.err();
        assert!(
            matches!(err, Some(Error::TokenRefused { .. })),
            "{service:?}: {err:?}"
        );
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("used already"), "{message}");
    }
    Ok(())
}

#[tokio::test]
async fn a_wrong_pkce_verifier_is_refused_by_the_upstream() -> anyhow::Result<()> {
    for service in [Service::Google, Service::Github, Service::Facebook] {
        let (_upstream, mut login) = started(service, Person::default()).await?;
        login.pending.pkce_verifier = "a-verifier-an-attacker-guessed-0123456789abcdef".into();
        let err = login.finish().await.err();
        assert!(
            matches!(err, Some(Error::TokenRefused { .. })),
            "{service:?}: {err:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_id_token_with_a_wrong_aud_iss_nonce_signature_or_expiry_is_refused(
) -> anyhow::Result<()> {
    let cases = [
        (IdTokenFlaw::WrongAudience, "audience"),
        (IdTokenFlaw::WrongIssuer, "issuer"),
        (IdTokenFlaw::WrongNonce, "nonce"),
        (IdTokenFlaw::BadSignature, "ignature"),
        (IdTokenFlaw::Expired, "xpired"),
    ];
    for (flaw, named) in cases {
        let (upstream, login) = started(Service::Google, Person::default()).await?;
        upstream.set(|knobs, _| knobs.id_token = flaw);
        let err = login.finish().await.err();
        let message = err.as_ref().map(|e| e.to_string()).unwrap_or_default();
        assert!(matches!(err, Some(Error::IdToken(_))), "{flaw:?}: {err:?}");
        assert!(
            message.to_lowercase().contains(named),
            "{flaw:?}: {message}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_source_without_secret_or_with_a_broken_url_names_the_setting_to_fix(
) -> anyhow::Result<()> {
    let upstream = Upstream::start(Service::Github, Person::default()).await?;
    let client = SourceClient::new()?;
    let mut source = settings(&upstream, SourceProviderType::Github);
    source.consumer_secret.clear();
    let message = client
        .start(&source, CALLBACK)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(message.contains("consumer_secret"), "{message}");
    let mut source = settings(&upstream, SourceProviderType::Github);
    source.profile_url = "not a url".into();
    let message = client
        .start(&source, CALLBACK)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(message.contains("profile_url"), "{message}");
    Ok(())
}
