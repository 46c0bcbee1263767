//! Distinguished names: RFC 4514 strings parsed into RDN sequences, and matched against a
//! certificate's subject per RFC 4517 `distinguishedNameMatch`.
//!
//! A DN is never rendered to a string and compared as one: a `,` or `+` inside a value would
//! then match a separator. Both sides are sequences of RDNs; each RDN is a set of attribute
//! type / value pairs.
//!
//! - The RFC 4514 string lists the RDNs in the reverse of the certificate's ASN.1 order
//!   (`CN=client,O=Example,C=DE` is `C`, then `O`, then `CN` in the certificate).
//! - Attribute types are matched by OID; short names are case-insensitive (`cn` is `CN`).
//! - Multi-valued RDNs (`CN=a+UID=b`) are unordered sets.
//! - Values of directory-string attributes (`CN`, `O`, `OU`, `C`, `L`, `ST`, `DC`,
//!   `emailAddress`, ...) compare after RFC 4518 insignificant-space handling and case folding;
//!   values of attribute types certbound does not know compare exactly.
//! - Escapes: `\,` `\+` `\"` `\\` `\;` `\<` `\>` `\=` `\#` `\ ` and hex pairs `\4A` (UTF-8
//!   octets); a value written `#04...` is the BER encoding of the value.
//!
//! Spaces around the `,` `+` `=` separators are tolerated (RFC 1779 style), since registrations
//! are often typed by hand; an escaped trailing space (`\ `) is kept.

use std::fmt;

use x509_parser::asn1_rs::{Any, Class, FromBer, Oid, Tag};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use crate::support::encoding;

/// How the values of one attribute type are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchRule {
    /// RFC 4517 `caseIgnoreMatch` / `caseIgnoreIA5Match`: insignificant space, case folding.
    CaseIgnore,
    /// Unknown attribute types: the values must be identical.
    Exact,
}

/// Attribute types by name (RFC 4514 §3, RFC 4519, PKCS #9, EV).
const ATTRIBUTES: &[(&[&str], &[u64])] = &[
    (&["cn", "commonname"], &[2, 5, 4, 3]),
    (&["sn", "surname"], &[2, 5, 4, 4]),
    (&["serialnumber"], &[2, 5, 4, 5]),
    (&["c", "countryname"], &[2, 5, 4, 6]),
    (&["l", "localityname"], &[2, 5, 4, 7]),
    (&["st", "s", "stateorprovincename"], &[2, 5, 4, 8]),
    (&["street", "streetaddress"], &[2, 5, 4, 9]),
    (&["o", "organizationname"], &[2, 5, 4, 10]),
    (&["ou", "organizationalunitname"], &[2, 5, 4, 11]),
    (&["title"], &[2, 5, 4, 12]),
    (&["description"], &[2, 5, 4, 13]),
    (&["businesscategory"], &[2, 5, 4, 15]),
    (&["postalcode"], &[2, 5, 4, 17]),
    (&["gn", "givenname"], &[2, 5, 4, 42]),
    (&["initials"], &[2, 5, 4, 43]),
    (&["generationqualifier"], &[2, 5, 4, 44]),
    (&["dnqualifier"], &[2, 5, 4, 46]),
    (&["pseudonym"], &[2, 5, 4, 65]),
    (&["organizationidentifier"], &[2, 5, 4, 97]),
    (&["uid", "userid"], &[0, 9, 2342, 19200300, 100, 1, 1]),
    (
        &["dc", "domaincomponent"],
        &[0, 9, 2342, 19200300, 100, 1, 25],
    ),
    (
        &["emailaddress", "email", "e"],
        &[1, 2, 840, 113549, 1, 9, 1],
    ),
    (
        &["jurisdictionl", "jurisdictionlocalityname"],
        &[1, 3, 6, 1, 4, 1, 311, 60, 2, 1, 1],
    ),
    (
        &["jurisdictionst", "jurisdictionstateorprovincename"],
        &[1, 3, 6, 1, 4, 1, 311, 60, 2, 1, 2],
    ),
    (
        &["jurisdictionc", "jurisdictioncountryname"],
        &[1, 3, 6, 1, 4, 1, 311, 60, 2, 1, 3],
    ),
];

