//! RFC 4514 distinguished names (the `tls_client_auth_subject_dn` of a registration) and their
//! match against certificate subjects. Input: the DN string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use x509_parser::prelude::{FromDer as _, X509Name};

/// The DER subject of the registration tests' client certificate:
/// `CN=client-42,OU=Payments,O=Example Bank AG,C=DE`.
fn subject() -> Vec<u8> {
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        [&[tag, content.len() as u8][..], content].concat()
    }
    let atv = |arc: u8, tag: u8, value: &[u8]| {
        tlv(
            0x31,
            &tlv(
                0x30,
                &[tlv(0x06, &[0x55, 0x04, arc]), tlv(tag, value)].concat(),
            ),
        )
    };
    tlv(
        0x30,
        &[
            atv(6, 0x13, b"DE"),
            atv(10, 0x0c, b"Example Bank AG"),
            atv(11, 0x0c, b"Payments"),
            atv(3, 0x0c, b"client-42"),
        ]
        .concat(),
    )
}

fuzz_target!(|data: &[u8]| {
    let Ok(dn) = std::str::from_utf8(data) else {
        return;
    };
    let subject = subject();
    let Some((matches_fixed, own)) = certbound::fuzzing::distinguished_name(dn, &subject) else {
        return;
    };
    assert!(matches_fixed.is_some(), "the fixed subject is well-formed");
    // A certificate issued with the DN's own attributes is matched by it...
    let Some((own, other_class)) = own else {
        return;
    };
    let name = match X509Name::from_der(&own) {
        Ok((rest, name)) if rest.is_empty() => name,
        // Every all-text DN gives a valid Name; a `#hex` value may be one x509-parser refuses
        // as an attribute value (an EOC, say).
        _ if other_class != own => return,
        _ => panic!("{dn:?} gives no valid Name"),
    };
    let (matches_own, _) = certbound::fuzzing::distinguished_name(dn, &own).expect("parses");
    assert_eq!(
        matches_own,
        Some(true),
        "{dn:?} does not match its own subject {name}"
    );
    // ...and not when a `#hex` value has the same tag number and contents in another class.
    if other_class != own {
        let (matches, _) = certbound::fuzzing::distinguished_name(dn, &other_class).unwrap();
        assert_ne!(
            matches,
            Some(true),
            "{dn:?} matches a value of another ASN.1 class"
        );
    }
});
