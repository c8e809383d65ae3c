//! `user`, `group`, `app`, `token` and `invite`: admin tasks through the REST API.

use std::io::Read;

use anyhow::{bail, Context};
use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{json, Value};

use crate::cli::{
    AppCommand, FlowCommand, GroupCommand, InviteCommand, KeyCommand, OutpostCommand, TokenCommand,
    UserCommand,
};
use crate::client::{cell, table, url_encode, Client};

async fn user_pk(client: &Client, username: &str) -> anyhow::Result<i64> {
    let user = client
        .find_one("/core/users/", "username", username, "user")
        .await?;
    user["pk"].as_i64().context("user without pk")
}

async fn group_pk(client: &Client, name: &str) -> anyhow::Result<String> {
    let group = client
        .find_one("/core/groups/", "name", name, "group")
        .await?;
    Ok(cell(&group["pk"]))
}

fn names(list: &Value, key: &str) -> String {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| cell(&i[key]))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// `gatehouse user …`
pub(super) async fn user(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::List { client, search } => {
            let c = Client::new(&client)?;
            let path = match search {
                Some(s) => format!("/core/users/?search={}", url_encode(&s)),
                None => "/core/users/".into(),
            };
            let users = Value::Array(c.list_all(&path).await?);
            c.print(&users, |users| {
                let rows = users
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|u| {
                        vec![
                            cell(&u["pk"]),
                            cell(&u["username"]),
                            cell(&u["name"]),
                            cell(&u["email"]),
                            cell(&u["type"]),
                            cell(&u["is_active"]),
                            names(&u["groups_obj"], "name"),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "PK", "USERNAME", "NAME", "EMAIL", "TYPE", "ACTIVE", "GROUPS",
                    ],
                    rows,
                );
            });
        }
        UserCommand::Show { client, username } => {
            let c = Client::new(&client)?;
            let u = c
                .find_one("/core/users/", "username", &username, "user")
                .await?;
            c.print(&u, |u| {
                for key in [
                    "pk",
                    "username",
                    "name",
                    "email",
                    "type",
                    "is_active",
                    "is_superuser",
                    "date_joined",
                    "last_login",
                ] {
                    println!("{key:>14}: {}", cell(&u[key]));
                }
                println!("{:>14}: {}", "groups", names(&u["groups_obj"], "name"));
            });
        }
        UserCommand::Create {
            client,
            username,
            name,
            email,
            user_type,
            groups,
        } => {
            let c = Client::new(&client)?;
            let mut group_pks = Vec::new();
            for g in &groups {
                group_pks.push(group_pk(&c, g).await?);
            }
            let body = json!({
                "username": username,
                "name": name.unwrap_or_else(|| username.clone()),
                "email": email.unwrap_or_default(),
                "type": user_type,
                "groups": group_pks,
            });
            let u = c.post("/core/users/", &body).await?;
            c.print(&u, |u| {
                println!(
                    "created user {} (pk {})",
                    cell(&u["username"]),
                    cell(&u["pk"])
                )
            });
        }
        UserCommand::SetPassword { client, username } => {
            let c = Client::new(&client)?;
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                bail!("no password on standard input: pipe it in, e.g. `printf %s \"$PW\" | gatehouse user set-password {username}`");
            }
            let pk = user_pk(&c, &username).await?;
            c.post(
                &format!("/core/users/{pk}/set_password/"),
                &json!({"password": password}),
            )
            .await?;
            println!("password set for {username}");
        }
        UserCommand::Deactivate {
            client,
            username,
            undo,
        } => {
            let c = Client::new(&client)?;
            let pk = user_pk(&c, &username).await?;
            c.call(
                Method::PATCH,
                &format!("/core/users/{pk}/"),
                Some(&json!({"is_active": undo})),
            )
            .await?;
            println!(
                "{username} {}",
                if undo { "re-activated" } else { "deactivated" }
            );
        }
        UserCommand::Delete { client, username } => {
            let c = Client::new(&client)?;
            let pk = user_pk(&c, &username).await?;
            c.call(Method::DELETE, &format!("/core/users/{pk}/"), None)
                .await?;
            println!("deleted user {username}");
        }
    }
    Ok(())
}

