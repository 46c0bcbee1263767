//! The claims certbound itself reads ([`Fields`]): decoded from a JWT's payload in one serde pass
//! over its JSON, or borrowed from a claims map (introspection answers, an application's own
//! validator). The other claims are only checked to be JSON as `serde_json::Value` reads it, so
//! that [`AccessToken::claims`](super::AccessToken::claims) can decode them later, when (and
//! only if) the application asks.
//!
//! Why not a map of every claim: on a request with a new token, decoding each claim into a
//! `Map<String, Value>` (one allocation per key, string and array, a B-tree insert per claim,
//! and as many frees) cost ~12 000 instructions of the ~22 000 that surrounded the signature
//! verification (issue 26, BENCHMARKS.md); this pass allocates only for escaped strings and for
//! arrays of strings (`aud`, `scp`).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Number, Value};

/// A claim certbound reads, by its JSON shape: only what its checks tell apart.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Loose<'a> {
    Null,
    Str(Cow<'a, str>),
    Num(Number),
    /// An array of strings only (the empty array included).
    Strings(Vec<Cow<'a, str>>),
    /// An array holding a non-string.
    Array,
    /// A boolean or an object.
    Other,
}

impl<'a> Loose<'a> {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Loose::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_number(&self) -> Option<&Number> {
        match self {
            Loose::Num(n) => Some(n),
            _ => None,
        }
    }

    /// The shape of a claims map's value, borrowed.
    fn of(value: &'a Value) -> Self {
        match value {
            Value::Null => Loose::Null,
            Value::String(s) => Loose::Str(Cow::Borrowed(s)),
            Value::Number(n) => Loose::Num(n.clone()),
            Value::Array(items) => items
                .iter()
                .map(|item| item.as_str().map(Cow::Borrowed))
                .collect::<Option<Vec<_>>>()
                .map_or(Loose::Array, Loose::Strings),
            Value::Bool(_) | Value::Object(_) => Loose::Other,
        }
    }
}

/// The `cnf` claim: an object (of which certbound reads `x5t#S256` and `jkt`), or not one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cnf<'a> {
    Object {
        x5t_s256: Option<Loose<'a>>,
        jkt: Option<Loose<'a>>,
    },
    NotObject,
}

/// The claims certbound reads; `None` where the claim is absent. Every other claim of a decoded
/// payload was checked to be well-formed JSON, and skipped.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Fields<'a> {
    pub(crate) iss: Option<Loose<'a>>,
    pub(crate) aud: Option<Loose<'a>>,
    pub(crate) exp: Option<Loose<'a>>,
    pub(crate) nbf: Option<Loose<'a>>,
    pub(crate) sub: Option<Loose<'a>>,
    pub(crate) client_id: Option<Loose<'a>>,
    pub(crate) azp: Option<Loose<'a>>,
    pub(crate) scope: Option<Loose<'a>>,
    pub(crate) scp: Option<Loose<'a>>,
    pub(crate) cnf: Option<Cnf<'a>>,
    pub(crate) acr: Option<Loose<'a>>,
    pub(crate) auth_time: Option<Loose<'a>>,
}

impl<'a> Fields<'a> {
    /// The fields of a claims map, borrowed.
    pub(crate) fn of_map(claims: &'a Map<String, Value>) -> Self {
        let get = |name: &str| claims.get(name).map(Loose::of);
        let cnf = claims.get("cnf").map(|cnf| match cnf {
            Value::Object(cnf) => Cnf::Object {
                x5t_s256: cnf.get("x5t#S256").map(Loose::of),
                jkt: cnf.get("jkt").map(Loose::of),
            },
            _ => Cnf::NotObject,
        });
        Fields {
            iss: get("iss"),
            aud: get("aud"),
            exp: get("exp"),
            nbf: get("nbf"),
            sub: get("sub"),
            client_id: get("client_id"),
            azp: get("azp"),
            scope: get("scope"),
            scp: get("scp"),
            cnf,
            acr: get("acr"),
            auth_time: get("auth_time"),
        }
    }

