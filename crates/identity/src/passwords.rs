//! Argon2id hashes computed in memory each hashing thread keeps for good.
//! Left to the allocator, each hash's 19 MiB block stayed behind in a heap
//! arena once freed (the allocator raises its large-block threshold after
//! the first free), so RSS grew by a block per hash up to hundreds of MiB;
//! reused per thread, the memory is the threads' count times one block.

use std::cell::RefCell;

use argon2::password_hash::{Output, ParamsString, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};

/// A stored hash asking for more memory than this is refused (ours ask for
/// the default, 19 MiB).
const MOST_BLOCKS: usize = 64 * 1024;

thread_local! {
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

fn compute(argon: &Argon2, password: &[u8], salt: &[u8], out: &mut [u8], blocks: usize) -> bool {
    if blocks > MOST_BLOCKS {
        return false;
    }
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon
            .hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
            .is_ok()
    })
}

/// A PHC string (`$argon2id$v=19$m=...`) for a new password.
pub fn hash(password: &str) -> Result<String, String> {
    let params = Params::default();
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_buf)
        .map_err(|e| e.to_string())?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    if !compute(
        &argon,
        password.as_bytes(),
        salt_bytes,
        &mut out,
        params.block_count(),
    ) {
        return Err("argon2 failed".into());
    }
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

/// True if `password` matches the PHC string `stored`.
pub fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(expected), Some(salt)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
        parsed.hash,
        parsed.salt,
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    let argon = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    if !compute(&argon, password.as_bytes(), salt_bytes, &mut out, blocks) {
        return false;
    }
    // Output compares in constant time.
    Output::new(&out).is_ok_and(|got| got == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    #[test]
    fn hashes_verify_both_ways_with_the_argon2_crate() {
        let ours = hash("correct horse").expect("hash");
        assert!(verify("correct horse", &ours));
        assert!(!verify("wrong horse", &ours));
        let parsed = PasswordHash::new(&ours).expect("phc");
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        // Hashes stored before this module still verify.
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let theirs = Argon2::default()
            .hash_password(b"battery staple", &salt)
            .expect("hash")
            .to_string();
        assert!(verify("battery staple", &theirs));
        assert!(!verify("battery", &theirs));
        assert!(!verify("x", "not a hash"));
    }
}