/// Why an RFC 4514 string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DnSyntaxError(pub(crate) &'static str);

impl fmt::Display for DnSyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A parsed distinguished name, RDNs in certificate (ASN.1) order.
#[derive(Clone, PartialEq)]
pub(crate) struct DistinguishedName {
    rdns: Vec<Vec<Ava>>,
}

#[derive(Clone, PartialEq)]
struct Ava {
    oid: Oid<'static>,
    rule: MatchRule,
    value: AvaValue,
}

#[derive(Clone, PartialEq)]
enum AvaValue {
    /// A string value, prepared for its rule.
    Text(String),
    /// `#hex` with a non-string BER value: identifier (class, form, tag) and contents must be
    /// identical.
    Ber { id: Identifier, data: Vec<u8> },
}

impl fmt::Debug for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only the shape: DNs identify clients, they are not secrets, but neither is there a
        // reason to print them in full.
        let sizes: Vec<usize> = self.rdns.iter().map(Vec::len).collect();
        f.debug_struct("DistinguishedName")
            .field("rdn_sizes", &sizes)
            .finish()
    }
}

impl DistinguishedName {
    /// Parses an RFC 4514 string. An empty DN is refused: it would match only certificates
    /// with an empty subject, which is never what a registration means.
    pub(crate) fn parse(input: &str) -> Result<Self, DnSyntaxError> {
        let mut parser = Parser {
            bytes: input.as_bytes(),
            pos: 0,
        };
        let mut rdns = Vec::new();
        loop {
            let mut rdn = Vec::new();
            loop {
                rdn.push(parser.ava()?);
                parser.skip_spaces();
                match parser.peek() {
                    Some(b'+') => parser.pos += 1,
                    _ => break,
                }
            }
            rdns.push(rdn);
            match parser.peek() {
                Some(b',') => parser.pos += 1,
                None => break,
                Some(_) => return Err(DnSyntaxError("unexpected character after a value")),
            }
        }
        // RFC 4514 §2.1: the string starts with the last RDN of the sequence.
        rdns.reverse();
        Ok(Self { rdns })
    }

    /// Whether `name` (a certificate's subject) is this DN.
    pub(crate) fn matches(&self, name: &X509Name<'_>) -> bool {
        let cert_rdns: Vec<Vec<&AttributeTypeAndValue<'_>>> =
            name.iter().map(|rdn| rdn.iter().collect()).collect();
        cert_rdns.len() == self.rdns.len()
            && self
                .rdns
                .iter()
                .zip(&cert_rdns)
                .all(|(ours, theirs)| rdn_matches(ours, theirs))
    }
}

