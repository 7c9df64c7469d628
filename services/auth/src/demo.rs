//! The demo accounts (`user1`..`user4`, passwords `password1`..`password4`), whose
//! hashes are those of `db/database.csv`, the file `weaprous up` and the compose
//! profile `demo` load. Their passwords are public, so they belong on development
//! machines only.
//!
//! A user counts as a demo account while the store holds exactly the demo hash for
//! it: loaded from the demo file (`weaprous up`, `auth import-csv db/database.csv`),
//! with its public password unchanged. The log-in page shows the demo accounts only
//! when there are some ([`present`]); a deployment without them shows none.

use crate::store::UserStore;

/// Name, public password and the stored hash of each demo account.
pub const ACCOUNTS: [(&str, &str, &str); 4] = [
    (
        "user1",
        "password1",
        "$argon2id$v=19$m=19456,t=2,p=1$oMoQbRYJpJKZvUgFpWCRGA$FCyAVien2BhWgfC4i0LtG550iJBTnuNCTNzYp5N7oeU",
    ),
    (
        "user2",
        "password2",
        "$argon2id$v=19$m=19456,t=2,p=1$UNCApVPVbv2mmmbshDznBw$RxoQoMhKsuh8W9I+z2GK1VvIrd43TAOhNhpsrRAOeV0",
    ),
    (
        "user3",
        "password3",
        "$argon2id$v=19$m=19456,t=2,p=1$9SZ2BM+rpq+Mv10GJNZVoA$0uju8Ronpo7uW55AdqY9PYG6nzzDudirfBjy7mF8lvY",
    ),
    (
        "user4",
        "password4",
        "$argon2id$v=19$m=19456,t=2,p=1$gssZuRn6TE5Myd9l+ubmHQ$NQ4wWQxQ8RLB9aFEk0+FplFAnKapp0hdyGWBHBHM4Yc",
    ),
];

/// The demo accounts that the store holds with their public passwords, as
/// `(name, password)`.
pub async fn present(users: &UserStore) -> anyhow::Result<Vec<(&'static str, &'static str)>> {
    let mut present = Vec::new();
    for (name, password, hash) in ACCOUNTS {
        if users.stored_hash(name).await?.as_deref() == Some(hash) {
            present.push((name, password));
        }
    }
    Ok(present)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_accounts_are_those_of_the_demo_file() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../db/database.csv");
        let text = std::fs::read_to_string(file).unwrap();
        let lines: Vec<String> = text.lines().skip(1).map(str::to_owned).collect();
        let expected: Vec<String> = ACCOUNTS.iter().map(|(name, _, hash)| format!("{name},\"{hash}\"")).collect();
        assert_eq!(lines, expected);
        for (_, password, hash) in ACCOUNTS {
            assert!(crate::users::verify_password(password, hash), "the public password of {hash}");
        }
    }
}
