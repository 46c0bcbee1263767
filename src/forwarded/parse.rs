//! Parsers of the forwarded-certificate header formats. Each takes the raw header value and
//! returns the certificate, or why the value is unusable (fixed text, for debug traces only).
//!
//! Strict by design: a value that holds two certificates, trailing bytes after the DER, a PEM
//! block that is not a certificate, or anything that is not a well-formed X.509 certificate is
//! refused, never "repaired".
//!
//! The quote-aware splitting and unquoting serve the origin headers too ([`super::origin`]).

use base64::alphabet;
use base64::engine::general_purpose::GeneralPurpose;
use base64::engine::{DecodePaddingMode, GeneralPurposeConfig};
use base64::Engine as _;
use rustls_pki_types::CertificateDer;

use crate::certificate::ClientCertificate;
use crate::support::encoding::{self, Plus};
use crate::thumbprint::CertThumbprint;

pub(crate) type Parsed = Result<Option<ClientCertificate>, &'static str>;

/// Standard base64, with or without padding (RFC 8941 §3.3.5 asks parsers to accept both).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Checks that `der` is exactly one well-formed X.509 certificate (no trailing bytes).
fn certificate(der: Vec<u8>) -> Result<CertificateDer<'static>, &'static str> {
    let der = CertificateDer::from(der);
    webpki::EndEntityCert::try_from(&der).map_err(|_| "not a well-formed X.509 certificate")?;
    validity(&der).ok_or("not a well-formed X.509 validity period")?;
    Ok(der)
}

/// RFC 5280 §4.1.2.5: webpki reads the validity period only when it verifies a chain, which a
/// forwarded certificate never goes through here, so its two times are checked now (the fuzz
/// target `forwarded_*` found certificates with a month 13 or a `<` for a digit accepted).
fn validity(der: &[u8]) -> Option<()> {
    let (certificate, _) = der_item(der, 0x30)?;
    let (mut tbs, _) = der_item(certificate, 0x30)?;
    if tbs.first() == Some(&0xa0) {
        tbs = der_item(tbs, 0xa0)?.1;
    }
    // serialNumber, signature, issuer, then validity.
    for tag in [0x02, 0x30, 0x30] {
        tbs = der_item(tbs, tag)?.1;
    }
    let (validity, _) = der_item(tbs, 0x30)?;
    let rest = time(validity)?;
    time(rest)?.is_empty().then_some(())
}

/// One DER item of type `tag`: its contents and what follows it.
fn der_item(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = input.split_first()?;
    let (&len, mut rest) = rest.split_first().filter(|_| first == tag)?;
    let len = match len {
        0..=0x7f => usize::from(len),
        0x81..=0x84 => {
            let (bytes, after) = rest.split_at_checked(usize::from(len & 0x7f))?;
            rest = after;
            bytes.iter().fold(0, |n, &b| n << 8 | usize::from(b))
        }
        _ => return None,
    };
    rest.split_at_checked(len)
}

