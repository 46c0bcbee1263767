//! [`AccessToken`]: a validated access token and what the layer needs from its claims.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::fields::{Cnf, Fields, Loose};
use crate::error::{AuthError, AuthErrorKind};
use crate::thumbprint::{CertThumbprint, JwkThumbprint};

/// A validated access token: its claims and what the layer needs from them.
///
/// Inserted into the request's extensions by the layer; read it in a handler through the axum
/// extractor (`AccessToken` implements `FromRequestParts`) or from the extensions. Cheap to
/// clone. Its `Debug` output shows no claim values besides issuer, subject, client and scopes.
#[derive(Clone)]
pub struct AccessToken(Arc<Inner>);

struct Inner {
    claims: Claims,
    read: Read,
}

/// All the claims.
enum Claims {
    /// A claims map as given ([`AccessToken::from_claims`]).
    Map(Map<String, Value>),
    /// A JWT's claims set as its JSON text, decoded into a map only when the application asks
    /// ([`AccessToken::claims`]): the layer itself needs only [`Read`], read in one pass.
    Json {
        text: String,
        map: OnceLock<Map<String, Value>>,
    },
}

/// What certbound reads from the claims, read when the token is built.
///
/// Its strings are where they are in the claims set's JSON text when that text is kept (a
/// JWT's: [`AccessToken::from_json`]) and the string has no escape: no copy at all. Before, the
/// issuer, subject, client id and each scope were copies of their own (5 allocations and as
/// many frees per new token of the load test, ~2 000 instructions: issue 26, BENCHMARKS.md).
pub(crate) struct Read {
    issuer: Option<Text>,
    subject: Option<Text>,
    client_id: Option<Text>,
    /// The `scope` claim (space-separated).
    scope: Option<Text>,
    scp: Scp,
    /// `scope` and `scp` as [`AccessToken::scopes`] gives them, made on its first call: the
    /// layer itself only asks [`AccessToken::has_scope`], which reads the claims in place.
    scopes: OnceLock<Vec<String>>,
    confirmation: Option<CertThumbprint>,
    dpop_key: Option<JwkThumbprint>,
    acr: Option<Text>,
    auth_time: Option<i64>,
}

/// A string claim: `start..end` of the claims' JSON text, or a copy of its own (an escaped
/// string, or claims given as a map).
enum Text {
    At(u32, u32),
    Own(Box<str>),
}

/// The `scp` claim: absent (or `null`), a space-separated string, or an array of strings.
enum Scp {
    None,
    Spaced(Text),
    Items(Vec<Text>),
}

impl Text {
    /// `s` as a place in `json` when it is a slice of it (a string without escapes, borrowed
    /// from the text), else a copy.
    fn of(s: &str, json: Option<&str>) -> Self {
        if let Some(json) = json {
            let start = (s.as_ptr() as usize).wrapping_sub(json.as_ptr() as usize);
            let end = start.wrapping_add(s.len());
            // Only a slice of `json` itself (the same bytes at the same address) is a place.
            let inside = json
                .get(start..end)
                .is_some_and(|at| at.as_ptr() == s.as_ptr());
            if let (true, Ok(start), Ok(end)) = (inside, u32::try_from(start), u32::try_from(end)) {
                return Text::At(start, end);
            }
        }
        Text::Own(s.into())
    }

    /// The string, out of `json` (the text the place was taken in, or one with the same
    /// content); `""` for a place outside it, which [`Read::of`]'s callers never make.
    fn get<'a>(&'a self, json: &'a str) -> &'a str {
        match self {
            Text::At(start, end) => json.get(*start as usize..*end as usize).unwrap_or_default(),
            Text::Own(s) => s,
        }
    }
}

