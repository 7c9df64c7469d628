//! Argon2id hashes and checks in memory the caller lends.
//!
//! Argon2 needs 19 MiB for each hash (the default parameters). Left to itself, the
//! `argon2` crate allocates it for every hash and frees it after; glibc then keeps the
//! freed blocks in its heap arenas, so auth grew by about 19 MiB per hash that ran at
//! once and never gave it back (issue 11). Here the memory is lent: the hash gate
//! ([`crate::hashing::HashGate`]) keeps one block set per hash that may run at once
//! and reuses it, so hashing takes its memory once and holds it steady.

use anyhow::Context;
use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// The memory one hash works in.
pub type Memory = Vec<Block>;

/// Memory for a hash with the default parameters, zeroed.
pub fn memory() -> Memory {
    vec![Block::default(); Params::default().block_count()]
}

/// Argon2id with the crate's default (OWASP) parameters and a random salt, as a PHC
/// string.
pub fn hash(password: &str, memory: &mut Memory) -> anyhow::Result<String> {
    let params = Params::default();
    let salt = argon2::password_hash::try_generate_salt().context("no random salt")?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let blocks = blocks(memory, &params);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, blocks)
        .map_err(|err| anyhow::anyhow!("failed to hash a password: {err}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|err| anyhow::anyhow!("argon2 parameters: {err}"))?,
        salt: Some(Salt::new(&salt).map_err(|err| anyhow::anyhow!("argon2 salt: {err}"))?),
        hash: Some(Output::new(&out).map_err(|err| anyhow::anyhow!("argon2 output: {err}"))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `phc` (any Argon2 variant and
/// parameters; memory grows when a hash asks for more). Compared in constant time.
pub fn verify(password: &str, phc: &str, memory: &mut Memory) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else { return false };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else { return false };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&hash) else { return false };
    let mut out = vec![0u8; expected.len()];
    let blocks = blocks(memory, &params);
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, blocks)
        .is_ok()
        && Output::new(&out).is_ok_and(|computed| &computed == expected)
}

/// The part of `memory` a hash with `params` works in, grown first when too small.
fn blocks<'a>(memory: &'a mut Memory, params: &Params) -> &'a mut [Block] {
    let needed = params.block_count();
    if memory.len() < needed {
        memory.resize(needed, Block::default());
    }
    &mut memory[..needed]
}

#[cfg(test)]
mod tests {
    use argon2::PasswordHasher;

    use super::*;

    #[test]
    fn hashes_made_here_and_by_the_crate_check_both_ways() {
        let mut memory = memory();
        let ours = hash("correct horse", &mut memory).unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");
        assert!(verify("correct horse", &ours, &mut memory));
        assert!(!verify("correct horsf", &ours, &mut memory));
        // The crate's own check agrees with ours, and ours with its hashes.
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon2::PasswordVerifier::verify_password(&Argon2::default(), b"correct horse", &parsed).is_ok());
        let theirs = Argon2::default().hash_password(b"battery staple").unwrap().to_string();
        assert!(verify("battery staple", &theirs, &mut memory));
        assert!(!verify("battery stapler", &theirs, &mut memory));
    }

    #[test]
    fn other_parameters_grow_the_memory_and_garbage_is_refused() {
        let params = Params::new(32 * 1024, 1, 1, None).unwrap();
        let bigger = Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hash_password(b"pw-bigger").unwrap();
        let mut memory = memory();
        assert!(verify("pw-bigger", &bigger.to_string(), &mut memory));
        assert_eq!(memory.len(), 32 * 1024);
        for garbage in ["", "plaintext", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$", "$scrypt$ln=1$salt$hash"] {
            assert!(!verify("x", garbage, &mut memory), "{garbage}");
        }
    }
}