/// A UTCTime `YYMMDDHHMMSSZ` or GeneralizedTime `YYYYMMDDHHMMSSZ` that names a real second.
fn time(input: &[u8]) -> Option<&[u8]> {
    let (text, rest, year) = match input.first()? {
        0x17 => der_item(input, 0x17)
            .filter(|(text, _)| text.len() == 13)
            .map(|(text, rest)| (text, rest, None))?,
        _ => der_item(input, 0x18)
            .filter(|(text, _)| text.len() == 15)
            .map(|(text, rest)| (&text[2..], rest, Some(&text[..2])))?,
    };
    let digits = |pair: &[u8]| match pair {
        [a @ b'0'..=b'9', b @ b'0'..=b'9'] => Some(u32::from(a - b'0') * 10 + u32::from(b - b'0')),
        _ => None,
    };
    let yy = digits(&text[0..2])?;
    let year = match year {
        Some(century) => digits(century)? * 100 + yy,
        None if yy >= 50 => 1900 + yy,
        None => 2000 + yy,
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month = digits(&text[2..4])?;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    let day = digits(&text[4..6])?;
    let (hour, minute, second) = (
        digits(&text[6..8])?,
        digits(&text[8..10])?,
        digits(&text[10..12])?,
    );
    let valid = (1..=days).contains(&day) && hour < 24 && minute < 60 && second < 60;
    (valid && text[12] == b'Z').then_some(rest)
}

/// RFC 9440 `Client-Cert`: an RFC 8941 Byte Sequence (`:base64:`) holding the DER leaf; and
/// `Client-Cert-Chain`, when present, a List of Byte Sequences (the rest of the chain).
pub(crate) fn rfc9440(value: &[u8], chain: Option<&[u8]>) -> Parsed {
    let leaf = certificate(byte_sequence(trim(value))?)?;
    let mut certs = vec![leaf];
    if let Some(chain) = chain {
        for item in trim(chain).split(|&b| b == b',') {
            certs.push(certificate(byte_sequence(trim(item))?)?);
        }
    }
    Ok(ClientCertificate::from_chain(certs))
}

/// An RFC 8941 Byte Sequence without parameters.
fn byte_sequence(item: &[u8]) -> Result<Vec<u8>, &'static str> {
    let inner = item
        .strip_prefix(b":")
        .and_then(|rest| rest.strip_suffix(b":"))
        .ok_or("not an RFC 8941 byte sequence")?;
    if inner.is_empty() {
        return Err("empty byte sequence");
    }
    BASE64
        .decode(inner)
        .map_err(|_| "byte sequence is not base64")
}

/// HAProxy `%[ssl_c_der,base64]`: the DER leaf in standard base64.
pub(crate) fn base64_der(value: &[u8]) -> Parsed {
    let value = trim(value);
    if value.is_empty() {
        return Err("empty value");
    }
    let der = BASE64.decode(value).map_err(|_| "not base64")?;
    Ok(ClientCertificate::from_chain(vec![certificate(der)?]))
}

/// nginx `$ssl_client_escaped_cert`: the PEM leaf, percent-encoded.
pub(crate) fn escaped_pem(value: &[u8]) -> Parsed {
    let pem = percent_decode(trim(value))?;
    Ok(ClientCertificate::from_chain(vec![pem_certificate(&pem)?]))
}

/// Apache `%{SSL_CLIENT_CERT}s`: the PEM leaf with its line breaks turned into spaces, or the
/// literal `(null)` when the client presented no certificate.
pub(crate) fn apache_pem(value: &[u8]) -> Parsed {
    let value = trim(value);
    if value == b"(null)" {
        return Err("(null): the proxy saw no client certificate");
    }
    Ok(ClientCertificate::from_chain(vec![pem_certificate(value)?]))
}

/// Envoy `x-forwarded-client-cert`: the element added by the nearest proxy (the last one),
/// `Cert=` (percent-encoded PEM) and / or `Hash=` (hex SHA-256 of the DER leaf). With both,
/// they must agree. An element with neither means no client certificate.
pub(crate) fn xfcc(value: &[u8]) -> Parsed {
    let elements = split_unquoted(trim(value), b',')?;
    let nearest = elements.last().copied().map(trim).unwrap_or_default();
    if nearest.is_empty() {
        return Err("empty XFCC element");
    }
    let mut cert = None;
    let mut hash = None;
    for pair in split_unquoted(nearest, b';')? {
        let pair = trim(pair);
        let eq = pair
            .iter()
            .position(|&b| b == b'=')
            .ok_or("XFCC pair without '='")?;
        let (key, value) = (&pair[..eq], unquote(&pair[eq + 1..])?);
        let slot = if key.eq_ignore_ascii_case(b"Cert") {
            &mut cert
        } else if key.eq_ignore_ascii_case(b"Hash") {
            &mut hash
        } else {
            continue;
        };
        if slot.replace(value).is_some() {
            return Err("XFCC key given twice in one element");
        }
    }
    let from_hash = match hash {
        Some(hex) => Some(CertThumbprint::from_digest(hex_digest(&hex)?)),
        None => None,
    };
    match (cert, from_hash) {
        (Some(cert), hash) => {
            let pem = percent_decode(&cert)?;
            let certificate = ClientCertificate::from_chain(vec![pem_certificate(&pem)?])
                .ok_or("no certificate")?;
            if hash.is_some_and(|h| h != *certificate.thumbprint()) {
                return Err("XFCC Hash does not match Cert");
            }
            Ok(Some(certificate))
        }
        (None, Some(hash)) => Ok(Some(ClientCertificate::from_thumbprint(hash))),
        (None, None) => Ok(None),
    }
}