impl Read {
    /// Reads `sub`, `client_id` (or `azp`), `scope` (space-separated string) or `scp` (array),
    /// the confirmation `cnf.x5t#S256` (RFC 8705) and `cnf.jkt` (RFC 9449), `iss`, `acr` and
    /// `auth_time`; see [`AccessToken::from_claims`] for what is refused.
    ///
    /// `json`: the JSON text `fields` were read from, when the token keeps it
    /// ([`AccessToken::from_json`] with that text, or one with the same content): the strings
    /// borrowed from it are kept as places in it instead of copies.
    pub(crate) fn of(fields: &Fields<'_>, json: Option<&str>) -> Result<Self, AuthError> {
        let invalid = |detail| AuthError::with_detail(AuthErrorKind::InvalidToken, detail);
        let (confirmation, dpop_key) = match &fields.cnf {
            None => (None, None),
            Some(Cnf::Object { x5t_s256, jkt }) => {
                let certificate = match x5t_s256 {
                    None => None,
                    Some(Loose::Str(s)) => Some(
                        CertThumbprint::parse(s)
                            .map_err(|_| invalid("cnf x5t#S256 is not a canonical thumbprint"))?,
                    ),
                    Some(_) => return Err(invalid("cnf x5t#S256 is not a string")),
                };
                let key = match jkt {
                    None => None,
                    Some(Loose::Str(s)) => Some(
                        JwkThumbprint::parse(s)
                            .map_err(|_| invalid("cnf jkt is not a canonical thumbprint"))?,
                    ),
                    Some(_) => return Err(invalid("cnf jkt is not a string")),
                };
                (certificate, key)
            }
            Some(Cnf::NotObject) => return Err(invalid("cnf claim is not an object")),
        };
        let text = |s: &Cow<'_, str>| Text::of(s, json);
        let string_claim = |claim: &Option<Loose<'_>>| -> Result<Option<Text>, AuthError> {
            match claim {
                None | Some(Loose::Null) => Ok(None),
                Some(Loose::Str(s)) => Ok(Some(text(s))),
                Some(_) => Err(invalid("a string claim has another type")),
            }
        };
        let loose_str = |claim: &Option<Loose<'_>>| match claim {
            Some(Loose::Str(s)) => Some(text(s)),
            _ => None,
        };
        // Not refused when malformed: validators that require `iss` check it themselves, and an
        // introspection answer need not carry one.
        let issuer = loose_str(&fields.iss);
        let subject = string_claim(&fields.sub)?;
        let client_id = match string_claim(&fields.client_id)? {
            Some(id) => Some(id),
            None => string_claim(&fields.azp)?,
        };
        let scope = match &fields.scope {
            None | Some(Loose::Null) => None,
            Some(Loose::Str(s)) => Some(text(s)),
            Some(_) => return Err(invalid("scope claim is not a string")),
        };
        let scp = match &fields.scp {
            None | Some(Loose::Null) => Scp::None,
            Some(Loose::Str(s)) => Scp::Spaced(text(s)),
            Some(Loose::Strings(items)) => Scp::Items(items.iter().map(text).collect()),
            Some(Loose::Array) => return Err(invalid("scp claim holds a non-string")),
            Some(_) => return Err(invalid("scp claim is neither a string nor an array")),
        };
        let acr = loose_str(&fields.acr);
        let auth_time = fields.auth_time.as_ref().and_then(|t| {
            let number = t.as_number()?;
            number.as_i64().or_else(|| {
                number
                    .as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e15)
                    .map(|f| f.floor() as i64)
            })
        });
        Ok(Read {
            issuer,
            subject,
            client_id,
            scope,
            scp,
            scopes: OnceLock::new(),
            confirmation,
            dpop_key,
            acr,
            auth_time,
        })
    }
}

impl AccessToken {
    /// Builds a token from validated claims, reading `sub`, `client_id` (or `azp`), `scope`
    /// (space-separated string) or `scp` (array), and the confirmation `cnf.x5t#S256`
    /// (RFC 8705) and `cnf.jkt` (RFC 9449).
    ///
    /// # Errors
    /// [`AuthErrorKind::InvalidToken`] when one of these claims has the wrong shape: `cnf` that
    /// is not an object, an `x5t#S256` or `jkt` that is not a canonical thumbprint string, a
    /// `scope` that is not a string. A malformed binding is never read as "no binding".
    pub fn from_claims(claims: Map<String, Value>) -> Result<Self, AuthError> {
        let read = Read::of(&Fields::of_map(&claims), None)?;
        Ok(Self(Arc::new(Inner {
            claims: Claims::Map(claims),
            read,
        })))
    }