/// `gatehouse group …`
pub(super) async fn group(command: GroupCommand) -> anyhow::Result<()> {
    match command {
        GroupCommand::List { client } => {
            let c = Client::new(&client)?;
            let groups = Value::Array(c.list_all("/core/groups/").await?);
            c.print(&groups, |groups| {
                let rows = groups
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|g| {
                        vec![
                            cell(&g["name"]),
                            cell(&g["is_superuser"]),
                            names(&g["parents_obj"], "name"),
                            names(&g["users_obj"], "username"),
                        ]
                    })
                    .collect();
                table(&["NAME", "SUPERUSER", "PARENTS", "MEMBERS"], rows);
            });
        }
        GroupCommand::Create {
            client,
            name,
            parents,
            superuser,
        } => {
            let c = Client::new(&client)?;
            let mut parent_pks = Vec::new();
            for p in &parents {
                parent_pks.push(group_pk(&c, p).await?);
            }
            let g = c
                .post(
                    "/core/groups/",
                    &json!({"name": name, "is_superuser": superuser, "parents": parent_pks}),
                )
                .await?;
            c.print(&g, |g| {
                println!("created group {} ({})", cell(&g["name"]), cell(&g["pk"]))
            });
        }
        GroupCommand::Delete { client, name } => {
            let c = Client::new(&client)?;
            let pk = group_pk(&c, &name).await?;
            c.call(Method::DELETE, &format!("/core/groups/{pk}/"), None)
                .await?;
            println!("deleted group {name}");
        }
        GroupCommand::AddUser {
            client,
            user,
            group,
        } => membership(&client, &user, &group, true).await?,
        GroupCommand::RemoveUser {
            client,
            user,
            group,
        } => membership(&client, &user, &group, false).await?,
    }
    Ok(())
}

async fn membership(
    client: &crate::cli::ClientArgs,
    user: &str,
    group: &str,
    add: bool,
) -> anyhow::Result<()> {
    let c = Client::new(client)?;
    let pk = user_pk(&c, user).await?;
    let gpk = group_pk(&c, group).await?;
    let action = if add { "add_user" } else { "remove_user" };
    c.post(&format!("/core/groups/{gpk}/{action}/"), &json!({"pk": pk}))
        .await?;
    println!(
        "{} {user} {} {group}",
        if add { "added" } else { "removed" },
        if add { "to" } else { "from" }
    );
    Ok(())
}

/// `gatehouse app …`
pub(super) async fn app(command: AppCommand) -> anyhow::Result<()> {
    match command {
        AppCommand::List { client } => {
            let c = Client::new(&client)?;
            let apps = Value::Array(c.list_all("/core/applications/").await?);
            c.print(&apps, |apps| {
                let rows = apps
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| {
                        vec![
                            cell(&a["slug"]),
                            cell(&a["name"]),
                            cell(&a["provider_obj"]["name"]),
                            cell(&a["launch_url"]),
                        ]
                    })
                    .collect();
                table(&["SLUG", "NAME", "PROVIDER", "LAUNCH URL"], rows);
            });
        }
        AppCommand::Create {
            client,
            slug,
            name,
            launch_url,
        } => {
            let c = Client::new(&client)?;
            let body = json!({"slug": slug, "name": name.unwrap_or_else(|| slug.clone()), "meta_launch_url": launch_url.unwrap_or_default()});
            let a = c.post("/core/applications/", &body).await?;
            c.print(&a, |a| println!("created application {}", cell(&a["slug"])));
        }
        AppCommand::Delete { client, slug } => {
            let c = Client::new(&client)?;
            c.call(
                Method::DELETE,
                &format!("/core/applications/{}/", url_encode(&slug)),
                None,
            )
            .await?;
            println!("deleted application {slug}");
        }
    }
    Ok(())
}

/// `gatehouse token …`
pub(super) async fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::List { client } => {
            let c = Client::new(&client)?;
            let tokens = Value::Array(c.list_all("/core/tokens/").await?);
            c.print(&tokens, |tokens| {
                let rows = tokens
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        vec![
                            cell(&t["identifier"]),
                            cell(&t["intent"]),
                            cell(&t["user_obj"]["username"]),
                            if t["expiring"] == json!(true) {
                                cell(&t["expires"])
                            } else {
                                "never".into()
                            },
                            cell(&t["description"]),
                        ]
                    })
                    .collect();
                table(
                    &["IDENTIFIER", "INTENT", "USER", "EXPIRES", "DESCRIPTION"],
                    rows,
                );
            });
        }
        TokenCommand::Create {
            client,
            identifier,
            intent,
            user,
            days,
            description,
        } => {
            let c = Client::new(&client)?;
            let mut body = json!({"identifier": identifier, "intent": intent, "description": description, "expiring": days.is_some()});
            if let Some(days) = days {
                body["expires"] = json!(Utc::now() + Duration::days(i64::from(days)));
            }
            if let Some(user) = user {
                body["user"] = json!(user_pk(&c, &user).await?);
            }
            let t = c.post("/core/tokens/", &body).await?;
            c.print(&t, |t| {
                println!(
                    "created token {} — its key, shown only now:",
                    cell(&t["identifier"])
                );
                println!("{}", cell(&t["key"]));
            });
        }
        TokenCommand::Revoke { client, identifier } => {
            let c = Client::new(&client)?;
            c.call(
                Method::DELETE,
                &format!("/core/tokens/{}/", url_encode(&identifier)),
                None,
            )
            .await?;
            println!("revoked token {identifier}");
        }
    }
    Ok(())
}