/// Exactly one `CERTIFICATE` PEM block, with nothing but whitespace around it.
fn pem_certificate(text: &[u8]) -> Result<CertificateDer<'static>, &'static str> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let text = trim_whitespace(text);
    let body = text
        .strip_prefix(BEGIN)
        .and_then(|rest| rest.strip_suffix(END))
        .ok_or("not exactly one PEM CERTIFICATE block")?;
    if body.windows(5).any(|w| w == b"-----") {
        return Err("more than one PEM block");
    }
    let b64: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let der = BASE64.decode(b64).map_err(|_| "PEM body is not base64")?;
    certificate(der)
}

/// Percent-decoding (`%XX`); `+` stays `+` (it is a base64 character here, not a space).
fn percent_decode(value: &[u8]) -> Result<Vec<u8>, &'static str> {
    encoding::percent_decode(value, Plus::Literal).ok_or("bad percent-encoding")
}

fn hex_digest(hex: &[u8]) -> Result<[u8; 32], &'static str> {
    if hex.len() != 64 {
        return Err("XFCC Hash is not 64 hex digits");
    }
    encoding::hex_array(hex).ok_or("XFCC Hash is not hex")
}

/// Splits at `sep` outside double quotes (XFCC and RFC 7239 `Forwarded` quote values holding
/// `,` `;` `=`).
pub(super) fn split_unquoted(value: &[u8], sep: u8) -> Result<Vec<&[u8]>, &'static str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, &b) in value.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ if b == sep && !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err("unterminated quote");
    }
    parts.push(&value[start..]);
    Ok(parts)
}

/// A value, unquoted (`"…"` with `\"` and `\\` escapes) if it is quoted.
pub(super) fn unquote(value: &[u8]) -> Result<Vec<u8>, &'static str> {
    let Some(inner) = value.strip_prefix(b"\"") else {
        return Ok(value.to_vec());
    };
    let inner = inner.strip_suffix(b"\"").ok_or("unterminated quote")?;
    let mut out = Vec::with_capacity(inner.len());
    let mut bytes = inner.iter();
    while let Some(&b) = bytes.next() {
        out.push(if b == b'\\' {
            *bytes.next().ok_or("dangling escape")?
        } else {
            b
        });
    }
    Ok(out)
}

/// HTTP optional whitespace (SP, HTAB) trimmed from both ends.
pub(super) fn trim(value: &[u8]) -> &[u8] {
    trim_by(value, |b| b == b' ' || b == b'\t')
}

fn trim_whitespace(value: &[u8]) -> &[u8] {
    trim_by(value, |b| b.is_ascii_whitespace())
}

