//! The RFC 7662 answer (§2.2) turned into an outcome: accepted, refused (and for how long the
//! verdict is kept), or malformed; and the `exp` / `nbf` check made again on every cache hit.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{AuthError, AuthErrorKind};
use crate::support::cache::{entry_bytes, Keep};
use crate::support::time::unix_now_i64;
use crate::token::AccessToken;

/// What an answer must say to be accepted, and how long outcomes are kept.
pub(super) struct Rules {
    /// Required `iss`, if any.
    pub(super) issuer: Option<String>,
    /// Accepted `aud` values (none: `aud` not checked).
    pub(super) audiences: Vec<String>,
    /// Seconds of tolerance on `exp` and `nbf`.
    pub(super) leeway: i64,
    pub(super) active_ttl: Duration,
    pub(super) inactive_ttl: Duration,
}

/// An active token's parsed answer, with the times to check again on every cache hit.
#[derive(Clone)]
pub(super) struct Active {
    token: AccessToken,
    exp: Option<i64>,
    nbf: Option<i64>,
}

pub(super) type Outcome = Result<Active, AuthError>;

/// What a cached refusal takes (no claims).
const REFUSAL_BYTES: usize = 512;

impl Rules {
    /// Turns a `200` answer into an outcome. Answers the server meant (active or not, for us or
    /// not) are cached; answers that are malformed are not.
    pub(super) fn interpret(&self, body: &[u8]) -> (Outcome, Keep) {
        let dont_keep = |e| {
            (
                Err(e),
                Keep {
                    ttl: Duration::ZERO,
                    bytes: 0,
                },
            )
        };
        let keep_refusal = |e| (Err(e), self.refusal_keep());
        let malformed = invalid("malformed introspection response");
        let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(body) else {
            return dont_keep(malformed);
        };
        // RFC 7662 §2.2: `active` is REQUIRED and a boolean.
        match claims.get("active") {
            Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => {
                return keep_refusal(AuthError::with_detail(
                    AuthErrorKind::TokenInactive,
                    "introspection: token not active",
                ))
            }
            _ => return dont_keep(malformed),
        }
        let (Ok(exp), Ok(nbf)) = (timestamp(&claims, "exp"), timestamp(&claims, "nbf")) else {
            return dont_keep(malformed);
        };
        if let Err(e) = self.check_meant_for_us(&claims) {
            return keep_refusal(e);
        }
        let token = match AccessToken::from_claims(claims) {
            Ok(token) => token,
            // A `cnf`, `scope` or `sub` of the wrong shape: the answer is malformed.
            Err(e) => return dont_keep(e),
        };
        let active = Active { token, exp, nbf };
        let now = unix_now_i64();
        if let Err(e) = check_times_at(&active, now, self.leeway) {
            return keep_refusal(e);
        }
        // RFC 7662 §4: never beyond the token's own expiry.
        let ttl = match exp {
            Some(exp) if exp <= now => Duration::ZERO,
            Some(exp) => self
                .active_ttl
                .min(Duration::from_secs((exp - now).unsigned_abs())),
            None => self.active_ttl,
        };
        let keep = Keep {
            ttl,
            bytes: entry_bytes(body.len()),
        };
        (Ok(active), keep)
    }

    /// A token the endpoint refused to introspect (a `400` about the token): invalid, and
    /// kept no longer than an inactive answer.
    pub(super) fn refused_by_the_endpoint(&self) -> (Outcome, Keep) {
        let refusal = invalid("introspection endpoint refused the token");
        (Err(refusal), self.refusal_keep())
    }

    /// How a refusal the server meant is kept: for the negative TTL.
    fn refusal_keep(&self) -> Keep {
        Keep {
            ttl: self.inactive_ttl,
            bytes: REFUSAL_BYTES,
        }
    }