/// `gatehouse outpost list|create|token`
pub(super) async fn outpost(command: OutpostCommand) -> anyhow::Result<()> {
    match command {
        OutpostCommand::List { client } => {
            let c = Client::new(&client)?;
            let outposts = Value::Array(c.list_all("/outposts/instances/").await?);
            c.print(&outposts, |outposts| {
                let rows = outposts
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|o| {
                        let kind = if o["managed"].is_string() {
                            "embedded"
                        } else {
                            "standalone"
                        };
                        vec![
                            cell(&o["name"]),
                            kind.to_owned(),
                            names(&o["providers_obj"], "name"),
                        ]
                    })
                    .collect();
                table(&["NAME", "KIND", "PROVIDERS"], rows);
            });
        }
        OutpostCommand::Create {
            client,
            name,
            providers,
        } => {
            let c = Client::new(&client)?;
            let mut pks = Vec::with_capacity(providers.len());
            for provider in &providers {
                let p = c
                    .find_one("/providers/proxy/", "name", provider, "proxy provider")
                    .await?;
                pks.push(p["pk"].clone());
            }
            let o = c
                .post(
                    "/outposts/instances/",
                    &json!({"name": name, "type": "proxy", "providers": pks}),
                )
                .await?;
            c.print(&o, |o| {
                println!(
                    "created outpost {} serving {}; issue its token with `gatehouse outpost token {}`",
                    cell(&o["name"]),
                    names(&o["providers_obj"], "name"),
                    cell(&o["name"])
                );
            });
        }
        OutpostCommand::Token { client, name } => {
            let c = Client::new(&client)?;
            let o = c
                .find_one("/outposts/instances/", "name", &name, "outpost")
                .await?;
            let t = c
                .post(
                    &format!("/outposts/instances/{}/token/", cell(&o["pk"])),
                    &json!({}),
                )
                .await?;
            c.print(&t, |t| {
                println!(
                    "outpost token for {name} (any earlier one no longer works), shown only now:"
                );
                println!("{}", cell(&t["key"]));
                println!("run: gatehouse outpost --server <this server's URL> --token <the token>");
            });
        }
    }
    Ok(())
}

/// `gatehouse key …`
pub(super) async fn key(command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::List { client } => {
            let c = Client::new(&client)?;
            let keys = c.get("/oauth2/signing_keys/").await?;
            c.print(&keys, |keys| {
                let rows = keys["keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|k| {
                        let state = match (&k["retired"], &k["published_until"]) {
                            (Value::Null, _) => "signing".to_owned(),
                            (_, until) => format!("retired, published until {}", cell(until)),
                        };
                        vec![
                            cell(&k["kid"]),
                            cell(&k["algorithm"]),
                            cell(&k["created"]),
                            state,
                        ]
                    })
                    .collect();
                table(&["KID", "ALGORITHM", "CREATED", "STATE"], rows);
            });
        }
        KeyCommand::Rotate { client, algorithm } => {
            let c = Client::new(&client)?;
            let k = c
                .post(
                    "/oauth2/signing_keys/rotate/",
                    &json!({"algorithm": algorithm}),
                )
                .await?;
            c.print(&k, |k| {
                println!(
                    "{} tokens are now signed by key {}; the previous key stays published until its tokens expire",
                    cell(&k["algorithm"]),
                    cell(&k["kid"])
                );
            });
        }
    }
    Ok(())
}

/// An invitation name derived from the group: lowercase slug plus a timestamp.
fn invitation_name(group: &str) -> String {
    let slug: String = group
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let slug = slug
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    format!(
        "{}-{}",
        if slug.is_empty() { "invite" } else { &slug },
        Utc::now().format("%Y%m%d%H%M%S%3f")
    )
}

