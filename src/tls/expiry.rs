//! The notAfter of a certificate, for the `certbound_tls_certificate_expiry_timestamp_seconds`
//! gauge.
//!
//! Neither rustls nor webpki exposes a certificate's validity, and x509-parser is a dependency of
//! the `authorization-server` feature only (with nom, asn1-rs, time and oid-registry behind it).
//! The field sits at a fixed place of RFC 5280's `TBSCertificate`, so a walk of five elements
//! with the `der` crate (already in the graph through `pkcs8`; its decoding of lengths and of
//! `UTCTime` / `GeneralizedTime` is RustCrypto's) finds it without another parser.

use der::asn1::{AnyRef, GeneralizedTime, UtcTime};
use der::{Decode, Reader, SliceReader, Tag, TagNumber, Tagged};

/// The certificate's notAfter as Unix seconds; `None` for DER that is not an X.509 certificate.
pub(crate) fn not_after(cert: &[u8]) -> Option<i64> {
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    let cert = sequence(AnyRef::from_der(cert).ok()?)?;
    let tbs = sequence(AnyRef::decode(&mut SliceReader::new(cert).ok()?).ok()?)?;
    // TBSCertificate ::= SEQUENCE { version [0] EXPLICIT OPTIONAL, serialNumber, signature,
    //                               issuer, validity, ... }
    let mut tbs = SliceReader::new(tbs).ok()?;
    let version = Tag::ContextSpecific {
        constructed: true,
        number: TagNumber::N0,
    };
    if tbs.peek_tag().ok()? == version {
        AnyRef::decode(&mut tbs).ok()?;
    }
    for _serial_signature_issuer in 0..3 {
        AnyRef::decode(&mut tbs).ok()?;
    }
    // Validity ::= SEQUENCE { notBefore Time, notAfter Time }
    let validity = sequence(AnyRef::decode(&mut tbs).ok()?)?;
    let mut validity = SliceReader::new(validity).ok()?;
    AnyRef::decode(&mut validity).ok()?;
    let not_after = AnyRef::decode(&mut validity).ok()?;
    let since_epoch = match not_after.tag() {
        Tag::UtcTime => not_after.decode_as::<UtcTime>().ok()?.to_unix_duration(),
        Tag::GeneralizedTime => not_after
            .decode_as::<GeneralizedTime>()
            .ok()?
            .to_unix_duration(),
        _ => return None,
    };
    i64::try_from(since_epoch.as_secs()).ok()
}

fn sequence(any: AnyRef<'_>) -> Option<&[u8]> {
    (any.tag() == Tag::Sequence).then(|| any.value())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_after_is_read_from_a_utc_time_and_a_generalized_time() {
        // Minimal TBSCertificate shapes: version, serial, algorithm, issuer, validity, and the
        // outer SEQUENCE's two trailing fields left out (the walk stops at validity).
        fn cert(not_after: &[u8]) -> Vec<u8> {
            let not_before = [
                &[0x17, 13][..],
                b"250101000000Z", // UTCTime 2025-01-01
            ]
            .concat();
            let validity = [
                &[0x30, (not_before.len() + not_after.len()) as u8][..],
                &not_before,
                not_after,
            ]
            .concat();
            let fields = [
                &[0xa0, 3, 0x02, 1, 2][..], // [0] { INTEGER 2 }
                &[0x02, 1, 1],              // serial 1
                &[0x30, 0],                 // algorithm
                &[0x30, 0],                 // issuer
                &validity,
            ]
            .concat();
            let tbs = [&[0x30, fields.len() as u8][..], &fields].concat();
            [&[0x30, tbs.len() as u8][..], &tbs].concat()
        }
        let utc = [&[0x17, 13][..], b"300101000000Z"].concat();
        assert_eq!(not_after(&cert(&utc)), Some(1_893_456_000));
        let generalized = [&[0x18, 15][..], b"20500101000000Z"].concat();
        assert_eq!(not_after(&cert(&generalized)), Some(2_524_608_000));
        assert_eq!(not_after(b"\x30\x00"), None);
        assert_eq!(not_after(b"not der"), None);
    }

    #[test]
    fn not_after_of_a_certificate_made_by_rcgen() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 5, 6);
        let cert = params.self_signed(&key).unwrap();
        // 2031-05-06T00:00:00Z
        assert_eq!(not_after(cert.der()), Some(1_935_792_000));
    }
}