fn trim_by(value: &[u8], strip: impl Fn(u8) -> bool) -> &[u8] {
    let start = value.iter().position(|&b| !strip(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| !strip(b))
        .map_or(start, |e| e + 1);
    &value[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    /// A fresh self-signed certificate: (DER, PEM).
    fn cert(name: &str) -> (Vec<u8>, String) {
        let cert = crate::test_helpers::self_signed_certificate(name);
        (cert.der().to_vec(), cert.pem())
    }

    fn escape(pem: &str) -> String {
        // What nginx's $ssl_client_escaped_cert does: percent-encode all but unreserved.
        pem.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    fn thumbprint(der: &[u8]) -> CertThumbprint {
        CertThumbprint::from_der(der)
    }

    fn expect_cert(parsed: Parsed, der: &[u8]) {
        let cert = parsed.expect("parsed").expect("a certificate");
        assert_eq!(cert.thumbprint(), &thumbprint(der));
    }

    #[test]
    fn every_format_reads_its_certificate() {
        let (der, pem) = cert("client.example");
        let b64 = STANDARD.encode(&der);
        expect_cert(rfc9440(format!(":{b64}:").as_bytes(), None), &der);
        expect_cert(
            rfc9440(
                format!(" :{}: ", b64.trim_end_matches('=')).as_bytes(),
                None,
            ),
            &der,
        );
        expect_cert(base64_der(b64.as_bytes()), &der);
        expect_cert(escaped_pem(escape(&pem).as_bytes()), &der);
        expect_cert(apache_pem(pem.replace('\n', " ").as_bytes()), &der);
        expect_cert(apache_pem(pem.as_bytes()), &der);
        let hash = thumbprint(&der).to_hex();
        let xfcc_value = format!(
            "By=spiffe://a;Hash=0000;Cert=\"x\",By=spiffe://b;Hash={hash};Cert=\"{}\";Subject=\"CN=a,O=b\"",
            escape(&pem)
        );
        expect_cert(xfcc(xfcc_value.as_bytes()), &der);
    }

    #[test]
    fn rfc9440_chain_is_kept() {
        let (leaf, _) = cert("leaf");
        let (ca, _) = cert("ca");
        let chain = format!(":{}:, :{}:", STANDARD.encode(&ca), STANDARD.encode(&ca));
        let parsed = rfc9440(
            format!(":{}:", STANDARD.encode(&leaf)).as_bytes(),
            Some(chain.as_bytes()),
        )
        .unwrap()
        .unwrap();
        assert_eq!(parsed.chain().len(), 3);
        assert_eq!(parsed.thumbprint(), &thumbprint(&leaf));
    }

    #[test]
    fn xfcc_hash_alone_is_enough_for_binding() {
        let (der, _) = cert("client");
        let value = format!(
            "Hash={};URI=spiffe://client",
            thumbprint(&der).to_hex().to_uppercase()
        );
        let cert = xfcc(value.as_bytes()).unwrap().unwrap();
        assert_eq!(cert.thumbprint(), &thumbprint(&der));
        assert!(cert.leaf().is_none());
        // An element with neither Cert nor Hash: no client certificate.
        assert!(xfcc(b"By=spiffe://proxy;URI=spiffe://x").unwrap().is_none());
    }

    #[test]
    fn malformed_values_are_refused() {
        let (der, pem) = cert("client");
        let (other_der, other_pem) = cert("other");
        let b64 = STANDARD.encode(&der);
        let mut trailing = der.clone();
        trailing.push(0);
        let key_pem = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n";
        let two = format!("{pem}{other_pem}");
        let mismatch = format!(
            "Hash={};Cert=\"{}\"",
            thumbprint(&other_der).to_hex(),
            escape(&pem)
        );
        let cases: Vec<(&str, Parsed)> = vec![
            ("rfc9440 without colons", rfc9440(b64.as_bytes(), None)),
            ("rfc9440 empty", rfc9440(b"", None)),
            ("rfc9440 '::'", rfc9440(b"::", None)),
            (
                "rfc9440 parameters",
                rfc9440(format!(":{b64}:;a=1").as_bytes(), None),
            ),
            (
                "rfc9440 two items",
                rfc9440(format!(":{b64}:, :{b64}:").as_bytes(), None),
            ),
            (
                "rfc9440 trailing bytes",
                rfc9440(format!(":{}:", STANDARD.encode(&trailing)).as_bytes(), None),
            ),
            (
                "rfc9440 bad chain",
                rfc9440(format!(":{b64}:").as_bytes(), Some(b"garbage")),
            ),
            ("haproxy empty", base64_der(b"")),
            ("haproxy not base64", base64_der(b"***")),
            (
                "haproxy trailing bytes",
                base64_der(STANDARD.encode(&trailing).as_bytes()),
            ),
            (
                "haproxy garbage DER",
                base64_der(STANDARD.encode(b"0123456789").as_bytes()),
            ),
            ("nginx empty", escaped_pem(b"")),
            (
                "nginx two certificates",
                escaped_pem(escape(&two).as_bytes()),
            ),
            ("nginx private key", escaped_pem(escape(key_pem).as_bytes())),
            ("nginx bad escape", escaped_pem(b"%ZZ")),
            ("nginx truncated escape", escaped_pem(b"abc%4")),
            ("nginx raw DER base64", escaped_pem(b64.as_bytes())),
            (
                "nginx text after the block",
                escaped_pem(escape(&format!("{pem}junk")).as_bytes()),
            ),
            ("apache (null)", apache_pem(b"(null)")),
            ("apache empty", apache_pem(b"")),
            (
                "apache two certificates",
                apache_pem(two.replace('\n', " ").as_bytes()),
            ),
            ("xfcc empty", xfcc(b"")),
            (
                "xfcc trailing comma",
                xfcc(format!("Hash={}, ", thumbprint(&der).to_hex()).as_bytes()),
            ),
            ("xfcc hash mismatch", xfcc(mismatch.as_bytes())),
            ("xfcc short hash", xfcc(b"Hash=abcd")),
            (
                "xfcc non-hex hash",
                xfcc(format!("Hash={}", "zz".repeat(32)).as_bytes()),
            ),
            (
                "xfcc duplicate key",
                xfcc(format!("Hash={h};Hash={h}", h = thumbprint(&der).to_hex()).as_bytes()),
            ),
            ("xfcc unterminated quote", xfcc(b"Cert=\"abc")),
            ("xfcc pair without =", xfcc(b"Hash")),
        ];
        for (name, parsed) in cases {
            assert!(parsed.is_err(), "{name} was accepted");
        }
    }

    /// Seeded random bytes and mutations of valid values: never a panic.
    #[test]
    fn random_input_never_panics() {
        let (der, pem) = cert("client");
        let valid = [
            format!(":{}:", STANDARD.encode(&der)),
            escape(&pem),
            STANDARD.encode(&der),
            format!(
                "Hash={};Cert=\"{}\"",
                thumbprint(&der).to_hex(),
                escape(&pem)
            ),
        ];
        let valid = valid.each_ref().map(String::as_bytes);
        for bytes in
            crate::test_helpers::mutations(0x9e37_79b9_7f4a_7c15, &valid, b"%:\",;=-", 4000)
        {
            let _ = rfc9440(&bytes, Some(&bytes));
            let _ = xfcc(&bytes);
            let _ = escaped_pem(&bytes);
            let _ = base64_der(&bytes);
            let _ = apache_pem(&bytes);
        }
    }

    #[test]
    fn certificates_with_malformed_validity_times_are_refused() {
        // Found by the forwarded_* fuzz targets (fuzz/regressions/forwarded_haproxy): webpki
        // reads the validity period only when it verifies a chain.
        let (der, _) = cert("client.example");
        assert!(base64_der(STANDARD.encode(&der).as_bytes()).is_ok());
        // rcgen's notAfter, a GeneralizedTime: 4096-01-01 00:00:00.
        let at = der
            .windows(15)
            .position(|w| w == b"40960101000000Z")
            .expect("rcgen's default notAfter");
        for (offset, byte) in [(4, b'1'), (5, b'<'), (6, b'4'), (8, b'3'), (14, b'+')] {
            let mut bad = der.clone();
            bad[at + offset] = byte;
            if offset == 4 {
                bad[at + 5] = b'3'; // month 13
            }
            let parsed = base64_der(STANDARD.encode(&bad).as_bytes());
            assert!(parsed.is_err(), "offset {offset}");
        }
        assert_eq!(time(b"\x17\x0d240229235959Z"), Some(&b""[..]));
        assert_eq!(time(b"\x17\x0d230229000000Z"), None);
        assert_eq!(time(b"\x18\x0f20000229000000Z"), Some(&b""[..]));
        assert_eq!(time(b"\x18\x0f19000229000000Z"), None);
    }
}
