//! A compact JWS in its three parts ([`Jws`]), each base64url-decoded once: the header by
//! [`JoseHeader::read`](super::claims::JoseHeader::read) onto the stack, the signature onto the
//! stack ([`Jws::signature`]), the payload into the [`Payload`] the token keeps.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::claims::invalid;
use crate::error::AuthError;
use crate::support::encoding::is_json_object_text;
use crate::support::jose::{decode_signature, SIGNATURE_BUF};
use crate::token::fields::Fields;

/// A compact JWS in its three parts.
pub(super) struct Jws<'a> {
    /// `header.payload`, what the signature covers.
    pub(super) signing_input: &'a str,
    pub(super) payload: &'a str,
    signature: &'a str,
}

impl<'a> Jws<'a> {
    pub(super) fn split(token: &'a str) -> Result<Self, AuthError> {
        let malformed = || invalid("malformed JWT");
        let (signing_input, signature) = token.rsplit_once('.').ok_or_else(malformed)?;
        let (header, payload) = signing_input.split_once('.').ok_or_else(malformed)?;
        if header.is_empty() || payload.contains('.') {
            return Err(malformed());
        }
        Ok(Self {
            signing_input,
            payload,
            signature,
        })
    }

    /// The signature's bytes, decoded into `buf`. One longer than any allowed algorithm makes
    /// verifies nothing: "bad signature", as a wrong one of the right length.
    pub(super) fn signature<'b>(
        &self,
        buf: &'b mut [u8; SIGNATURE_BUF],
    ) -> Result<&'b [u8], AuthError> {
        match decode_signature(self.signature, buf) {
            Ok(Some(signature)) => Ok(signature),
            Ok(None) => Err(invalid("bad signature")),
            Err(_) => Err(invalid("malformed JWT signature")),
        }
    }
}

/// A JWT's claims set: the JSON text of its payload, checked to be UTF-8 and to start as an
/// object. [`fields`](Self::fields) reads what certbound needs from it; the text itself goes
/// into the [`AccessToken`](crate::AccessToken), which decodes the rest only if asked.
pub(in crate::token) struct Payload(String);

impl Payload {
    /// The payload segment, base64url-decoded.
    pub(super) fn decode(segment: &str) -> Result<Self, AuthError> {
        let malformed = || invalid("malformed JWT claims");
        let json = URL_SAFE_NO_PAD.decode(segment).map_err(|_| malformed())?;
        let text = String::from_utf8(json).map_err(|_| malformed())?;
        if !is_json_object_text(&text) {
            return Err(malformed());
        }
        Ok(Self(text))
    }

    /// The claims certbound reads, in one pass (every other claim checked, and skipped).
    pub(in crate::token) fn fields(&self) -> Result<Fields<'_>, AuthError> {
        Fields::from_json(&self.0).map_err(|_| invalid("malformed JWT claims"))
    }

    pub(super) fn text(&self) -> &str {
        &self.0
    }

    pub(super) fn into_text(self) -> String {
        self.0
    }
}
