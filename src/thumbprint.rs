//! The two SHA-256 thumbprints a token's `cnf` claim binds it with: [`CertThumbprint`]
//! (RFC 8705 §3.1 `x5t#S256`, a client certificate) and [`JwkThumbprint`] (RFC 9449 §6 `jkt`,
//! the RFC 7638 thumbprint of a DPoP key). Both parse strictly and compare in constant time.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

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
        Self(crate::support::sha256::sha256(der))
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
        parse_digest(value).map(Self)
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
        write_digest(&self.0, f)
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

/// Parses the canonical base64url (no padding) encoding of a SHA-256 digest.
fn parse_digest(value: &str) -> Result<[u8; 32], InvalidThumbprint> {
    let bytes = value.as_bytes();
    if bytes.len() != ENCODED_LEN {
        return Err(InvalidThumbprint(()));
    }
    // The base64 engine checks the alphabet, the absence of padding and (by default) that the
    // trailing bits of the last symbol are zero, i.e. that the input is canonical. The buffer is
    // larger than 32 bytes because the engine's size estimate is conservative.
    let mut buf = [0u8; 36];
    match URL_SAFE_NO_PAD.decode_slice(bytes, &mut buf) {
        Ok(32) => {
            let mut digest = [0u8; 32];
            digest.copy_from_slice(&buf[..32]);
            Ok(digest)
        }
        _ => Err(InvalidThumbprint(())),
    }
}

fn write_digest(digest: &[u8; 32], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut buf = [0u8; ENCODED_LEN];
    let n = URL_SAFE_NO_PAD
        .encode_slice(digest, &mut buf)
        .map_err(|_| fmt::Error)?;
    f.write_str(std::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?)
}

/// The RFC 7638 SHA-256 thumbprint of a DPoP public key: the `jkt` of a DPoP-bound token's
/// `cnf` claim (RFC 9449 §6.1).
///
/// Equality is constant-time. `Display` gives the canonical base64url form. Parsing is as strict
/// as [`CertThumbprint`]'s: exactly the canonical base64url encoding of 32 bytes.
///
/// # Example
/// ```
/// use certbound::JwkThumbprint;
///
/// // RFC 7638 §3.1's example key.
/// let jkt: JwkThumbprint = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs".parse().unwrap();
/// assert_eq!(jkt.to_string(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
/// assert!("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs=".parse::<JwkThumbprint>().is_err());
/// ```
#[derive(Clone, Copy)]
pub struct JwkThumbprint([u8; 32]);

impl JwkThumbprint {
    /// Wraps a SHA-256 digest of a key's RFC 7638 canonical JSON.
    pub const fn from_digest(digest: [u8; 32]) -> Self {
        Self(digest)
    }

    /// Hashes a key's RFC 7638 canonical JSON (its required members, sorted, no whitespace).
    pub(crate) fn of_canonical_json(json: &[u8]) -> Self {
        Self(crate::support::sha256::sha256(json))
    }

    /// Parses a `jkt` value strictly.
    ///
    /// # Errors
    /// [`InvalidThumbprint`] when the value is not exactly the canonical base64url (no padding)
    /// encoding of 32 bytes.
    pub fn parse(value: &str) -> Result<Self, InvalidThumbprint> {
        parse_digest(value).map(Self)
    }

    /// The raw 32-byte digest.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for JwkThumbprint {
    fn eq(&self, other: &Self) -> bool {
        crate::support::ct::eq(&self.0, &other.0)
    }
}

impl Eq for JwkThumbprint {}

impl fmt::Display for JwkThumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_digest(&self.0, f)
    }
}

impl fmt::Debug for JwkThumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Public: it is in the token's cnf and derived from the public key.
        write!(f, "JwkThumbprint({self})")
    }
}

impl FromStr for JwkThumbprint {
    type Err = InvalidThumbprint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A `x5t#S256` or `jkt` value that is not the canonical base64url encoding of a SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidThumbprint(());

impl fmt::Display for InvalidThumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid SHA-256 thumbprint (x5t#S256 or jkt)")
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
    fn debug_shows_the_public_thumbprint_and_the_error_says_what_is_wrong() {
        let tp = CertThumbprint::from_der(&appendix_a_der());
        assert_eq!(
            format!("{tp:?}"),
            format!("CertThumbprint({APPENDIX_A_X5T})")
        );
        let error = CertThumbprint::parse("not a thumbprint").unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid SHA-256 thumbprint (x5t#S256 or jkt)"
        );
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
