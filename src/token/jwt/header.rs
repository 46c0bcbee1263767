//! The JOSE header as the validator acts on it ([`Header`]), with a memo of the last header
//! segments read on this thread.
//!
//! Why a memo: an issuer signs every token with the same header (`alg`, `kid`, `typ`), byte
//! for byte, and reading it (base64url, then serde) cost ~2 700 instructions per new token
//! (issue 26, BENCHMARKS.md). Reading a header is a function of its bytes alone (the key set is
//! consulted afterwards, with what was read), so a segment seen before is compared instead of
//! read: never wrong, whatever the keys. The memo is per thread (no lock, nothing shared), holds
//! [`SLOTS`] segments of at most [`SEGMENT_MAX`] bytes inline (no allocation, bounded), and only
//! headers that were read successfully; a longer segment, or a `kid` longer than [`KID_MAX`],
//! is read every time as before.

use std::borrow::Cow;
use std::cell::RefCell;

use jsonwebtoken::Algorithm;

use super::claims::{is_at_jwt, JoseHeader, HEADER_BUF};
use crate::error::AuthError;
use crate::support::jose;

/// Header segments remembered per thread: a few issuers' tokens interleaved still find theirs.
const SLOTS: usize = 4;
/// The longest segment remembered (a typical header is 60 to 120 characters).
const SEGMENT_MAX: usize = 256;
/// The longest `kid` remembered.
const KID_MAX: usize = 128;

/// What the validator acts on in a JOSE header.
pub(super) struct Header<'a> {
    /// `None`: an unknown algorithm, or `none`.
    pub(super) alg: Option<Algorithm>,
    kid: Kid<'a>,
    /// `typ` is RFC 9068's `at+jwt`.
    pub(super) at_jwt: bool,
    /// A `crit` member is present.
    pub(super) crit: bool,
}

enum Kid<'a> {
    Absent,
    Read(Cow<'a, str>),
    Inline(Inline),
}

/// A `kid` copied out of the memo.
#[derive(Clone, Copy)]
struct Inline {
    len: u8,
    bytes: [u8; KID_MAX],
}

impl Header<'_> {
    pub(super) fn kid(&self) -> Option<&str> {
        match &self.kid {
            Kid::Absent => None,
            Kid::Read(kid) => Some(kid),
            // A copy of a `str`'s bytes: always UTF-8.
            Kid::Inline(kid) => std::str::from_utf8(&kid.bytes[..usize::from(kid.len)]).ok(),
        }
    }
}

impl<'a> Header<'a> {
    /// The header of the compact JWS `token`: remembered, or read (with
    /// [`JoseHeader::read`], into `buf`) and remembered.
    pub(super) fn read(token: &str, buf: &'a mut [u8; HEADER_BUF]) -> Result<Self, AuthError> {
        let segment = token.split('.').next().unwrap_or_default().as_bytes();
        if let Some(header) = recall(segment) {
            return Ok(header);
        }
        let read = JoseHeader::read(token, buf)?;
        let header = Header {
            alg: jose::algorithm(&read.alg),
            kid: read.kid.map_or(Kid::Absent, Kid::Read),
            at_jwt: read.typ.as_deref().is_some_and(is_at_jwt),
            crit: read.crit,
        };
        remember(segment, &header);
        Ok(header)
    }
}

/// One remembered segment and what was read from it.
#[derive(Clone, Copy)]
struct Slot {
    len: u16,
    segment: [u8; SEGMENT_MAX],
    alg: Option<Algorithm>,
    /// `None`: no `kid`.
    kid: Option<Inline>,
    at_jwt: bool,
    crit: bool,
}

impl Slot {
    const EMPTY: Slot = Slot {
        len: 0,
        segment: [0; SEGMENT_MAX],
        alg: None,
        kid: None,
        at_jwt: false,
        crit: false,
    };
}

struct Memo {
    slots: [Slot; SLOTS],
    /// The slot the next new segment takes.
    next: usize,
}

thread_local! {
    static MEMO: RefCell<Memo> = const {
        RefCell::new(Memo {
            slots: [Slot::EMPTY; SLOTS],
            next: 0,
        })
    };
}

/// The header read from `segment` before on this thread, if remembered. An empty segment is
/// never remembered (it is no header), and must not match an empty slot.
fn recall(segment: &[u8]) -> Option<Header<'static>> {
    if segment.is_empty() {
        return None;
    }
    MEMO.try_with(|memo| {
        let memo = memo.try_borrow().ok()?;
        let slot = memo.slots.iter().find(|slot| {
            usize::from(slot.len) == segment.len() && slot.segment[..segment.len()] == *segment
        })?;
        Some(Header {
            alg: slot.alg,
            kid: slot.kid.map_or(Kid::Absent, Kid::Inline),
            at_jwt: slot.at_jwt,
            crit: slot.crit,
        })
    })
    .ok()
    .flatten()
}

