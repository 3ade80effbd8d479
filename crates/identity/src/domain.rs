//! Identity's rules, with no storage and no HTTP: what a username and a
//! password must be, which role has a store, what a login answers, and who
//! may disable whom. The API and the `users` command apply the same ones.
//! Throttling failed logins has its own module, [`crate::throttle`].

use contracts::Role;

use crate::error::IdentityError;

/// Usernames are 3 to 32 lower-case letters, digits, `_` or `-`; what the
/// user typed is trimmed and lower-cased.
pub fn normalize_username(name: &str) -> Result<String, IdentityError> {
    let username = name.trim().to_lowercase();
    let valid = (3..=32).contains(&username.len())
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(username)
    } else {
        Err(IdentityError::Invalid(
            "username must be 3 to 32 letters, digits, '_' or '-'",
        ))
    }
}

/// Passwords are 8 to 200 characters (and at most 200 bytes: the hash's
/// cost must not grow with what a client sends).
pub fn check_password(password: &str) -> Result<(), IdentityError> {
    if password.chars().count() < 8 || password.len() > 200 {
        return Err(IdentityError::Invalid(
            "password must be 8 to 200 characters",
        ));
    }
    Ok(())
}

/// An owner runs exactly one store; nobody else has one.
pub fn check_store(role: Role, store_id: Option<i64>) -> Result<(), IdentityError> {
    match (role, store_id) {
        (Role::Owner, Some(id)) if id > 0 => Ok(()),
        (Role::Owner, _) => Err(IdentityError::Invalid(
            "an owner needs the id of the store they run (storeId)",
        )),
        (_, None) => Ok(()),
        (_, Some(_)) => Err(IdentityError::Invalid(
            "only an owner has a store (storeId)",
        )),
    }
}

/// What a login with a password answers: a wrong password and an unknown
/// name are the same refusal, and only whoever knows the password learns
/// that the account is disabled.
pub fn login(known: bool, password_matches: bool, disabled: bool) -> Result<(), IdentityError> {
    if !(known && password_matches) {
        return Err(IdentityError::WrongCredentials);
    }
    if disabled {
        return Err(IdentityError::Disabled);
    }
    Ok(())
}

/// An admin may disable any account but their own: the last admin could
/// otherwise lock everyone out.
pub fn may_disable(admin_id: i64, user_id: i64) -> Result<(), IdentityError> {
    if admin_id == user_id {
        return Err(IdentityError::Invalid(
            "an admin cannot disable their own account",
        ));
    }
    Ok(())
}

/// Changing one's own password needs the current one; an admin sets
/// anyone's without it (`PUT /auth/users/{id}/password`).
pub fn own_password_change(old_password_matches: bool) -> Result<(), IdentityError> {
    if old_password_matches {
        Ok(())
    } else {
        Err(IdentityError::Invalid("the current password is wrong"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_passwords_and_stores_follow_the_rules() {
        assert_eq!(normalize_username(" Kim_1 ").expect("valid"), "kim_1");
        assert!(normalize_username("a").is_err());
        assert!(normalize_username("bad name").is_err());
        assert!(normalize_username(&"a".repeat(33)).is_err());
        assert!(check_password("short").is_err());
        assert!(check_password("long enough").is_ok());
        assert!(check_password(&"é".repeat(101)).is_err(), "202 bytes");
        assert!(check_store(Role::Owner, Some(3)).is_ok());
        assert!(check_store(Role::Owner, Some(0)).is_err());
        assert!(check_store(Role::Owner, None).is_err());
        assert!(check_store(Role::Rider, Some(3)).is_err());
        assert!(check_store(Role::Admin, None).is_ok());
    }

    /// Given an account (known or not, disabled or not), when a password is
    /// tried, then the answer.
    #[test]
    fn given_an_account_when_a_password_is_tried_then_the_answer() {
        let wrong =
            |r: Result<(), IdentityError>| matches!(r, Err(IdentityError::WrongCredentials));
        assert!(login(true, true, false).is_ok());
        assert!(wrong(login(true, false, false)));
        assert!(wrong(login(false, false, false)));
        // A disabled account says so only to whoever knows its password.
        assert!(wrong(login(true, false, true)));
        assert!(matches!(
            login(true, true, true),
            Err(IdentityError::Disabled)
        ));
    }

    #[test]
    fn an_admin_disables_others_but_not_themselves() {
        assert!(may_disable(5, 2).is_ok());
        assert!(may_disable(5, 5).is_err());
    }

    #[test]
    fn ones_own_password_changes_only_with_the_current_one() {
        assert!(own_password_change(true).is_ok());
        assert!(matches!(
            own_password_change(false),
            Err(IdentityError::Invalid("the current password is wrong"))
        ));
    }
}