    /// A token from a JWT's claims set: what [`Read::of`] read from its fields (given this
    /// very text, or one with the same content), and its JSON text (a JSON object that
    /// `serde_json` reads into a map: [`Fields::from_json`] checked it), decoded again only if
    /// the application asks for the claims.
    pub(crate) fn from_json(read: Read, text: String) -> Self {
        Self(Arc::new(Inner {
            claims: Claims::Json {
                text,
                map: OnceLock::new(),
            },
            read,
        }))
    }

    /// The `iss` claim: which authorization server issued the token (for an introspection
    /// answer, its `iss` if it has one). `None` when it is absent or not a string. Behind
    /// [`Issuers`](crate::Issuers), the trusted issuer whose keys verified the token.
    pub fn issuer(&self) -> Option<&str> {
        self.text(&self.0.read.issuer)
    }

    /// The `sub` claim.
    pub fn subject(&self) -> Option<&str> {
        self.text(&self.0.read.subject)
    }

    /// The `client_id` claim (RFC 9068 §2.2), or `azp` when there is none.
    pub fn client_id(&self) -> Option<&str> {
        self.text(&self.0.read.client_id)
    }

    /// The scopes granted (`scope` and `scp` together).
    pub fn scopes(&self) -> &[String] {
        self.0
            .read
            .scopes
            .get_or_init(|| self.scope_iter().map(str::to_owned).collect())
    }

    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope_iter().any(|s| s == scope)
    }

    /// The scopes granted, in place: the words of `scope`, then those of `scp` (a string) or
    /// its items (an array).
    fn scope_iter(&self) -> impl Iterator<Item = &str> {
        let json = self.json();
        let read = &self.0.read;
        fn words<'a>(text: Option<&'a Text>, json: &'a str) -> impl Iterator<Item = &'a str> {
            let text = text.map_or("", |t| t.get(json));
            text.split(' ').filter(|s| !s.is_empty())
        }
        let (spaced, items) = match &read.scp {
            Scp::None => (None, &[][..]),
            Scp::Spaced(text) => (Some(text), &[][..]),
            Scp::Items(items) => (None, &items[..]),
        };
        words(read.scope.as_ref(), json)
            .chain(words(spaced, json))
            .chain(items.iter().map(move |t| t.get(json)))
    }

    /// The claims' JSON text that [`Read`]'s places are in (`""` for claims given as a map).
    fn json(&self) -> &str {
        match &self.0.claims {
            Claims::Json { text, .. } => text,
            Claims::Map(_) => "",
        }
    }

    fn text<'a>(&'a self, claim: &'a Option<Text>) -> Option<&'a str> {
        claim.as_ref().map(|t| t.get(self.json()))
    }

    /// The `acr` claim (authentication context class reference, OpenID Connect Core §2, RFC
    /// 9470): how the user authenticated. `None` when it is absent or not a string.
    pub fn acr(&self) -> Option<&str> {
        self.text(&self.0.read.acr)
    }

    /// The `auth_time` claim (RFC 9470 §2): when the user authenticated, in seconds since the
    /// Unix epoch. A NumericDate: an integer, or a non-negative finite number with its fraction
    /// cut off; `None` when it is absent or anything else.
    pub fn auth_time(&self) -> Option<i64> {
        self.0.read.auth_time
    }

    /// The certificate the token is bound to (`cnf.x5t#S256`). Once the layer let the request
    /// through, this equals the thumbprint of the certificate on the connection (unless the
    /// layer was told to [`allow_unbound`](crate::BoundTokenLayer::allow_unbound) and the token
    /// is unbound, in which case it is `None`).
    pub fn thumbprint(&self) -> Option<&CertThumbprint> {
        self.0.read.confirmation.as_ref()
    }

    /// The DPoP key the token is bound to (`cnf.jkt`, RFC 9449 §6). Once the layer let the
    /// request through, the request's DPoP proof was signed by this key.
    pub fn dpop_thumbprint(&self) -> Option<&JwkThumbprint> {
        self.0.read.dpop_key.as_ref()
    }

    /// Which sender constraints the token carries, all of which held for this request once the
    /// layer let it through.
    pub fn binding(&self) -> Binding {
        match (
            self.thumbprint().is_some(),
            self.dpop_thumbprint().is_some(),
        ) {
            (false, false) => Binding::Unbound,
            (true, false) => Binding::Certificate,
            (false, true) => Binding::Dpop,
            (true, true) => Binding::CertificateAndDpop,
        }
    }

    /// All claims.
    ///
    /// A JWT's claims are decoded into this map on the first call (the layer reads the claims
    /// it needs in one pass over the payload, and keeps the payload's JSON).
    pub fn claims(&self) -> &Map<String, Value> {
        match &self.0.claims {
            Claims::Map(map) => map,
            // Cannot fail: validation checked the text as serde_json reads a map
            // (`Fields::from_json`); were it to, there would be no claims rather than a panic.
            Claims::Json { text, map } => {
                map.get_or_init(|| serde_json::from_str(text).unwrap_or_default())
            }
        }
    }

    /// One claim.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims().get(name)
    }

    /// `Ok` when every scope in `required` was granted, else `insufficient_scope`.
    pub(crate) fn require_scopes(&self, required: &[String]) -> Result<(), AuthError> {
        if required.iter().all(|scope| self.has_scope(scope)) {
            Ok(())
        } else {
            Err(AuthError::new(AuthErrorKind::InsufficientScope))
        }
    }

    /// The claims as an application type.
    ///
    /// # Errors
    /// When the claims do not deserialize into `T`.
    pub fn deserialize_claims<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(MapDeserializer(self.claims()))
    }
}

