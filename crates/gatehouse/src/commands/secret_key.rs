//! `gatehouse secret-key rotate`: moves every sealed secret in the database from the current
//! secret key to a new one, offline, in one transaction (the store's [`Store::rotate_key`]),
//! then puts the new key where the servers will read it.
//!
//! Order matters, so that no step leaves secrets no key file opens: the new key is written to
//! its file first, the database is re-sealed second, and only then does the new key replace
//! the old key file (which is kept as `<file>.old`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use gatehouse_sealing::SecretKey;
use gatehouse_store::Store;

use crate::cli::RotateArgs;
use crate::config::{self, SecretKeySource};

/// Where the new key comes from and where it goes afterwards.
enum NewKey {
    /// `GATEHOUSE_NEW_SECRET_KEY`: the operator deploys it themselves.
    Given(SecretKey),
    /// `--new-key-file`: read, or created with a fresh key.
    File(SecretKey, PathBuf),
    /// A fresh key staged next to the current key file, swapped in after the rotation.
    Replace {
        key: SecretKey,
        staged: PathBuf,
        current: PathBuf,
    },
}

impl NewKey {
    fn key(&self) -> &SecretKey {
        match self {
            NewKey::Given(key) | NewKey::File(key, _) | NewKey::Replace { key, .. } => key,
        }
    }
}

/// Runs `secret-key rotate`.
pub(super) async fn rotate(args: RotateArgs) -> anyhow::Result<()> {
    let settings = config::resolve(&args.serve)?;
    crate::serve::init_tracing(settings.log_format);
    let old = settings.secret_key.load_existing()?;
    let new = new_key(&settings.secret_key, args.new_key_file.as_deref())?;
    if new.key().id() == old.id() {
        anyhow::bail!("the new secret key is the current one; give a different key (or none, to have one generated)");
    }
    let store = crate::serve::open_store(&settings, Arc::clone(&old)).await?;
    let pending = store.pending_migrations().await?;
    if !pending.is_empty() {
        anyhow::bail!(
            "{} migration(s) pending: {pending:?}; run `gatehouse migrate` (or start the server once) first",
            pending.len()
        );
    }
    let moved = rotate_store(&store, new.key()).await;
    store.close().await;
    let moved = match moved {
        Ok(moved) => moved,
        Err(e) => {
            // Nothing was re-sealed, so a staged key would only block the next attempt.
            if let NewKey::Replace { staged, .. } = &new {
                let _ = std::fs::remove_file(staged);
            }
            return Err(e);
        }
    };
    match &new {
        NewKey::Given(key) => println!(
            "re-sealed {moved} secret(s) with secret key {}; set GATEHOUSE_SECRET_KEY to the new key on every server before starting them",
            key.id()
        ),
        NewKey::File(key, path) => println!(
            "re-sealed {moved} secret(s) with secret key {} from {}; give that key to every server (GATEHOUSE_SECRET_KEY or --secret-key-file) before starting them",
            key.id(),
            path.display()
        ),
        NewKey::Replace {
            key,
            staged,
            current,
        } => {
            let kept = beside(current, "old");
            std::fs::rename(current, &kept).with_context(|| {
                format!("re-sealed {moved} secret(s) with the key in {}, but could not move the old key file {} aside: rename it yourself and put the new key in its place", staged.display(), current.display())
            })?;
            std::fs::rename(staged, current).with_context(|| {
                format!("re-sealed {moved} secret(s) with the key in {}, but could not move it to {}: do so yourself", staged.display(), current.display())
            })?;
            println!(
                "re-sealed {moved} secret(s) with secret key {}, now in {} (the old key is in {}; delete it once a new backup is taken); copy the new key to every replica",
                key.id(),
                current.display(),
                kept.display()
            );
        }
    }
    Ok(())
}

async fn rotate_store(store: &Store, new: &SecretKey) -> anyhow::Result<u64> {
    store
        .rotate_key(new)
        .await
        .context("re-sealing the stored secrets (nothing was changed)")
}

/// The new key, as given or freshly generated (and then written to its file before use).
fn new_key(current: &SecretKeySource, file: Option<&Path>) -> anyhow::Result<NewKey> {
    if let Ok(text) = std::env::var("GATEHOUSE_NEW_SECRET_KEY") {
        if !text.is_empty() {
            let key = SecretKey::from_text(&text)
                .map_err(|e| anyhow::anyhow!("GATEHOUSE_NEW_SECRET_KEY: {e}"))?;
            return Ok(NewKey::Given(key));
        }
    }
    if let Some(path) = file {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => fresh(path)?,
            Err(e) => anyhow::bail!("cannot read the new key file {}: {e}", path.display()),
        };
        let key = SecretKey::from_text(&text)
            .map_err(|e| anyhow::anyhow!("new key file {}: {e}", path.display()))?;
        return Ok(NewKey::File(key, path.to_owned()));
    }
    match current {
        SecretKeySource::Given(_) => anyhow::bail!(
            "the current key comes from GATEHOUSE_SECRET_KEY: give the new one in GATEHOUSE_NEW_SECRET_KEY (e.g. `openssl rand -base64 32`) or name a file for it with --new-key-file"
        ),
        SecretKeySource::File(path) => {
            let staged = beside(path, "new");
            if staged.exists() {
                anyhow::bail!(
                    "{} exists (left by an earlier rotation?): if that rotation finished, it holds the key to use; otherwise delete it and run again",
                    staged.display()
                );
            }
            let text = fresh(&staged)?;
            let key = SecretKey::from_text(&text)?;
            Ok(NewKey::Replace {
                key,
                staged,
                current: path.clone(),
            })
        }
    }
}

/// `<path>.<suffix>`.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// Writes a fresh key to `path` (owner-only) and returns it.
fn fresh(path: &Path) -> anyhow::Result<String> {
    let text = SecretKey::generate_text()?;
    config::write_private(path, &text)
        .with_context(|| format!("cannot write the new secret key to {}", path.display()))?;
    Ok(text)
}