    /// The fields of a claims set's JSON text (a JSON object: see
    /// [`json_object_text`](crate::support::encoding::json_object_text)), in one pass.
    ///
    /// As strict as decoding the whole text into a `Map<String, Value>`: the claims not read
    /// here are checked with `serde_json`'s own reading of a `Value` (numbers in range, string
    /// escapes, nesting depth), so that a text refused there is refused here, and
    /// [`AccessToken::claims`](super::AccessToken::claims) can decode it later. Stricter in
    /// one respect: a claim read here that appears twice (`exp`, twice; `x5t#S256`, twice in
    /// `cnf`) refuses the text, where the map would keep the last (RFC 7519 §4 allows either).
    pub(crate) fn from_json(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// Any JSON value, checked as `serde_json::Value` reads it (through `deserialize_any`), and
/// dropped. Never `IgnoredAny`: serde_json's skipping does not check number ranges, and would
/// let through a payload that [`AccessToken::claims`](super::AccessToken::claims) cannot decode.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_none<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_key::<Checked>()?.is_some() {
            map.next_value::<Checked>()?;
        }
        Ok(Checked)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LooseVisitor(std::marker::PhantomData))
    }
}

struct LooseVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for LooseVisitor<'a> {
    type Value = Loose<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Loose<'a>, E> {
        Ok(Loose::Other)
    }
    fn visit_i64<E>(self, n: i64) -> Result<Loose<'a>, E> {
        Ok(Loose::Num(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Loose<'a>, E> {
        Ok(Loose::Num(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Loose<'a>, E> {
        // As `Value` reads it: serde_json gives no non-finite number.
        Ok(Number::from_f64(n).map_or(Loose::Null, Loose::Num))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Loose<'a>, E> {
        Ok(Loose::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Loose<'a>, E> {
        Ok(Loose::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_unit<E>(self) -> Result<Loose<'a>, E> {
        Ok(Loose::Null)
    }
    fn visit_none<E>(self) -> Result<Loose<'a>, E> {
        Ok(Loose::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose<'a>, A::Error> {
        let mut strings = Some(Vec::new());
        while let Some(item) = seq.next_element::<Item<'a>>()? {
            match (item, &mut strings) {
                (Item::Str(s), Some(all)) => all.push(s),
                // The rest is still read, and checked.
                _ => strings = None,
            }
        }
        Ok(strings.map_or(Loose::Array, Loose::Strings))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Loose<'a>, A::Error> {
        CheckedVisitor.visit_map(map).map(|_| Loose::Other)
    }
}

/// A member of an array: a string, or anything else (checked, then dropped).
enum Item<'a> {
    Str(Cow<'a, str>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Item<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for ItemVisitor<'a> {
            type Value = Item<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Item<'a>, E> {
                Ok(Item::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Item<'a>, E> {
                Ok(Item::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Item<'a>, E> {
                Ok(Item::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Item<'a>, E> {
                Ok(Item::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Item<'a>, E> {
                Ok(Item::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Item<'a>, E> {
                Ok(Item::Other)
            }
            fn visit_unit<E>(self) -> Result<Item<'a>, E> {
                Ok(Item::Other)
            }
            fn visit_none<E>(self) -> Result<Item<'a>, E> {
                Ok(Item::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Item<'a>, A::Error> {
                CheckedVisitor.visit_seq(seq).map(|_| Item::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Item<'a>, A::Error> {
                CheckedVisitor.visit_map(map).map(|_| Item::Other)
            }
        }
        deserializer.deserialize_any(ItemVisitor(std::marker::PhantomData))
    }
}

/// A member name of the claims set, or of `cnf`: one certbound reads, or another.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Name {
    Iss,
    Aud,
    Exp,
    Nbf,
    Sub,
    ClientId,
    Azp,
    Scope,
    Scp,
    Cnf,
    Acr,
    AuthTime,
    X5tS256,
    Jkt,
    Other,
}

impl Name {
    fn of(name: &str) -> Self {
        match name {
            "iss" => Name::Iss,
            "aud" => Name::Aud,
            "exp" => Name::Exp,
            "nbf" => Name::Nbf,
            "sub" => Name::Sub,
            "client_id" => Name::ClientId,
            "azp" => Name::Azp,
            "scope" => Name::Scope,
            "scp" => Name::Scp,
            "cnf" => Name::Cnf,
            "acr" => Name::Acr,
            "auth_time" => Name::AuthTime,
            "x5t#S256" => Name::X5tS256,
            "jkt" => Name::Jkt,
            _ => Name::Other,
        }
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl Visitor<'_> for NameVisitor {
            type Value = Name;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            // Escaped names arrive unescaped, as map keys do.
            fn visit_str<E>(self, name: &str) -> Result<Name, E> {
                Ok(Name::of(name))
            }
        }
        deserializer.deserialize_any(NameVisitor)
    }
}

/// Sets a member read once; a second one refuses the claims set.
fn once<T, E: de::Error>(slot: &mut Option<T>, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::custom("a claim certbound reads appears twice"));
    }
    *slot = Some(value);
    Ok(())
}

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for FieldsVisitor<'a> {
            type Value = Fields<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JWT claims set")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'a>, A::Error> {
                let mut f = Fields::default();
                while let Some(name) = map.next_key::<Name>()? {
                    let slot = match name {
                        Name::Iss => &mut f.iss,
                        Name::Aud => &mut f.aud,
                        Name::Exp => &mut f.exp,
                        Name::Nbf => &mut f.nbf,
                        Name::Sub => &mut f.sub,
                        Name::ClientId => &mut f.client_id,
                        Name::Azp => &mut f.azp,
                        Name::Scope => &mut f.scope,
                        Name::Scp => &mut f.scp,
                        Name::Acr => &mut f.acr,
                        Name::AuthTime => &mut f.auth_time,
                        Name::Cnf => {
                            let cnf = map.next_value::<Cnf<'a>>()?;
                            once(&mut f.cnf, cnf)?;
                            continue;
                        }
                        Name::X5tS256 | Name::Jkt | Name::Other => {
                            map.next_value::<Checked>()?;
                            continue;
                        }
                    };
                    let value = map.next_value::<Loose<'a>>()?;
                    once(slot, value)?;
                }
                Ok(f)
            }
        }
        // An object only (`deserialize_map` refuses an array, which a struct would read).
        deserializer.deserialize_map(FieldsVisitor(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Cnf<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CnfVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for CnfVisitor<'a> {
            type Value = Cnf<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Cnf<'a>, A::Error> {
                let (mut x5t_s256, mut jkt) = (None, None);
                while let Some(name) = map.next_key::<Name>()? {
                    let slot = match name {
                        Name::X5tS256 => &mut x5t_s256,
                        Name::Jkt => &mut jkt,
                        _ => {
                            map.next_value::<Checked>()?;
                            continue;
                        }
                    };
                    let value = map.next_value::<Loose<'a>>()?;
                    once(slot, value)?;
                }
                Ok(Cnf::Object { x5t_s256, jkt })
            }
            fn visit_bool<E>(self, _: bool) -> Result<Cnf<'a>, E> {
                Ok(Cnf::NotObject)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Cnf<'a>, E> {
                Ok(Cnf::NotObject)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Cnf<'a>, E> {
                Ok(Cnf::NotObject)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Cnf<'a>, E> {
                Ok(Cnf::NotObject)
            }
            fn visit_str<E>(self, _: &str) -> Result<Cnf<'a>, E> {
                Ok(Cnf::NotObject)
            }
            fn visit_unit<E>(self) -> Result<Cnf<'a>, E> {
                Ok(Cnf::NotObject)
            }
            fn visit_none<E>(self) -> Result<Cnf<'a>, E> {
                Ok(Cnf::NotObject)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Cnf<'a>, A::Error> {
                CheckedVisitor.visit_seq(seq).map(|_| Cnf::NotObject)
            }
        }
        deserializer.deserialize_any(CnfVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
#[path = "fields_tests.rs"]
mod tests;
