//! What every decision leaves behind, whichever frontend made it: one sample of
//! `certbound_authz_decisions_total` and of the decision-duration histogram, and for a refusal
//! one log line on stderr (text, or a JSON object per line with `[log] format = "json"`).
//! Never token or proof material: the line holds the peer, the request as the proxy described
//! it (quoted), the status and the challenge's error code.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::StatusCode;

/// The series of every decision, by frontend and result.
pub(crate) const DECISIONS: &str = "certbound_authz_decisions_total";
/// The time from a check's arrival to its answer, by frontend.
pub(crate) const DECISION_SECONDS: &str = "certbound_authz_decision_duration_seconds";
/// Checks refused because the peer is not in `proxy.trusted`, by frontend (also counted as
/// `result="deny"` decisions).
pub(crate) const UNTRUSTED: &str = "certbound_authz_untrusted_peers_total";

/// The listener a check arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frontend {
    /// Envoy's ext_authz v3 over gRPC.
    Grpc,
    /// The HTTP forward-auth listener.
    Http,
}

impl Frontend {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Frontend::Grpc => "grpc",
            Frontend::Http => "http",
        }
    }
}

/// How a decision ended, for `result=`: `allow` (2xx), `error` (5xx: a store, an issuer's keys
/// or an introspection endpoint could not answer) or `deny` (anything else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Allow,
    Deny,
    Error,
}

impl Outcome {
    pub(crate) fn of(status: StatusCode) -> Self {
        if status.is_success() {
            Outcome::Allow
        } else if status.is_server_error() {
            Outcome::Error
        } else {
            Outcome::Deny
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Error => "error",
        }
    }
}

/// Records one decision of `frontend` that ended with `status` after `elapsed`.
pub(crate) fn decided(frontend: Frontend, status: StatusCode, elapsed: Duration) {
    let labels = [
        ("frontend", frontend.label()),
        ("result", Outcome::of(status).label()),
    ];
    metrics::counter!(DECISIONS, &labels).increment(1);
    metrics::histogram!(DECISION_SECONDS, "frontend" => frontend.label())
        .record(elapsed.as_secs_f64());
}

/// Records one finished check of `frontend` from `peer`, begun at `started`: its decision
/// sample and, when `error` says it was refused, its line (`request` as the proxy described it).
pub(crate) fn record(
    frontend: Frontend,
    peer: Option<SocketAddr>,
    started: std::time::Instant,
    status: StatusCode,
    request: Option<&str>,
    error: Option<&str>,
) {
    decided(frontend, status, started.elapsed());
    if let Some(error) = error {
        refused(&Refusal {
            frontend,
            peer,
            request,
            status,
            error,
        });
    }
}

/// Records a check refused because its peer is untrusted (its decision is recorded apart).
pub(crate) fn untrusted(frontend: Frontend) {
    metrics::counter!(UNTRUSTED, "frontend" => frontend.label()).increment(1);
}

/// Registers every series of this module at zero, so that a scrape before the first check
/// shows them (and `rate()` has a start).
pub(crate) fn describe() {
    for frontend in [Frontend::Grpc, Frontend::Http] {
        for outcome in [Outcome::Allow, Outcome::Deny, Outcome::Error] {
            let labels = [("frontend", frontend.label()), ("result", outcome.label())];
            metrics::counter!(DECISIONS, &labels).increment(0);
        }
        metrics::counter!(UNTRUSTED, "frontend" => frontend.label()).increment(0);
        // Registered without a sample: its buckets are rendered at zero.
        let _ = metrics::histogram!(DECISION_SECONDS, "frontend" => frontend.label());
    }
    metrics::describe_counter!(
        DECISIONS,
        "Decisions of certbound-authz, by frontend and result"
    );
    metrics::describe_histogram!(
        DECISION_SECONDS,
        metrics::Unit::Seconds,
        "Time from a check's arrival to its answer"
    );
    metrics::describe_counter!(UNTRUSTED, "Checks refused because the peer is not trusted");
}

static JSON: AtomicBool = AtomicBool::new(false);

/// Log lines as JSON objects (`true`) or text; the process-wide setting of `[log] format`.
pub(crate) fn set_json(json: bool) {
    JSON.store(json, Ordering::Relaxed);
}

/// One refused check.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refusal<'a> {
    pub(crate) frontend: Frontend,
    /// The proxy's address.
    pub(crate) peer: Option<SocketAddr>,
    /// `METHOD host/path` as the proxy described it; `None` when the facts were unusable.
    pub(crate) request: Option<&'a str>,
    pub(crate) status: StatusCode,
    /// The challenge's error code (`invalid_token`), or a short fixed reason of our own.
    pub(crate) error: &'a str,
}

/// Writes the line of `refusal` on stderr.
pub(crate) fn refused(refusal: &Refusal<'_>) {
    eprintln!("{}", line(refusal, JSON.load(Ordering::Relaxed)));
}

fn line(refusal: &Refusal<'_>, json: bool) -> String {
    let peer = refusal
        .peer
        .map_or_else(|| "unknown".to_owned(), |peer| peer.to_string());
    let status = refusal.status.as_u16();
    if json {
        serde_json::json!({
            "event": "refused",
            "frontend": refusal.frontend.label(),
            "peer": peer,
            "request": refusal.request,
            "status": status,
            "error": refusal.error,
        })
        .to_string()
    } else {
        match refusal.request {
            Some(request) => format!(
                "certbound-authz: refused {request:?} from {peer}: {status} {}",
                refusal.error
            ),
            None => format!(
                "certbound-authz: refused a check from {peer}: {status} {}",
                refusal.error
            ),
        }
    }
}