    /// `token_type`, `token_use`, `iss` and `aud` of an active answer.
    fn check_meant_for_us(&self, claims: &Map<String, Value>) -> Result<(), AuthError> {
        // RFC 7662 §2.2 / RFC 9449 §6.2: a Bearer token, or a DPoP token, which must then be
        // bound to a key (cnf.jkt; the layer checks the proof against it, and refuses it as a
        // Bearer token). Any other type is refused.
        match claims.get("token_type") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => {}
            Some(Value::String(t)) if t.eq_ignore_ascii_case("dpop") => {
                let bound = claims
                    .get("cnf")
                    .and_then(Value::as_object)
                    .is_some_and(|cnf| cnf.contains_key("jkt"));
                if !bound {
                    return Err(invalid("introspection: token_type DPoP without cnf.jkt"));
                }
            }
            Some(_) => {
                return Err(invalid(
                    "introspection: token_type is neither Bearer nor DPoP",
                ))
            }
        }
        // Some servers (Ory Hydra) introspect refresh tokens too and say so here.
        match claims.get("token_use") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if t == "access_token" => {}
            Some(_) => return Err(invalid("introspection: not an access token")),
        }
        if let Some(issuer) = &self.issuer {
            if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
                return Err(invalid("introspection: wrong or missing iss"));
            }
        }
        if !self.audiences.is_empty() {
            let ours = |v: &Value| {
                v.as_str()
                    .is_some_and(|a| self.audiences.iter().any(|o| o == a))
            };
            let matches = match claims.get("aud") {
                Some(Value::Array(items)) => items.iter().any(ours),
                Some(single) => ours(single),
                None => false,
            };
            if !matches {
                return Err(invalid("introspection: wrong or missing aud"));
            }
        }
        Ok(())
    }
}

pub(super) fn invalid(detail: &'static str) -> AuthError {
    AuthError::with_detail(AuthErrorKind::InvalidToken, detail)
}

/// A NumericDate member: absent (or null), or a number of seconds (fractions cut off).
fn timestamp(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, ()> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(Some(i)),
            (None, Some(f)) if f.is_finite() && f.abs() < 1e15 => Ok(Some(f.floor() as i64)),
            _ => Err(()),
        },
        Some(_) => Err(()),
    }
}

/// `exp` and `nbf` against the clock, again on every cache hit (a cached answer outlives
/// neither).
pub(super) fn check_times(outcome: Outcome, leeway: i64) -> Result<AccessToken, AuthError> {
    let active = outcome?;
    if active.exp.is_some() || active.nbf.is_some() {
        check_times_at(&active, unix_now_i64(), leeway)?;
    }
    Ok(active.token)
}