/// Two RDNs match when they are equal as sets: same size, and every registered pair matches a
/// distinct pair of the certificate (attribute value matching is an equivalence, so a greedy
/// assignment finds one if any exists).
fn rdn_matches(ours: &[Ava], theirs: &[&AttributeTypeAndValue<'_>]) -> bool {
    if ours.len() != theirs.len() {
        return false;
    }
    let mut used = vec![false; theirs.len()];
    ours.iter().all(|ava| {
        let found = theirs
            .iter()
            .enumerate()
            .find(|(i, atv)| !used[*i] && ava.matches(atv));
        match found {
            Some((i, _)) => {
                used[i] = true;
                true
            }
            None => false,
        }
    })
}

impl Ava {
    fn matches(&self, atv: &AttributeTypeAndValue<'_>) -> bool {
        if *atv.attr_type() != self.oid {
            return false;
        }
        let value = atv.attr_value();
        match &self.value {
            AvaValue::Text(ours) => match decode_string(value) {
                Some(theirs) => prepare(&theirs, self.rule) == *ours,
                None => false,
            },
            AvaValue::Ber { id, data } => identifier(value) == *id && value.data == data.as_slice(),
        }
    }
}

/// A BER value's identifier: class, constructed or not, tag number.
type Identifier = (Class, bool, Tag);

fn identifier(value: &Any<'_>) -> Identifier {
    (value.class(), value.header.is_constructed(), value.tag())
}

/// The text of a string-typed attribute value (the ASN.1 string types X.520 uses), or `None`.
fn decode_string(value: &Any<'_>) -> Option<String> {
    // Tag numbers name string types in the universal class only (`[APPLICATION 12]` is no
    // UTF8String).
    if value.class() != Class::Universal || value.header.is_constructed() {
        return None;
    }
    let data = value.data;
    match value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString => std::str::from_utf8(data).ok().map(str::to_owned),
        // T.61 in practice carries Latin-1.
        Tag::TeletexString => Some(data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            if !data.len().is_multiple_of(2) {
                return None;
            }
            let units = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        Tag::UniversalString => {
            if !data.len().is_multiple_of(4) {
                return None;
            }
            data.chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        _ => None,
    }
}

/// RFC 4518 string preparation, as far as certbound implements it: every kind of white space
/// becomes a space, leading and trailing spaces go, inner runs become one space (RFC 4518
/// §2.6.1), and, for `caseIgnore` attributes, the case is folded. Unicode normalization (NFKC)
/// is not applied: the two sides are compared code point by code point.
fn prepare(value: &str, rule: MatchRule) -> String {
    match rule {
        MatchRule::Exact => value.to_owned(),
        MatchRule::CaseIgnore => {
            let mut out = String::with_capacity(value.len());
            for word in value.split(char::is_whitespace).filter(|w| !w.is_empty()) {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.extend(word.chars().flat_map(char::to_lowercase));
            }
            out
        }
    }
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    fn ava(&mut self) -> Result<Ava, DnSyntaxError> {
        self.skip_spaces();
        let (oid, rule) = self.attribute_type()?;
        self.skip_spaces();
        if self.peek() != Some(b'=') {
            return Err(DnSyntaxError("expected '=' after an attribute type"));
        }
        self.pos += 1;
        self.skip_spaces();
        let value = if self.peek() == Some(b'#') {
            self.pos += 1;
            self.hex_value(rule)?
        } else {
            AvaValue::Text(prepare(&self.string_value()?, rule))
        };
        Ok(Ava { oid, rule, value })
    }

    /// `descr` (a known short name, case-insensitive) or `numericoid`.
    fn attribute_type(&mut self) -> Result<(Oid<'static>, MatchRule), DnSyntaxError> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'.' {
                self.pos += 1;
            } else {
                break;
            }
        }
        let name = std::str::from_utf8(&self.bytes[start..self.pos])
            .map_err(|_| DnSyntaxError("attribute type is not ASCII"))?;
        let first = name
            .bytes()
            .next()
            .ok_or(DnSyntaxError("missing attribute type"))?;
        let arcs: Vec<u64> = if first.is_ascii_digit() {
            let arcs = name
                .split('.')
                .map(|arc| {
                    // RFC 4512 `number`: no leading zeros.
                    if arc.is_empty() || (arc.len() > 1 && arc.starts_with('0')) {
                        return None;
                    }
                    arc.parse::<u64>().ok()
                })
                .collect::<Option<Vec<_>>>()
                .ok_or(DnSyntaxError("malformed numeric OID"))?;
            if arcs.len() < 2 {
                return Err(DnSyntaxError("malformed numeric OID"));
            }
            arcs
        } else {
            let lower = name.to_ascii_lowercase();
            ATTRIBUTES
                .iter()
                .find(|(names, _)| names.contains(&lower.as_str()))
                .map(|(_, arcs)| arcs.to_vec())
                .ok_or(DnSyntaxError(
                    "unknown attribute type name (use its numeric OID)",
                ))?
        };
        let rule = if ATTRIBUTES
            .iter()
            .any(|(_, known)| *known == arcs.as_slice())
        {
            MatchRule::CaseIgnore
        } else {
            MatchRule::Exact
        };
        let oid = Oid::from(&arcs).map_err(|_| DnSyntaxError("malformed numeric OID"))?;
        Ok((oid, rule))
    }

    /// `hexstring`: the BER encoding of the value. String types are compared as text.
    fn hex_value(&mut self, rule: MatchRule) -> Result<AvaValue, DnSyntaxError> {
        let mut ber = Vec::new();
        while let Some(b) = self.peek() {
            if b == b',' || b == b'+' || b == b' ' {
                break;
            }
            let pair = self
                .bytes
                .get(self.pos..self.pos + 2)
                .and_then(hex_pair)
                .ok_or(DnSyntaxError("malformed #hex value"))?;
            ber.push(pair);
            self.pos += 2;
        }
        self.skip_spaces();
        let (rest, any) =
            Any::from_ber(&ber).map_err(|_| DnSyntaxError("#hex value is not one BER value"))?;
        if !rest.is_empty() {
            return Err(DnSyntaxError("#hex value is not one BER value"));
        }
        Ok(match decode_string(&any) {
            Some(text) => AvaValue::Text(prepare(&text, rule)),
            None => AvaValue::Ber {
                id: identifier(&any),
                data: any.data.to_vec(),
            },
        })
    }

    /// `string` with escapes, up to an unescaped `,` or `+`. Unescaped trailing spaces are not
    /// part of the value; escaped ones are.
    fn string_value(&mut self) -> Result<String, DnSyntaxError> {
        let mut out: Vec<u8> = Vec::new();
        // Length of `out` up to and including the last escaped or non-space byte.
        let mut keep = 0;
        while let Some(b) = self.peek() {
            match b {
                b',' | b'+' => break,
                b'\\' => {
                    let next = self
                        .bytes
                        .get(self.pos + 1)
                        .copied()
                        .ok_or(DnSyntaxError("dangling escape"))?;
                    if b"\\\"+,;<> #=".contains(&next) {
                        out.push(next);
                        self.pos += 2;
                    } else {
                        let byte = self
                            .bytes
                            .get(self.pos + 1..self.pos + 3)
                            .and_then(hex_pair)
                            .ok_or(DnSyntaxError("invalid escape"))?;
                        out.push(byte);
                        self.pos += 3;
                    }
                    keep = out.len();
                }
                // RFC 4514 §3: these must be escaped inside a value.
                b'"' | b';' | b'<' | b'>' | 0 => {
                    return Err(DnSyntaxError("unescaped special character in a value"))
                }
                _ => {
                    out.push(b);
                    self.pos += 1;
                    if b != b' ' {
                        keep = out.len();
                    }
                }
            }
        }
        out.truncate(keep);
        String::from_utf8(out).map_err(|_| DnSyntaxError("value is not UTF-8"))
    }
}

