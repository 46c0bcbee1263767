//! Helpers shared by the unit tests of several modules.

/// Installs certbound's jsonwebtoken provider as the process-wide one, for tests that sign or
/// verify with jsonwebtoken's own functions, as an application or an authorization server does
/// (certbound itself never uses the process-wide provider).
pub(crate) fn install_jose_default() {
    use crate::support::crypto::{jose_provider, JoseProvider};
    // Installed already (by another test of this process, or by the application without a
    // backend feature): the same provider.
    if let JoseProvider::Explicit(provider) = jose_provider().expect("a crypto provider") {
        let _ = provider.install_default();
    }
}

/// A fresh P-256 key pair.
pub(crate) fn p256_key() -> rcgen::KeyPair {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

/// A fresh self-signed certificate (P-256) for the DNS name `name`.
pub(crate) fn self_signed_certificate(name: &str) -> rcgen::Certificate {
    rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .self_signed(&p256_key())
        .unwrap()
}

/// Seeded mutations of `valid` inputs, for "never panics" tests: `rounds` inputs, each a valid
/// one (in turn) with one to four bytes overwritten, cut or inserted (from `inserts`). The same
/// `seed` gives the same inputs on every run.
pub(crate) fn mutations<'a>(
    seed: u64,
    valid: &'a [&'a [u8]],
    inserts: &'a [u8],
    rounds: usize,
) -> impl Iterator<Item = Vec<u8>> + 'a {
    // xorshift64: tiny, seeded, good enough to pick mutations.
    let mut state = seed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..rounds).map(move |round| {
        let mut bytes = valid[round % valid.len()].to_vec();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % bytes.len();
            match next() % 3 {
                0 => bytes[at] = next() as u8,
                1 => bytes.truncate(at),
                _ => bytes.insert(at, inserts[(next() as usize) % inserts.len()]),
            }
            if bytes.is_empty() {
                break;
            }
        }
        bytes
    })
}