/// A line about the process rather than a check (`reloaded`, `reload_failed`, `warning`,
/// `failed`), on stderr: `certbound-authz: TEXT`, or with `[log] format = "json"` an object
/// with `"event": EVENT` and `fields` (strings). Never token or proof material: callers pass
/// file names, issuer URLs, keys and errors of the configuration.
pub(crate) fn event(event: &str, text: &str, fields: &[(&str, &str)]) {
    eprintln!(
        "{}",
        event_line(event, text, fields, JSON.load(Ordering::Relaxed))
    );
}

fn event_line(event: &str, text: &str, fields: &[(&str, &str)], json: bool) -> String {
    if json {
        let mut object = serde_json::Map::new();
        object.insert("event".to_owned(), event.into());
        for (name, value) in fields {
            object.insert((*name).to_owned(), (*value).into());
        }
        serde_json::Value::Object(object).to_string()
    } else {
        // One line, whatever the text (an error may hold newlines).
        format!("certbound-authz: {}", text.replace(['\n', '\r'], " "))
    }
}

/// The error code a decision is logged with when it refused: its challenge's, `unavailable`
/// for a 5xx without one, or `refused`. `None` when the answer allows.
pub(crate) fn refusal<B>(answer: &http::Response<B>) -> Option<&'static str> {
    if answer.status().is_success() {
        return None;
    }
    let error = answer
        .headers()
        .get(http::header::WWW_AUTHENTICATE)
        .and_then(|value| value.to_str().ok())
        .and_then(challenge_error);
    // The codes RFC 6750 and RFC 9449 define (a `&'static str` keeps the log line free of
    // anything a client sent).
    Some(match error {
        Some("invalid_request") => "invalid_request",
        Some("invalid_token") => "invalid_token",
        Some("insufficient_scope") => "insufficient_scope",
        Some("invalid_dpop_proof") => "invalid_dpop_proof",
        Some("use_dpop_nonce") => "use_dpop_nonce",
        Some("insufficient_user_authentication") => "insufficient_user_authentication",
        _ if answer.status().is_server_error() => "unavailable",
        _ => "refused",
    })
}

/// The `error` parameter of a `WWW-Authenticate` challenge (`error="invalid_token"`): letters,
/// digits and `_` only (RFC 6750 §3.1, RFC 9449 §7.1), so nothing else is ever logged.
pub(crate) fn challenge_error(challenge: &str) -> Option<&str> {
    let start = challenge.find("error=\"")? + "error=\"".len();
    let rest = &challenge[start..];
    let end = rest.find('"')?;
    let error = &rest[..end];
    error
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        .then_some(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_code_of_a_challenge_is_read_and_nothing_else() {
        let challenge = r#"Bearer error="invalid_token", error_description="the token expired""#;
        assert_eq!(challenge_error(challenge), Some("invalid_token"));
        assert_eq!(challenge_error("DPoP algs=\"ES256\""), None);
        assert_eq!(challenge_error("Bearer error=\"a b\""), None);
    }

    #[test]
    fn statuses_map_to_allow_deny_and_error() {
        assert_eq!(Outcome::of(StatusCode::OK), Outcome::Allow);
        assert_eq!(Outcome::of(StatusCode::UNAUTHORIZED), Outcome::Deny);
        assert_eq!(Outcome::of(StatusCode::FORBIDDEN), Outcome::Deny);
        assert_eq!(Outcome::of(StatusCode::BAD_REQUEST), Outcome::Deny);
        assert_eq!(Outcome::of(StatusCode::SERVICE_UNAVAILABLE), Outcome::Error);
    }

    #[test]
    fn an_event_is_one_text_line_or_one_json_object() {
        let fields = [("file", "/etc/a.toml"), ("error", "bad\nkey")];
        let text = event_line(
            "reload_failed",
            "reloading failed: bad\nkey",
            &fields,
            false,
        );
        assert_eq!(text, "certbound-authz: reloading failed: bad key");
        let json = event_line("reload_failed", "ignored", &fields, true);
        assert!(!json.contains('\n'), "{json}");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["event"], "reload_failed");
        assert_eq!(value["file"], "/etc/a.toml");
        assert_eq!(value["error"], "bad\nkey");
    }

    #[test]
    fn a_hostile_path_cannot_forge_a_text_line_or_break_the_json() {
        let refusal = Refusal {
            frontend: Frontend::Http,
            peer: Some("127.0.0.1:4000".parse().unwrap()),
            request: Some("GET api/x\"\ncertbound-authz: allowed"),
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_token",
        };
        let text = line(&refusal, false);
        assert!(!text.contains('\n'), "{text}");
        assert!(
            text.ends_with("from 127.0.0.1:4000: 401 invalid_token"),
            "{text}"
        );
        let json = line(&refusal, true);
        assert!(!json.contains('\n'), "{json}");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["request"], "GET api/x\"\ncertbound-authz: allowed");
        assert_eq!(value["status"], 401);
        assert_eq!(value["frontend"], "http");
        assert_eq!(value["error"], "invalid_token");
    }
}
