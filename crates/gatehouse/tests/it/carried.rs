//! Sign-in factors carried over from Authentik: a password hash in Django's encoded form, set
//! through Authentik's own `set_password_hash` endpoint, lets its owner log in with the old
//! password, and the first login replaces it with Gatehouse's argon2id.

use gatehouse_store::users;
use gatehouse_testkit::{TestDb, TestServer};
use serde_json::json;

use crate::flows::login_attempt;

/// The fixture's hashes (`fixtures/authentik/reference.sql`), made by Django's own hashers.
const CARRIED: [(&str, &str, &str); 3] = [
    (
        "erin@example.com",
        "fixture-erin-old-pbkdf2-password",
        "pbkdf2_sha256$600000$n1nByNHoJ1tuwHabqcAaCp$+sF6BoRQyI+EZX+HmXmFl+3GsaJxiDJTxmHjUw06Ol4=",
    ),
    (
        "alice@example.com",
        "fixture-alice-argon2-password",
        "argon2$argon2id$v=19$m=102400,t=2,p=8$THlrUTVudkk2bEhBNW9KTnBPQml1Uw$+LqY3ap+GVGAsal3ITVD91jb2K4ZiXm2rEQJdJQAjtw",
    ),
    (
        "bob@example.com",
        "fixture-bob-bcrypt-password",
        "bcrypt_sha256$$2b$12$hntU2O6xZwpgRRVyIfIM0ee2Zl33W3/DLJmd8aNdpE0ZVw.vYZh.G",
    ),
];

#[tokio::test]
async fn a_carried_django_hash_logs_in_once_and_is_replaced_by_argon2id() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let server = TestServer::start(&db).await?;
    let store = db.store().await?;
    let (_, user) = server
        .post(
            "/core/users/",
            json!({"username": "probe@example.com", "name": "Probe"}),
        )
        .await?;
    let probe = user["pk"].as_i64().unwrap_or_default();
    for (bad, names) in [
        ("!Kz3bQ1Wmx", "unusable password"),
        ("md5$salt$abc", "unknown hash algorithm `md5`"),
        ("pbkdf2_sha256$1000$salt$AAAA", "wrong length"),
        ("bcrypt_sha256$$2b$12$short", "60-character"),
    ] {
        let (status, body) = server
            .post(
                &format!("/core/users/{probe}/set_password_hash/"),
                json!({"password": bad}),
            )
            .await?;
        assert_eq!(status, 400, "{bad}: {body}");
        let said = body["password"][0].as_str().unwrap_or_default();
        assert!(said.contains(names), "{bad}: {body}");
    }
    for (username, password, hash) in CARRIED {
        let (_, user) = server
            .post(
                "/core/users/",
                json!({"username": username, "name": username}),
            )
            .await?;
        let pk = user["pk"].as_i64().unwrap_or_default();
        let (status, body) = server
            .post(
                &format!("/core/users/{pk}/set_password_hash/"),
                json!({"password": hash}),
            )
            .await?;
        assert_eq!(status, 204, "{username}: {body}");
        let wrong = login_attempt(&server, &[], username, &format!("{password}x")).await?;
        assert_ne!(
            wrong.status().as_u16(),
            302,
            "{username}: a wrong password passed"
        );
        let right = login_attempt(&server, &[], username, password).await?;
        assert_eq!(right.status().as_u16(), 302, "{username}: the old password");
        let mut conn = store.conn().await?;
        let stored = users::password_hash(&mut conn, pk)
            .await?
            .unwrap_or_default();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{username}: rehashed at login, got {}",
            stored.split('$').nth(1).unwrap_or_default()
        );
        let again = login_attempt(&server, &[], username, password).await?;
        assert_eq!(again.status().as_u16(), 302, "{username}: after the rehash");
    }
    server.stop().await
}
