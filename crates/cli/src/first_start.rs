//! What a start says about accounts: the demo accounts when it made them,
//! or how to create the first admin when there is none.

use platform::Db;

/// The all-in-one seeds the demo on `--demo`, or when only this machine can
/// reach it (a loopback address), unless `--no-demo`.
pub fn all_in_one_seeds(demo: bool, no_demo: bool, listen: std::net::SocketAddr) -> bool {
    !no_demo && (demo || listen.ip().is_loopback())
}

/// Lines to print once listening: the demo accounts if `seeded`, else a
/// hint to create the first admin if there is none; `target` is how the
/// `users` command reaches this database (`--data-dir DIR` or
/// `--database-url URL`).
pub async fn account_notes(db: &Db, seeded: bool, target: &str) -> anyhow::Result<Vec<String>> {
    if seeded {
        let names: Vec<&str> = identity::DEMO_USERS.iter().map(|u| u.username).collect();
        return Ok(vec![format!(
            "demo accounts created (password = username, for trying out only): {}",
            names.join(", ")
        )]);
    }
    let admins = identity::storage::admins(db)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    if admins > 0 {
        return Ok(Vec::new());
    }
    Ok(vec![format!(
        "no admin account yet: create the first one with `hanwha-delivery users add --role admin NAME {target}` (it reads the password from stdin)"
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_data_only_on_request_or_on_loopback() {
        let local = "127.0.0.1:8080".parse().expect("addr");
        let public = "0.0.0.0:8080".parse().expect("addr");
        assert!(all_in_one_seeds(false, false, local));
        assert!(!all_in_one_seeds(false, true, local));
        assert!(!all_in_one_seeds(false, false, public));
        assert!(all_in_one_seeds(true, false, public));
    }
}
