//! Files of the embedded SQLite default: the database private to the app's user whatever the
//! umask, and the key generated beside it when `SECRET_KEYS` is unset.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

use crate::keys::KeyRing;

fn in_memory(db: &Path) -> bool {
    db.as_os_str().is_empty() || db == Path::new(":memory:")
}

/// Creates the database's folder (`0700`) and file (`0600`) before SQLite does, because SQLite
/// creates files with the process umask (often world-readable `0644`) and gives its `-wal` and
/// `-shm` files the database file's mode. An existing file is narrowed to `0600`; an existing
/// folder others can read is only reported, since it may be shared (`/tmp`).
pub fn private_database_file(db: &Path) -> Result<(), String> {
    if in_memory(db) {
        return Ok(());
    }
    let problem = |what: &str, path: &Path, e: std::io::Error| {
        format!("DATABASE_URL: cannot {what} {}: {e}", path.display())
    };
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        if dir.exists() {
            warn_if_others_can_read(dir);
        } else {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            builder.mode(0o700);
            builder
                .create(dir)
                .map_err(|e| problem("create folder", dir, e))?;
        }
    }
    let mut options = fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(db).map_err(|e| problem("create", db, e))?;
    for file in [db.to_path_buf(), suffixed(db, "-wal"), suffixed(db, "-shm")] {
        if file.exists() {
            make_private(&file).map_err(|e| problem("restrict the mode of", &file, e))?;
        }
    }
    Ok(())
}

/// The key ring from the key file beside `db`, made (one random key, `0600`) if there is none.
/// Replicas racing to make it agree on one: the file appears whole or not at all.
pub fn load_or_create(db: &Path) -> Result<KeyRing, String> {
    if in_memory(db) {
        tracing::warn!(
            "SECRET_KEYS is not set and the database is in memory: using a key that lives as \
             long as this process"
        );
        return KeyRing::parse(&KeyRing::generate_key());
    }
    let path = key_path(db);
    if !path.exists() {
        create_atomically(&path, &KeyRing::generate_key())
            .map_err(|e| format!("SECRET_KEYS: is not set, and {e}"))?;
        tracing::info!(
            path = %path.display(),
            "SECRET_KEYS is not set: generated a key into this file (mode 0600); keep it with the \
             database, whose tokens it seals, or set SECRET_KEYS instead"
        );
    }
    make_private(&path).map_err(|e| {
        format!(
            "SECRET_KEYS: cannot restrict the mode of {}: {e}",
            path.display()
        )
    })?;
    let text = fs::read_to_string(&path).map_err(|e| {
        format!(
            "SECRET_KEYS: is not set, and {} cannot be read: {e}",
            path.display()
        )
    })?;
    KeyRing::parse(text.trim()).map_err(|e| {
        format!(
            "SECRET_KEYS: is not set, and {} is not a key file ({e}); remove it to have a new key \
             made (signed-in people then sign in again) or set SECRET_KEYS",
            path.display()
        )
    })
}

/// `data/profiles.db` keeps its key in `data/profiles.db.key`.
pub fn key_path(db: &Path) -> PathBuf {
    suffixed(db, ".key")
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn create_atomically(path: &Path, key: &str) -> Result<(), String> {
    let temp = suffixed(path, &format!(".{:016x}.tmp", rand::random::<u64>()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let written = options
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(format!("{key}\n").as_bytes())?;
            file.sync_all()
        })
        // A hard link fails if the name exists, unlike a rename: the first replica's key wins.
        .and_then(|()| match fs::hard_link(&temp, path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            other => other,
        });
    let _ = fs::remove_file(&temp);
    written.map_err(|e| format!("{} cannot be created: {e}", path.display()))
}

#[cfg(unix)]
fn make_private(path: &Path) -> std::io::Result<()> {
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        tracing::warn!(path = %path.display(), "narrowed the file's mode to 0600");
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn warn_if_others_can_read(dir: &Path) {
    if let Ok(meta) = fs::metadata(dir)
        && meta.permissions().mode() & 0o007 != 0
    {
        tracing::warn!(
            folder = %dir.display(),
            "the database's folder is open to every user of this machine; the database file is \
             private (0600), but consider a folder only the app's user can enter"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_others_can_read(_dir: &Path) {}

/// With `SECRET_KEYS` set, a key file beside the database (made by an earlier start without it)
/// is not read: whatever was sealed with a key only it holds no longer opens. Says so at start,
/// naming the fix, when `keys` lacks any key of that file.
pub fn warn_if_ignored(db: &Path, keys: &KeyRing) {
    if let Some(warning) = ignored_key_file(db, keys) {
        tracing::warn!("{warning}");
    }
}

fn ignored_key_file(db: &Path, keys: &KeyRing) -> Option<String> {
    if in_memory(db) {
        return None;
    }
    let path = key_path(db);
    let text = fs::read_to_string(&path).ok()?;
    let file_keys = KeyRing::parse(text.trim()).ok()?;
    if keys.contains_all(&file_keys) {
        return None;
    }
    Some(format!(
        "SECRET_KEYS is set, so the key file {} is not read, and SECRET_KEYS lacks its key (id \
         {}): sessions and revocations sealed with it do not open (signed-in pages answer 503); \
         add the file's content to SECRET_KEYS, last, until those sessions have expired, then \
         delete the file",
        path.display(),
        file_keys.ids().join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db() -> PathBuf {
        std::env::temp_dir()
            .join(format!("profiles-key-file-{}", rand::random::<u64>()))
            .join("db.sqlite")
    }

    #[test]
    fn a_key_file_that_secret_keys_would_ignore_is_reported_with_its_key_id() {
        let db = temp_db();
        private_database_file(&db).expect("db file");
        let from_file = load_or_create(&db).expect("key file");
        let other = KeyRing::parse(&KeyRing::generate_key()).expect("key");
        let warning = ignored_key_file(&db, &other).expect("warned");
        assert!(warning.contains(&from_file.ids()[0]), "{warning}");
        assert!(warning.contains("SECRET_KEYS"), "{warning}");
        let text = fs::read_to_string(key_path(&db)).expect("read");
        let both =
            KeyRing::parse(&format!("{},{}", KeyRing::generate_key(), text.trim())).expect("keys");
        assert_eq!(ignored_key_file(&db, &both), None, "listed: nothing to say");
        assert_eq!(
            ignored_key_file(&temp_db(), &other),
            None,
            "no file: nothing to say"
        );
    }
}