fn hex_pair(pair: &[u8]) -> Option<u8> {
    match pair {
        [hi, lo] => encoding::hex_pair(*hi, *lo),
        _ => None,
    }
}

#[cfg(fuzzing)]
#[path = "dn_fuzzing.rs"]
mod fuzzing;

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::asn1_rs::ToDer as _;
    use x509_parser::prelude::FromDer as _;

    // Hand-made DER Names, so that multi-valued RDNs and every string type can be tested
    // without a certificate.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if content.len() < 128 {
            out.push(content.len() as u8);
        } else {
            out.extend([0x82, (content.len() >> 8) as u8, content.len() as u8]);
        }
        out.extend_from_slice(content);
        out
    }

    fn oid_der(arcs: &[u64]) -> Vec<u8> {
        Oid::from(arcs).unwrap().to_der_vec().unwrap()
    }

    /// One attribute: OID arcs, string tag, content bytes.
    type Attribute<'a> = (&'a [u64], u8, &'a [u8]);

    /// `rdns` in ASN.1 order.
    fn name(rdns: &[&[Attribute<'_>]]) -> Vec<u8> {
        let mut seq = Vec::new();
        for rdn in rdns {
            let mut set = Vec::new();
            for (arcs, tag, value) in *rdn {
                let mut atv = oid_der(arcs);
                atv.extend(tlv(*tag, value));
                set.extend(tlv(0x30, &atv));
            }
            seq.extend(tlv(0x31, &set));
        }
        tlv(0x30, &seq)
    }

    const CN: &[u64] = &[2, 5, 4, 3];
    const O: &[u64] = &[2, 5, 4, 10];
    const OU: &[u64] = &[2, 5, 4, 11];
    const C: &[u64] = &[2, 5, 4, 6];
    const UID: &[u64] = &[0, 9, 2342, 19200300, 100, 1, 1];
    const UTF8: u8 = 0x0c;
    const PRINTABLE: u8 = 0x13;
    const BMP: u8 = 0x1e;

    fn matches(dn: &str, der: &[u8]) -> bool {
        let (rest, name) = X509Name::from_der(der).unwrap();
        assert!(rest.is_empty());
        DistinguishedName::parse(dn).unwrap().matches(&name)
    }

    fn standard() -> Vec<u8> {
        name(&[
            &[(C, PRINTABLE, b"DE")],
            &[(O, UTF8, b"Example Bank AG")],
            &[(OU, UTF8, b"Payments")],
            &[(CN, UTF8, b"client-42")],
        ])
    }

    #[test]
    fn rdns_are_listed_in_reverse_of_certificate_order() {
        let der = standard();
        assert!(matches(
            "CN=client-42,OU=Payments,O=Example Bank AG,C=DE",
            &der
        ));
        assert!(!matches(
            "C=DE,O=Example Bank AG,OU=Payments,CN=client-42",
            &der
        ));
    }

    #[test]
    fn attribute_types_are_case_insensitive_and_numeric_oids_work() {
        let der = standard();
        assert!(matches(
            "cn=client-42,ou=Payments,o=Example Bank AG,c=DE",
            &der
        ));
        assert!(matches(
            "2.5.4.3=client-42,OrganizationalUnitName=Payments,O=Example Bank AG,countryName=DE",
            &der
        ));
    }

    #[test]
    fn values_ignore_case_and_insignificant_space() {
        let der = standard();
        assert!(matches(
            "CN=CLIENT-42, OU=payments , O=example   bank ag,C=de",
            &der
        ));
        assert!(!matches(
            "CN=client-4 2,OU=Payments,O=Example Bank AG,C=DE",
            &der
        ));
        assert!(!matches(
            "CN=client-42,OU=Payments,O=ExampleBank AG,C=DE",
            &der
        ));
    }

    #[test]
    fn every_rdn_must_be_there_and_no_more() {
        let der = standard();
        assert!(!matches("CN=client-42,O=Example Bank AG,C=DE", &der));
        assert!(!matches(
            "CN=client-42,OU=Payments,O=Example Bank AG,C=DE,DC=x",
            &der
        ));
        assert!(!matches("CN=client-42", &der));
    }

    #[test]
    fn escaped_separators_are_part_of_the_value() {
        let der = name(&[&[(O, UTF8, b"Acme, Inc.")], &[(CN, UTF8, b"a+b=c \"q\"")]]);
        assert!(matches(r#"CN=a\+b=c \"q\",O=Acme\, Inc."#, &der));
        assert!(matches(r"CN=a\2Bb\3Dc \22q\22,O=Acme\2c Inc.", &der));
        // Unescaped, the comma splits the value: "Inc." is no attribute type.
        assert!(DistinguishedName::parse(r#"CN=a\+b=c \"q\",O=Acme, Inc."#).is_err());
        assert!(!matches(r#"CN=a\+b=c \"q\",O=Acme, OU=Inc."#, &der));
        // A string comparison of the rendered DN would be fooled by a value holding the
        // separator; the RDN comparison is not.
        let tricky = name(&[&[(CN, UTF8, b"x,O=Acme")]]);
        assert!(!matches("CN=x,O=Acme", &tricky));
        let two = name(&[&[(O, UTF8, b"Acme")], &[(CN, UTF8, b"x")]]);
        assert!(!matches(r"CN=x\,O=Acme", &two));
        assert!(matches(r"CN=x\,O=Acme", &tricky));
    }

    #[test]
    fn hex_escapes_are_utf8_octets() {
        let der = name(&[&[(CN, UTF8, "Jürgen".as_bytes())]]);
        assert!(matches(r"CN=J\C3\BCrgen", &der));
        assert!(matches("CN=JÜRGEN", &der));
        assert!(
            DistinguishedName::parse(r"CN=J\C3").is_err(),
            "invalid UTF-8"
        );
    }

    #[test]
    fn escaped_leading_and_trailing_spaces_are_kept() {
        let der = name(&[&[(UID, UTF8, b" x ")]]);
        // UID is caseIgnore: insignificant spaces are dropped on both sides.
        assert!(matches(r"UID=\ x\ ", &der));
        assert!(matches("UID=x", &der));
        // An unknown attribute type compares exactly: the escaped spaces matter.
        let unknown: &[u64] = &[1, 3, 6, 1, 4, 1, 99999, 1];
        let der = name(&[&[(unknown, UTF8, b" x ")]]);
        assert!(matches(r"1.3.6.1.4.1.99999.1=\ x\ ", &der));
        assert!(!matches("1.3.6.1.4.1.99999.1=x", &der));
        assert!(!matches("1.3.6.1.4.1.99999.1=\\ X\\ ", &der));
    }

    #[test]
    fn multi_valued_rdns_are_unordered_sets() {
        let der = name(&[
            &[(O, UTF8, b"Acme")],
            &[(CN, UTF8, b"svc"), (UID, UTF8, b"42")],
        ]);
        assert!(matches("CN=svc+UID=42,O=Acme", &der));
        assert!(matches("UID=42 + CN=svc,O=Acme", &der));
        // The same attributes as two RDNs are another DN.
        assert!(!matches("CN=svc,UID=42,O=Acme", &der));
        assert!(!matches("CN=svc,O=Acme", &der));
        assert!(!matches("CN=svc+UID=42+OU=x,O=Acme", &der));
    }

    #[test]
    fn repeated_attribute_types_must_each_match() {
        let der = name(&[&[(OU, UTF8, b"a"), (OU, UTF8, b"b")]]);
        assert!(matches("OU=b+OU=a", &der));
        assert!(!matches("OU=a+OU=a", &der));
    }

    #[test]
    fn other_string_types_are_decoded() {
        let bmp: Vec<u8> = "Zoë".encode_utf16().flat_map(u16::to_be_bytes).collect();
        let der = name(&[&[(CN, BMP, &bmp)]]);
        assert!(matches("CN=zoë", &der));
        let der = name(&[&[(C, PRINTABLE, b"DE")]]);
        assert!(matches("C=de", &der));
    }

    #[test]
    fn hex_values_are_ber() {
        let der = name(&[&[(CN, PRINTABLE, b"abc")]]);
        // #13 03 616263: PrintableString "abc"; compared as text, so UTF8String matches too.
        assert!(matches("CN=#1303616263", &der));
        assert!(matches("CN=#0c03414243", &der));
        let octets: &[u64] = &[1, 3, 6, 1, 4, 1, 99999, 2];
        let der = name(&[&[(octets, 0x04, b"\x01\x02")]]);
        assert!(matches("1.3.6.1.4.1.99999.2=#04020102", &der));
        assert!(!matches("1.3.6.1.4.1.99999.2=#04020103", &der));
        assert!(DistinguishedName::parse("CN=#0403").is_err());
        assert!(DistinguishedName::parse("CN=#zz").is_err());
    }

    #[test]
    fn hex_values_match_only_values_of_their_own_class() {
        // Found by the dn fuzz target (fuzz/regressions/dn): only the tag number was compared.
        let octets: &[u64] = &[1, 3, 6, 1, 4, 1, 99999, 2];
        let application = name(&[&[(octets, 0x44, b"\x01\x02")]]);
        assert!(!matches("1.3.6.1.4.1.99999.2=#04020102", &application));
        assert!(matches("1.3.6.1.4.1.99999.2=#44020102", &application));
        let context_utf8 = name(&[&[(CN, 0x8c, b"abc")]]);
        assert!(!matches("CN=abc", &context_utf8));
        assert!(matches("CN=#8c03616263", &context_utf8));
    }

    #[test]
    fn malformed_strings_are_refused() {
        for bad in [
            "",
            "CN",
            "=x",
            "CN=a,",
            "CN=a\\",
            "CN=a\\x",
            "CN=\"quoted\"",
            "CN=a;O=b",
            "CN=a<b",
            "foo=bar",
            "1.2.=x",
            "01.2=x",
            "CN=a,,O=b",
        ] {
            assert!(DistinguishedName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn other_attribute_types_do_not_stand_in() {
        let der = name(&[&[(OU, UTF8, b"client-42")]]);
        assert!(!matches("CN=client-42", &der));
    }
}
