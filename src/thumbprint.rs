//! [`CertThumbprint`]: the RFC 8705 §3.1 `x5t#S256` certificate thumbprint.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Length of a SHA-256 `x5t#S256` value in base64url without padding.
const ENCODED_LEN: usize = 43;

/// The SHA-256 thumbprint of a DER certificate (`x5t#S256`, RFC 8705 §3.1).
///
/// Equality is constant-time. `Display` gives the canonical base64url form.
///
/// The thumbprint is the base64url encoding, without padding, of the SHA-256 digest of the DER
/// encoding of the client's leaf certificate. Tokens carry it in their `cnf` claim; the resource
/// server computes it from the certificate presented on the TLS connection and compares the two.
///
/// Parsing is strict: exactly 43 characters of the base64url alphabet whose last character has
/// zero trailing bits. A lenient decoder would accept several spellings of one digest (RFC 8705
/// Figure 2's example value is such a non-canonical spelling); this type accepts only the
/// canonical one.
///
/// # Example
/// ```
/// use certbound::CertThumbprint;
///
/// let tp: CertThumbprint = "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0".parse().unwrap();
/// assert_eq!(tp.to_string(), "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0");
/// // Padding, the standard alphabet and non-canonical trailing bits are all refused.
/// assert!("A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0=".parse::<CertThumbprint>().is_err());
/// assert!("bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2".parse::<CertThumbprint>().is_err());
/// ```
#[derive(Clone, Copy)]
pub struct CertThumbprint([u8; 32]);

impl CertThumbprint {
    /// Computes the thumbprint of a DER-encoded certificate.
    pub fn from_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// Wraps a SHA-256 digest that was computed elsewhere.
    pub const fn from_digest(digest: [u8; 32]) -> Self {
        Self(digest)
    }

    /// Parses a `cnf` claim value strictly (see [`CertThumbprint`]).
    ///
    /// # Errors
    /// [`InvalidThumbprint`] when the value is not exactly the canonical base64url (no padding)
    /// encoding of 32 bytes.
    pub fn parse(value: &str) -> Result<Self, InvalidThumbprint> {
        let bytes = value.as_bytes();
        if bytes.len() != ENCODED_LEN {
            return Err(InvalidThumbprint(()));
        }
        // The base64 engine checks the alphabet, the absence of padding and (by default)
        // that the trailing bits of the last symbol are zero, i.e. that the input is canonical.
        // The buffer is larger than 32 bytes because the engine's size estimate is conservative.
        let mut buf = [0u8; 36];
        match URL_SAFE_NO_PAD.decode_slice(bytes, &mut buf) {
            Ok(32) => {
                let mut digest = [0u8; 32];
                digest.copy_from_slice(&buf[..32]);
                Ok(Self(digest))
            }
            _ => Err(InvalidThumbprint(())),
        }
    }

    /// The raw 32-byte digest.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest as lowercase hex (the form Envoy's XFCC `Hash=` carries).
    pub fn to_hex(&self) -> String {
        let mut hex = String::with_capacity(64);
        crate::support::encoding::push_hex(&mut hex, &self.0, false);
        hex
    }
}

impl PartialEq for CertThumbprint {
    fn eq(&self, other: &Self) -> bool {
        // Constant time: a timing side channel must not reveal how much of a thumbprint matched.
        crate::support::ct::eq(&self.0, &other.0)
    }
}

impl Eq for CertThumbprint {}

impl fmt::Display for CertThumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; ENCODED_LEN];
        let n = URL_SAFE_NO_PAD
            .encode_slice(self.0, &mut buf)
            .map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for CertThumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A thumbprint is public (it is in the certificate's hash and the token's cnf), not secret.
        write!(f, "CertThumbprint({self})")
    }
}

impl FromStr for CertThumbprint {
    type Err = InvalidThumbprint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A `x5t#S256` value that is not the canonical base64url encoding of a SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidThumbprint(());

impl fmt::Display for InvalidThumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid x5t#S256 thumbprint")
    }
}

impl std::error::Error for InvalidThumbprint {}

#[cfg(test)]
mod tests {
    use super::*;

    const APPENDIX_A_PEM: &str = include_str!("../tests/data/rfc8705-appendix-a.pem");
    const APPENDIX_A_X5T: &str = "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0";
    const APPENDIX_A_HEX: &str = "0380ed2f626650c840b2f263e6d2b29fae12ab39ae5db32b25ad27efad72e6fd";

    fn appendix_a_der() -> Vec<u8> {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_slice(APPENDIX_A_PEM.as_bytes())
            .expect("vector parses")
            .to_vec()
    }

    #[test]
    fn rfc8705_appendix_a_vector_matches() {
        let tp = CertThumbprint::from_der(&appendix_a_der());
        assert_eq!(tp.to_string(), APPENDIX_A_X5T);
        assert_eq!(tp.to_hex(), APPENDIX_A_HEX);
        assert_eq!(tp, APPENDIX_A_X5T.parse().unwrap());
    }

    #[test]
    fn non_canonical_trailing_bits_are_refused() {
        // RFC 8705 Figure 2's value: its last symbol carries non-zero trailing bits.
        assert!(CertThumbprint::parse("bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2").is_err());
        // Its canonical twin parses; the two are never treated as one value.
        assert!(CertThumbprint::parse("bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg0").is_ok());
    }

    #[test]
    fn padding_standard_alphabet_and_wrong_length_are_refused() {
        let good = CertThumbprint::from_der(b"x").to_string();
        assert!(CertThumbprint::parse(&good).is_ok());
        assert!(CertThumbprint::parse(&format!("{good}=")).is_err());
        assert!(CertThumbprint::parse(&good[..42]).is_err());
        assert!(CertThumbprint::parse(&format!("{good}A")).is_err());
        assert!(CertThumbprint::parse("").is_err());
        // '+' and '/' belong to the standard alphabet, not base64url.
        let standard: String = good
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '/',
                c => c,
            })
            .collect();
        if standard != good {
            assert!(CertThumbprint::parse(&standard).is_err());
        }
        assert!(CertThumbprint::parse("A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v+").is_err());
        assert!(CertThumbprint::parse("A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v/").is_err());
        // Non-ASCII input of the right byte length.
        assert!(CertThumbprint::parse("ééééééééééééééééééééé.").is_err());
    }

    #[test]
    fn equality_distinguishes_digests() {
        let a = CertThumbprint::from_der(b"a");
        let b = CertThumbprint::from_der(b"b");
        assert_ne!(a, b);
        assert_eq!(a, CertThumbprint::from_digest(*a.as_bytes()));
    }
}
