//! The data directory and the files in it are for the service's own user
//! only: `identity.db` holds password hashes, every database holds
//! customers' addresses, and key files sign tokens. Created so from the
//! start (no moment in which another user could open them), and put right
//! at every start where an older version left them readable.

use std::io;
use std::path::Path;

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

/// Owner only: read, write, enter.
pub const DIR_MODE: u32 = 0o700;
/// Owner only: read, write.
pub const FILE_MODE: u32 = 0o600;

/// Creates the data directory (and missing parents) owner-only, and makes
/// an existing one owner-only.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(DIR_MODE);
    builder.create(dir)?;
    #[cfg(unix)]
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))?;
    Ok(())
}

/// Creates missing parents of a file owner-only, leaving existing ones
/// alone: a database path may be anywhere (`/tmp/x.db`), and its parent
/// is not ours to change.
pub fn private_parents(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            builder.mode(DIR_MODE);
            builder.create(dir)
        }
        _ => Ok(()),
    }
}

/// Makes an SQLite database file owner-only before SQLite opens it: a
/// missing one is created empty with that mode (SQLite gives its `-wal`
/// and `-shm` files the database file's mode), an existing one and its
/// companions are changed to it.
pub fn private_database(path: &Path) -> io::Result<()> {
    private_parents(path)?;
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    options.mode(FILE_MODE);
    drop(options.open(path)?);
    for companion in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(companion);
        restrict(Path::new(&name))?;
    }
    Ok(())
}

/// Writes a secret (a key) to a new owner-only file, replacing any.
pub fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.create(true).write(true).truncate(true);
    #[cfg(unix)]
    options.mode(FILE_MODE);
    let mut file = options.open(path)?;
    restrict(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// A file's permission bits (`0o600`), to check what is on disk.
#[cfg(unix)]
pub fn mode(path: &Path) -> io::Result<u32> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

fn restrict(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => other?,
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        super::mode(path).expect("metadata")
    }

    #[test]
    fn a_new_and_an_old_data_directory_end_owner_only() {
        let tmp = tempfile::tempdir().expect("tmp");
        let fresh = tmp.path().join("a/b/data");
        private_dir(&fresh).expect("create");
        assert_eq!(mode(&fresh), DIR_MODE);
        let old = tmp.path().join("old");
        std::fs::create_dir(&old).expect("create");
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let db = old.join("identity.db");
        std::fs::write(&db, b"").expect("write");
        std::fs::write(old.join("identity.db-wal"), b"").expect("write");
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        private_dir(&old).expect("fix");
        private_database(&db).expect("fix");
        assert_eq!(mode(&old), DIR_MODE);
        assert_eq!(mode(&db), FILE_MODE);
        assert_eq!(mode(&old.join("identity.db-wal")), FILE_MODE);
        let new_db = fresh.join("order.db");
        private_database(&new_db).expect("create");
        assert_eq!(mode(&new_db), FILE_MODE);
        let key = fresh.join("key");
        write_private(&key, b"secret").expect("write");
        assert_eq!(mode(&key), FILE_MODE);
    }
}