/// Remembers `header`, read from `segment`, when both fit a slot.
fn remember(segment: &[u8], header: &Header<'_>) {
    let kid = match &header.kid {
        Kid::Absent => None,
        Kid::Read(kid) if kid.len() <= KID_MAX => {
            let mut bytes = [0; KID_MAX];
            bytes[..kid.len()].copy_from_slice(kid.as_bytes());
            Some(Inline {
                len: kid.len() as u8,
                bytes,
            })
        }
        Kid::Read(_) | Kid::Inline(_) => return,
    };
    if segment.is_empty() || segment.len() > SEGMENT_MAX {
        return;
    }
    let _ = MEMO.try_with(|memo| {
        let Ok(mut memo) = memo.try_borrow_mut() else {
            return;
        };
        let at = memo.next;
        memo.next = (at + 1) % SLOTS;
        let slot = &mut memo.slots[at];
        slot.len = segment.len() as u16;
        slot.segment[..segment.len()].copy_from_slice(segment);
        slot.alg = header.alg;
        slot.kid = kid;
        slot.at_jwt = header.at_jwt;
        slot.crit = header.crit;
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    fn token(header: &str) -> String {
        format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(header))
    }

    fn read(token: &str) -> Option<(Option<Algorithm>, Option<String>, bool, bool)> {
        let mut buf = [0; HEADER_BUF];
        let h = Header::read(token, &mut buf).ok()?;
        Some((h.alg, h.kid().map(str::to_owned), h.at_jwt, h.crit))
    }

    #[test]
    fn a_remembered_header_reads_as_it_did_the_first_time() {
        let long_kid = "k".repeat(KID_MAX + 1);
        let long_segment = format!(r#"{{"alg":"ES256","x":"{}"}}"#, "p".repeat(SEGMENT_MAX));
        let headers = [
            r#"{"alg":"ES256","kid":"k1","typ":"at+jwt"}"#.to_owned(),
            r#"{"alg":"RS256","kid":"k\u0032"}"#.to_owned(),
            r#"{"alg":"none"}"#.to_owned(),
            r#"{"alg":"EdDSA","crit":null,"typ":"JWT"}"#.to_owned(),
            r#"{"alg":"Ed25519","typ":"application/AT+JWT"}"#.to_owned(),
            format!(r#"{{"alg":"ES256","kid":"{long_kid}"}}"#),
            long_segment,
        ];
        let first: Vec<_> = headers.iter().map(|h| read(&token(h))).collect();
        assert_eq!(
            first[0],
            Some((Some(Algorithm::ES256), Some("k1".into()), true, false))
        );
        assert_eq!(
            first[1],
            Some((Some(Algorithm::RS256), Some("k2".into()), false, false))
        );
        assert_eq!(first[2], Some((None, None, false, false)));
        assert_eq!(first[3], Some((Some(Algorithm::EdDSA), None, false, true)));
        assert_eq!(first[4], Some((Some(Algorithm::EdDSA), None, true, false)));
        assert_eq!(first[5].as_ref().unwrap().1.as_deref(), Some(&*long_kid));
        // Again, in turn and out of turn (more headers than slots): the same each time.
        for round in 0..3 {
            for (i, h) in headers.iter().enumerate().rev().skip(round) {
                assert_eq!(read(&token(h)), first[i], "{h}");
            }
        }
    }

    #[test]
    fn headers_refused_once_are_refused_every_time() {
        for bad in [
            r#"{"kid":"k"}"#,
            r#"{"alg":5}"#,
            "[]",
            r#"{"alg":"ES256","alg":"ES256"}"#,
        ] {
            for _ in 0..3 {
                assert_eq!(read(&token(bad)), None, "{bad}");
            }
        }
        assert_eq!(read(".e30.c2ln"), None);
        assert_eq!(read("!!!.e30.c2ln"), None);
        // A segment next to a remembered one is read for itself.
        let es256 = read(&token(r#"{"alg":"ES256"}"#)).unwrap();
        let es384 = read(&token(r#"{"alg":"ES384"}"#)).unwrap();
        assert_eq!(
            (es256.0, es384.0),
            (Some(Algorithm::ES256), Some(Algorithm::ES384))
        );
    }
}