/// `gatehouse invite …`
pub(super) async fn invite(command: InviteCommand) -> anyhow::Result<()> {
    match command {
        InviteCommand::Create {
            client,
            group,
            days,
            flow,
            multi_use,
            name,
        } => {
            let c = Client::new(&client)?;
            c.find_one("/core/groups/", "name", &group, "group").await?;
            let mut body = json!({
                "name": name.unwrap_or_else(|| invitation_name(&group)),
                "fixed_data": {"group": group},
                "single_use": !multi_use,
            });
            if let Some(days) = days {
                if days == 0 {
                    bail!("--days must be at least 1");
                }
                body["expires"] = json!(Utc::now() + Duration::days(i64::from(days)));
            }
            if let Some(slug) = flow {
                let f = c
                    .get(&format!("/flows/instances/{}/", url_encode(&slug)))
                    .await?;
                body["flow"] = f["pk"].clone();
            }
            let i = c.post("/stages/invitation/invitations/", &body).await?;
            c.print(&i, |i| {
                if i["link"].as_str().unwrap_or_default().is_empty() {
                    eprintln!(
                        "note: no enrollment flow has an invitation stage yet, so the invitation has no link; \
                         create one (e.g. gatehouse apply -f examples/homelab.yaml), then see `gatehouse invite list`"
                    );
                } else {
                    println!("{}", cell(&i["link"]));
                }
            });
        }
        InviteCommand::List { client } => {
            let c = Client::new(&client)?;
            let mut invitations = c
                .list_all("/stages/invitation/invitations/?ordering=created")
                .await?;
            invitations.extend(
                c.list_all("/stages/invitation/invitations/?ended=true&ordering=created")
                    .await?,
            );
            c.print(&Value::Array(invitations), |list| {
                let rows = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|i| {
                        let used_by: Vec<String> = i["uses"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|u| format!("{} ({})", cell(&u["username"]), cell(&u["used"])))
                            .collect();
                        vec![
                            cell(&i["name"]),
                            cell(&i["fixed_data"]["group"]),
                            cell(&i["state"]),
                            if i["expires"].is_null() {
                                "never".into()
                            } else {
                                cell(&i["expires"])
                            },
                            if i["single_use"] == json!(true) {
                                "single".into()
                            } else {
                                "multi".into()
                            },
                            if used_by.is_empty() {
                                "-".into()
                            } else {
                                used_by.join(", ")
                            },
                            cell(&i["link"]),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "NAME", "GROUP", "STATE", "EXPIRES", "USE", "USED BY", "LINK",
                    ],
                    rows,
                );
            });
        }
        InviteCommand::Revoke { client, invitation } => {
            let c = Client::new(&client)?;
            let pk = if uuid::Uuid::parse_str(&invitation).is_ok() {
                invitation.clone()
            } else {
                cell(
                    &c.find_one(
                        "/stages/invitation/invitations/",
                        "name",
                        &invitation,
                        "invitation",
                    )
                    .await?["pk"],
                )
            };
            c.call(
                Method::DELETE,
                &format!("/stages/invitation/invitations/{pk}/"),
                None,
            )
            .await?;
            println!("revoked invitation {invitation}");
        }
    }
    Ok(())
}

fn print_bindings(indent: &str, bindings: &Value) {
    for b in bindings.as_array().into_iter().flatten() {
        println!(
            "{indent}[{}] {} → {} ({})",
            cell(&b["order"]),
            cell(&b["binding"]),
            cell(&b["result"]),
            cell(&b["reason"])
        );
    }
}

/// `gatehouse flow …`
pub(super) async fn flow(command: FlowCommand) -> anyhow::Result<()> {
    match command {
        FlowCommand::Explain {
            client,
            slug,
            user,
            ip,
        } => {
            let c = Client::new(&client)?;
            let mut path = format!(
                "/flows/instances/{}/explain/?ip={}",
                url_encode(&slug),
                url_encode(&ip)
            );
            if let Some(user) = &user {
                path.push_str(&format!("&user={}", url_encode(user)));
            }
            let e = c.get(&path).await?;
            c.print(&e, |e| {
                let who = e["user"]
                    .as_str()
                    .filter(|u| !u.is_empty())
                    .unwrap_or("an anonymous visitor");
                println!(
                    "flow {} for {who} from {}: {}",
                    cell(&e["flow"]),
                    cell(&e["ip"]),
                    cell(&e["result"])
                );
                print_bindings("  ", &e["bindings"]);
                for s in e["stages"].as_array().into_iter().flatten() {
                    println!(
                        "  stage {} ({}, order {}): {}",
                        cell(&s["stage"]),
                        cell(&s["kind"]),
                        cell(&s["order"]),
                        cell(&s["result"])
                    );
                    print_bindings("    ", &s["bindings"]);
                }
            });
        }
    }
    Ok(())
}