fn check_times_at(active: &Active, now: i64, leeway: i64) -> Result<(), AuthError> {
    if active
        .exp
        .is_some_and(|exp| exp.saturating_add(leeway) <= now)
    {
        return Err(AuthError::with_detail(
            AuthErrorKind::TokenExpired,
            "introspection: token expired",
        ));
    }
    if active
        .nbf
        .is_some_and(|nbf| nbf > now.saturating_add(leeway))
    {
        return Err(AuthError::with_detail(
            AuthErrorKind::TokenNotYetValid,
            "introspection: token not yet valid (nbf)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::introspection::{IntrospectionValidator, IntrospectionValidatorBuilder};
    use serde_json::json;

    const TP: &str = "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0";

    fn validator(
        configure: impl FnOnce(IntrospectionValidatorBuilder) -> IntrospectionValidatorBuilder,
    ) -> IntrospectionValidator {
        configure(
            IntrospectionValidator::endpoint("https://as.test/introspect")
                .client_secret_basic("rs", "secret"),
        )
        .build()
        .unwrap()
    }

    fn interpret(
        v: &IntrospectionValidator,
        answer: Value,
    ) -> (Result<AccessToken, AuthError>, Duration) {
        let (outcome, keep) = v.0.rules.interpret(answer.to_string().as_bytes());
        (outcome.map(|a| a.token), keep.ttl)
    }

    fn kind(r: &Result<AccessToken, AuthError>) -> AuthErrorKind {
        r.as_ref().err().map(AuthError::kind).expect("an error")
    }

    #[test]
    fn an_active_bound_answer_becomes_a_token_kept_at_most_the_cache_ttl() {
        let v = validator(|b| b);
        let (token, ttl) = interpret(
            &v,
            json!({"active": true, "sub": "alice", "client_id": "c", "scope": "read write",
                   "cnf": {"x5t#S256": TP}, "exp": unix_now_i64() + 3600}),
        );
        let token = token.unwrap();
        assert_eq!(token.subject(), Some("alice"));
        assert_eq!(token.client_id(), Some("c"));
        assert_eq!(token.scopes(), ["read", "write"]);
        assert_eq!(token.thumbprint().unwrap().to_string(), TP);
        assert_eq!(ttl, Duration::from_secs(3));
    }

    #[test]
    fn an_active_answer_is_never_kept_beyond_exp() {
        let v = validator(|b| b.cache_ttl(Duration::from_secs(600)));
        let (_, ttl) = interpret(&v, json!({"active": true, "exp": unix_now_i64() + 10}));
        assert!(
            ttl <= Duration::from_secs(10) && ttl >= Duration::from_secs(9),
            "{ttl:?}"
        );
        // Within the leeway after exp: accepted, but not cached.
        let (token, ttl) = interpret(&v, json!({"active": true, "exp": unix_now_i64() - 5}));
        assert!(token.is_ok());
        assert_eq!(ttl, Duration::ZERO);
    }

    #[test]
    fn refusals_the_server_meant_are_kept_for_the_negative_ttl() {
        let v = validator(|b| b.issuer("https://as.test").audience("https://api.test"));
        let aud = "https://api.test";
        for (answer, expected) in [
            (json!({"active": false}), AuthErrorKind::TokenInactive),
            (
                json!({"active": true, "iss": "https://other", "aud": aud}),
                AuthErrorKind::InvalidToken,
            ),
            (
                json!({"active": true, "aud": aud}),
                AuthErrorKind::InvalidToken,
            ),
            (
                json!({"active": true, "iss": "https://as.test", "aud": "https://other"}),
                AuthErrorKind::InvalidToken,
            ),
            (
                json!({"active": true, "iss": "https://as.test"}),
                AuthErrorKind::InvalidToken,
            ),
            (
                json!({"active": true, "iss": "https://as.test", "aud": aud, "token_type": "DPoP"}),
                AuthErrorKind::InvalidToken,
            ),
            (
                json!({"active": true, "iss": "https://as.test", "aud": aud, "token_type": "DPoP", "cnf": {"x5t#S256": TP}}),
                AuthErrorKind::InvalidToken,
            ),
            (
                json!({"active": true, "iss": "https://as.test", "aud": aud, "token_type": "N_A"}),
                AuthErrorKind::InvalidToken,
            ),
            (
                json!({"active": true, "iss": "https://as.test", "aud": aud, "token_use": "refresh_token"}),
                AuthErrorKind::InvalidToken,
            ),
            (
                json!({"active": true, "iss": "https://as.test", "aud": aud, "exp": unix_now_i64() - 3600}),
                AuthErrorKind::TokenExpired,
            ),
            (
                json!({"active": true, "iss": "https://as.test", "aud": aud, "nbf": unix_now_i64() + 3600}),
                AuthErrorKind::TokenNotYetValid,
            ),
        ] {
            let (result, ttl) = interpret(&v, answer.clone());
            assert_eq!(kind(&result), expected, "{answer}");
            assert_eq!(ttl, Duration::from_secs(5), "{answer}");
        }
        let (ok, _) = interpret(
            &v,
            json!({"active": true, "iss": "https://as.test", "aud": ["x", aud], "token_type": "bearer"}),
        );
        assert!(ok.is_ok());
        // RFC 9449 §6.2: a DPoP token bound to its key is active and carries the binding.
        let (dpop, _) = interpret(
            &v,
            json!({"active": true, "iss": "https://as.test", "aud": aud, "token_type": "DPoP", "cnf": {"jkt": TP}}),
        );
        assert_eq!(dpop.unwrap().dpop_thumbprint().unwrap().to_string(), TP);
    }

    #[test]
    fn malformed_answers_are_invalid_and_never_kept() {
        let v = validator(|b| b);
        for answer in [
            json!([]),
            json!("active"),
            json!({}),
            json!({"active": "true"}),
            json!({"active": 1}),
            json!({"active": null}),
            json!({"active": true, "exp": "tomorrow"}),
            json!({"active": true, "nbf": {}}),
            json!({"active": true, "cnf": {"x5t#S256": 7}}),
            json!({"active": true, "cnf": "x"}),
            json!({"active": true, "scope": ["a"]}),
        ] {
            let (result, ttl) = interpret(&v, answer.clone());
            assert_eq!(kind(&result), AuthErrorKind::InvalidToken, "{answer}");
            assert_eq!(ttl, Duration::ZERO, "{answer}");
        }
        for body in [&b"not json"[..], b"", b"{\"active\":true", b"\xff\xfe"] {
            let (outcome, keep) = v.0.rules.interpret(body);
            assert_eq!(outcome.err().unwrap().kind(), AuthErrorKind::InvalidToken);
            assert_eq!(keep.ttl, Duration::ZERO);
        }
    }

    #[test]
    fn fractional_timestamps_are_accepted() {
        let v = validator(|b| b);
        let exp = unix_now_i64() as f64 + 100.5;
        let (token, _) = interpret(&v, json!({"active": true, "exp": exp}));
        assert!(token.is_ok());
        let (token, _) = interpret(&v, json!({"active": true, "exp": 1e300}));
        assert_eq!(kind(&token), AuthErrorKind::InvalidToken);
    }

    #[test]
    fn a_cached_answer_is_checked_against_the_clock_on_every_hit() {
        let active = |exp, nbf| Active {
            token: AccessToken::from_claims(Map::new()).unwrap(),
            exp,
            nbf,
        };
        let now = unix_now_i64();
        let expired = check_times(Ok(active(Some(now - 1), None)), 0);
        assert_eq!(kind(&expired), AuthErrorKind::TokenExpired);
        assert!(check_times(Ok(active(Some(now - 1), None)), 60).is_ok());
        let early = check_times(Ok(active(None, Some(now + 120))), 60);
        assert_eq!(kind(&early), AuthErrorKind::TokenNotYetValid);
        assert!(check_times(Ok(active(Some(now + 60), Some(now - 60))), 0).is_ok());
    }

    /// Seeded random answers (valid JSON of every shape, and bytes): never a panic, and never
    /// an accepted token unless the answer says `"active": true`.
    #[test]
    fn random_answers_never_panic_and_never_accept_without_active_true() {
        let v = validator(|b| b);
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        fn value(next: &mut dyn FnMut() -> u64, depth: u32) -> Value {
            let names = [
                "active",
                "exp",
                "nbf",
                "cnf",
                "x5t#S256",
                "scope",
                "sub",
                "aud",
                "iss",
                "token_type",
                "scp",
                "client_id",
            ];
            match next() % if depth > 2 { 6 } else { 8 } {
                0 => Value::Null,
                1 => Value::Bool(next().is_multiple_of(2)),
                2 => json!(next() as i64 >> (next() % 64)),
                3 => json!((next() as f64) / 7.0 - 1e18),
                4 => json!(TP),
                5 => json!(names[(next() % 12) as usize]),
                6 => Value::Array((0..next() % 4).map(|_| value(next, depth + 1)).collect()),
                _ => Value::Object(
                    (0..next() % 6)
                        .map(|_| {
                            (
                                names[(next() % 12) as usize].to_owned(),
                                value(next, depth + 1),
                            )
                        })
                        .collect(),
                ),
            }
        }
        let mut accepted = 0;
        for _ in 0..5000 {
            let answer = value(&mut next, 0);
            let body = answer.to_string();
            let (outcome, _) = v.0.rules.interpret(body.as_bytes());
            if outcome.is_ok() {
                assert_eq!(answer["active"], Value::Bool(true), "{body}");
                accepted += 1;
            }
            let mut bytes = body.into_bytes();
            if !bytes.is_empty() {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
                let _ = v.0.rules.interpret(&bytes);
            }
        }
        assert!(accepted > 0, "the generator also makes acceptable answers");
    }
}
