//! The `dn` fuzz target's oracle: the subject a certificate would carry if it were issued with
//! a parsed DN's own attributes. The DN must match it.

use super::{AvaValue, DistinguishedName};

impl DistinguishedName {
    /// The DER `Name` holding this DN's attributes, RDNs in ASN.1 order: text values as
    /// UTF8String (already prepared, so a match also shows that preparing is idempotent),
    /// `#hex` values with their own tag and contents, or with the same tag number in another
    /// class when `other_class` (a value the DN must not match). `None` for a tag of more than
    /// one byte.
    pub(crate) fn to_name_der(&self, other_class: bool) -> Option<Vec<u8>> {
        let mut rdns = Vec::new();
        for rdn in &self.rdns {
            let mut set = Vec::new();
            let mut atvs = Vec::new();
            for ava in rdn {
                let mut atv = tlv(0x06, ava.oid.as_bytes());
                match &ava.value {
                    AvaValue::Text(text) => atv.extend(tlv(0x0c, text.as_bytes())),
                    AvaValue::Ber {
                        id: (class, constructed, tag),
                        data,
                    } => {
                        let number = u8::try_from(tag.0).ok().filter(|n| *n < 31)?;
                        let form = if *constructed { 0x20 } else { 0 };
                        let class = (*class as u8) << 6;
                        let class = if other_class { class ^ 0x40 } else { class };
                        atv.extend(tlv(number | form | class, data));
                    }
                }
                atvs.push(tlv(0x30, &atv));
            }
            // DER sorts a SET OF by its encodings. It also makes two names that differ only in
            // the order of one RDN's values the same bytes: an RDN is a set, so swapping the
            // classes of two values of one attribute (`CN=#a000+CN=#e000`) gives the same name,
            // and the fuzz target must not expect it to be another.
            atvs.sort();
            for atv in atvs {
                set.extend(atv);
            }
            rdns.extend(tlv(0x31, &set));
        }
        Some(tlv(0x30, &rdns))
    }
}

/// One DER tag-length-value, in the shortest length form.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}