/// The sender constraints of an [`AccessToken`] (its `cnf` claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Binding {
    /// No constraint: a plain bearer token (accepted only with
    /// [`allow_unbound`](crate::BoundTokenLayer::allow_unbound)).
    Unbound,
    /// A client certificate (`cnf.x5t#S256`, RFC 8705).
    Certificate,
    /// A DPoP key (`cnf.jkt`, RFC 9449).
    Dpop,
    /// Both: the request came with the certificate and a proof by the key.
    CertificateAndDpop,
}

/// Deserializes a borrowed claims map without cloning it into a `Value`.
struct MapDeserializer<'a>(&'a Map<String, Value>);

impl<'de> serde::Deserializer<'de> for MapDeserializer<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        use serde::de::value::MapDeserializer as Entries;
        use serde::de::IntoDeserializer as _;
        let entries = self
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.into_deserializer()));
        visitor.visit_map(Entries::new(entries))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("issuer", &self.issuer())
            .field("subject", &self.subject())
            .field("client_id", &self.client_id())
            .field("scopes", &self.scope_iter().collect::<Vec<_>>())
            .field("thumbprint", &self.0.read.confirmation)
            .field("dpop_thumbprint", &self.0.read.dpop_key)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn token(claims: Value) -> Result<AccessToken, AuthError> {
        match claims {
            Value::Object(map) => AccessToken::from_claims(map),
            _ => unreachable!("test claims are objects"),
        }
    }

    const TP: &str = "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0";

    #[test]
    fn scope_string_and_scp_array_are_both_understood() {
        let t = token(json!({"scope": "read  write", "scp": ["admin"]})).unwrap();
        assert_eq!(t.scopes(), ["read", "write", "admin"]);
        assert!(t.has_scope("admin"));
        assert!(!t.has_scope("rea"));
    }

    #[test]
    fn cnf_is_parsed_strictly() {
        assert_eq!(
            token(json!({"cnf": {"x5t#S256": TP}}))
                .unwrap()
                .thumbprint()
                .unwrap()
                .to_string(),
            TP
        );
        assert!(token(json!({})).unwrap().thumbprint().is_none());
        let dpop = token(json!({"cnf": {"jkt": TP}})).unwrap();
        assert!(dpop.thumbprint().is_none());
        assert_eq!(dpop.dpop_thumbprint().unwrap().to_string(), TP);
        assert_eq!(dpop.binding(), Binding::Dpop);
        let both = token(json!({"cnf": {"jkt": TP, "x5t#S256": TP}})).unwrap();
        assert_eq!(both.binding(), Binding::CertificateAndDpop);
        assert_eq!(token(json!({})).unwrap().binding(), Binding::Unbound);
        for bad in [
            json!({"cnf": "x"}),
            json!({"cnf": [TP]}),
            json!({"cnf": {"x5t#S256": 5}}),
            json!({"cnf": {"x5t#S256": format!("{TP}=")}}),
            json!({"cnf": {"x5t#S256": &TP[1..]}}),
            json!({"cnf": {"jkt": "x"}}),
            json!({"cnf": {"jkt": 5}}),
            json!({"cnf": {"jkt": format!("{TP}=")}}),
        ] {
            let err = token(bad).unwrap_err();
            assert_eq!(err.kind(), AuthErrorKind::InvalidToken);
        }
    }

    #[test]
    fn the_issuer_is_read_when_it_is_a_string() {
        let t = token(json!({"iss": "https://as.test"})).unwrap();
        assert_eq!(t.issuer(), Some("https://as.test"));
        assert_eq!(token(json!({"iss": 5})).unwrap().issuer(), None);
        assert_eq!(token(json!({})).unwrap().issuer(), None);
    }

    #[test]
    fn client_id_falls_back_to_azp() {
        assert_eq!(token(json!({"azp": "c"})).unwrap().client_id(), Some("c"));
        assert_eq!(
            token(json!({"azp": "c", "client_id": "d"}))
                .unwrap()
                .client_id(),
            Some("d")
        );
    }

    #[test]
    fn typed_claims_deserialize_without_cloning() {
        #[derive(serde::Deserialize)]
        struct Custom {
            sub: String,
            tenant: u32,
        }
        let t = token(json!({"sub": "alice", "tenant": 7, "extra": [1, 2]})).unwrap();
        let c: Custom = t.deserialize_claims().unwrap();
        assert_eq!((c.sub.as_str(), c.tenant), ("alice", 7));
    }

    #[test]
    fn acr_and_auth_time_are_read_only_when_well_formed() {
        let t = token(json!({"acr": "urn:mfa", "auth_time": 1_700_000_000})).unwrap();
        assert_eq!(t.acr(), Some("urn:mfa"));
        assert_eq!(t.auth_time(), Some(1_700_000_000));
        let t = token(json!({"auth_time": 1_700_000_000.9})).unwrap();
        assert_eq!((t.acr(), t.auth_time()), (None, Some(1_700_000_000)));
        for bad in [
            json!({"acr": 2, "auth_time": "1700000000"}),
            json!({"acr": null, "auth_time": null}),
            json!({"acr": ["urn:mfa"], "auth_time": -1.5}),
            json!({"auth_time": 1e300}),
            json!({"auth_time": [1]}),
        ] {
            let t = token(bad.clone()).unwrap();
            assert_eq!((t.acr(), t.auth_time()), (None, None), "{bad}");
        }
    }

    #[test]
    fn string_claims_of_a_json_text_read_the_same_in_place_or_copied() {
        let json = r#"{"iss":"https://as.test","sub":"al\u0069ce","client_id":"c",
            "scope":" read  write ","scp":["a b","\u0063"],"acr":"urn:mfa"}"#;
        let fields = Fields::from_json(json).unwrap();
        let read = Read::of(&fields, Some(json)).unwrap();
        // Unescaped strings are places in the text; escaped ones copies.
        assert!(matches!(read.issuer, Some(Text::At(..))));
        assert!(matches!(read.subject, Some(Text::Own(_))));
        let t = AccessToken::from_json(read, json.to_owned());
        assert_eq!(t.issuer(), Some("https://as.test"));
        assert_eq!(t.subject(), Some("alice"));
        assert_eq!((t.client_id(), t.acr()), (Some("c"), Some("urn:mfa")));
        assert_eq!(t.scopes(), ["read", "write", "a b", "c"]);
        assert!(t.has_scope("a b") && t.has_scope("c") && !t.has_scope("a"));
        // Read from another text (not the one kept): copies, never places in the wrong text.
        let other = json.to_owned();
        let fields = Fields::from_json(&other).unwrap();
        let read = Read::of(&fields, Some(json)).unwrap();
        assert!(matches!(read.issuer, Some(Text::Own(_))));
        drop(fields);
        let t = AccessToken::from_json(read, other);
        assert_eq!(
            (t.issuer(), t.client_id()),
            (Some("https://as.test"), Some("c"))
        );
    }

    #[test]
    fn debug_output_shows_no_claim_values() {
        let t = token(json!({"sub": "alice", "secret_claim": "hunter2"})).unwrap();
        assert!(!format!("{t:?}").contains("hunter2"));
    }
}
