//! The soak's requests (issue 26, see `soak.rs`): every kind, the answer each must get, and the
//! tokens, proofs and headers that make them.

use std::sync::Mutex;

use super::*;

/// One kind of request of the soak, and the answer it must get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    // Accepted (200).
    Repeated,
    RepeatedH2,
    Distinct,
    Dpop,
    DpopNoCertificate,
    Scoped,
    Churn,
    IdleHeld,
    IdleHeldH2,
    IdleLapsing,
    IdleLapsingH2,
    // Refused.
    NoToken,
    OtherScheme,
    QueryToken,
    TwoHeaders,
    NotB64token,
    NotAJwt,
    BadSignature,
    Expired,
    WrongAudience,
    WrongIssuer,
    UnknownKey,
    Unbound,
    OtherCertificate,
    NoCertificate,
    InsufficientScope,
    DpopAsBearer,
    DpopReplayed,
    DpopOtherUrl,
    DpopOtherMethod,
    DpopStale,
    DpopOtherKey,
}

impl Kind {
    pub(crate) const ALL: [Kind; 32] = [
        Kind::Repeated,
        Kind::RepeatedH2,
        Kind::Distinct,
        Kind::Dpop,
        Kind::DpopNoCertificate,
        Kind::Scoped,
        Kind::Churn,
        Kind::IdleHeld,
        Kind::IdleHeldH2,
        Kind::IdleLapsing,
        Kind::IdleLapsingH2,
        Kind::NoToken,
        Kind::OtherScheme,
        Kind::QueryToken,
        Kind::TwoHeaders,
        Kind::NotB64token,
        Kind::NotAJwt,
        Kind::BadSignature,
        Kind::Expired,
        Kind::WrongAudience,
        Kind::WrongIssuer,
        Kind::UnknownKey,
        Kind::Unbound,
        Kind::OtherCertificate,
        Kind::NoCertificate,
        Kind::InsufficientScope,
        Kind::DpopAsBearer,
        Kind::DpopReplayed,
        Kind::DpopOtherUrl,
        Kind::DpopOtherMethod,
        Kind::DpopStale,
        Kind::DpopOtherKey,
    ];

    /// The rejections sent in turn on the certificate's keep-alive connection: every refused
    /// kind of [`Kind::ALL`] (from `NoToken` on), but `NoCertificate`, which needs a connection
    /// without one.
    pub(crate) fn refused_with_certificate() -> Vec<Kind> {
        let refused = Self::NoToken.index();
        Self::ALL[refused..]
            .iter()
            .copied()
            .filter(|&kind| kind != Kind::NoCertificate)
            .collect()
    }

    pub(crate) fn index(self) -> usize {
        Self::ALL.iter().position(|&k| k == self).expect("in ALL")
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Repeated => "repeated",
            Kind::RepeatedH2 => "repeated-h2",
            Kind::Distinct => "distinct",
            Kind::Dpop => "dpop",
            Kind::DpopNoCertificate => "dpop-no-certificate",
            Kind::Scoped => "scoped",
            Kind::Churn => "churn",
            Kind::IdleHeld => "idle-held",
            Kind::IdleHeldH2 => "idle-held-h2",
            Kind::IdleLapsing => "idle-lapsing",
            Kind::IdleLapsingH2 => "idle-lapsing-h2",
            Kind::NoToken => "no-token",
            Kind::OtherScheme => "other-scheme",
            Kind::QueryToken => "query-token",
            Kind::TwoHeaders => "two-authorization-headers",
            Kind::NotB64token => "not-b64token",
            Kind::NotAJwt => "not-a-jwt",
            Kind::BadSignature => "bad-signature",
            Kind::Expired => "expired",
            Kind::WrongAudience => "wrong-audience",
            Kind::WrongIssuer => "wrong-issuer",
            Kind::UnknownKey => "unknown-kid",
            Kind::Unbound => "unbound-token",
            Kind::OtherCertificate => "other-certificate",
            Kind::NoCertificate => "no-client-certificate",
            Kind::InsufficientScope => "insufficient-scope",
            Kind::DpopAsBearer => "dpop-token-as-bearer",
            Kind::DpopReplayed => "dpop-replayed-proof",
            Kind::DpopOtherUrl => "dpop-proof-other-url",
            Kind::DpopOtherMethod => "dpop-proof-other-method",
            Kind::DpopStale => "dpop-stale-proof",
            Kind::DpopOtherKey => "dpop-proof-other-key",
        }
    }

    /// The status and RFC 6750 `error` code the layer's rejection table gives this kind.
    pub(crate) fn expected(self) -> (StatusCode, Option<&'static str>) {
        const OK: (StatusCode, Option<&str>) = (StatusCode::OK, None);
        const NO_CODE: (StatusCode, Option<&str>) = (StatusCode::UNAUTHORIZED, None);
        const INVALID_REQUEST: (StatusCode, Option<&str>) =
            (StatusCode::BAD_REQUEST, Some("invalid_request"));
        const INVALID_TOKEN: (StatusCode, Option<&str>) =
            (StatusCode::UNAUTHORIZED, Some("invalid_token"));
        const INVALID_PROOF: (StatusCode, Option<&str>) =
            (StatusCode::UNAUTHORIZED, Some("invalid_dpop_proof"));
        match self {
            Kind::Repeated
            | Kind::RepeatedH2
            | Kind::Distinct
            | Kind::Dpop
            | Kind::DpopNoCertificate
            | Kind::Scoped
            | Kind::Churn
            | Kind::IdleHeld
            | Kind::IdleHeldH2
            | Kind::IdleLapsing
            | Kind::IdleLapsingH2 => OK,
            Kind::NoToken | Kind::OtherScheme | Kind::QueryToken => NO_CODE,
            Kind::TwoHeaders | Kind::NotB64token => INVALID_REQUEST,
            Kind::NotAJwt
            | Kind::BadSignature
            | Kind::Expired
            | Kind::WrongAudience
            | Kind::WrongIssuer
            | Kind::UnknownKey
            | Kind::Unbound
            | Kind::OtherCertificate
            | Kind::NoCertificate
            | Kind::DpopAsBearer
            | Kind::DpopOtherKey => INVALID_TOKEN,
            Kind::InsufficientScope => (StatusCode::FORBIDDEN, Some("insufficient_scope")),
            Kind::DpopReplayed | Kind::DpopOtherUrl | Kind::DpopOtherMethod | Kind::DpopStale => {
                INVALID_PROOF
            }
        }
    }

    pub(crate) fn describe_expected(self) -> String {
        match self.expected() {
            (status, None) => status.as_u16().to_string(),
            (status, Some(code)) => format!("{} {code}", status.as_u16()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The material of the requests
// ---------------------------------------------------------------------------------------------

/// The clients (certificates) of the soak's tasks; the idle connections use the ones after.
pub(crate) const REPEATED: usize = 0;
pub(crate) const REPEATED_H2: usize = 1;
pub(crate) const DISTINCT: usize = 2;
pub(crate) const DPOP: usize = 3;
pub(crate) const REFUSED: usize = 4;
pub(crate) const CHURN: usize = 5;
pub(crate) const IDLE: usize = 6;
/// Clients besides the idle ones.
pub(crate) const CLIENTS: usize = IDLE;

/// Tokens and keys made at start, and what the tasks share while running.
pub(crate) struct Fixtures {
    pub(crate) material: Arc<Material>,
    /// The distinct tokens' lifetime, in seconds.
    token_lifetime: u64,
    /// Per client, a Bearer token bound to its certificate, valid for the whole run.
    pub(crate) bound: Vec<HeaderValue>,
    /// Bound to the `REFUSED` client, scope `read admin`.
    admin: HeaderValue,
    expired: HeaderValue,
    wrong_audience: HeaderValue,
    wrong_issuer: HeaderValue,
    unknown_key: HeaderValue,
    unbound: HeaderValue,
    other_certificate: HeaderValue,
    /// Bound to the `DPOP` client's key, valid for the whole run.
    dpop: DpopToken,
    /// The same token presented as `Bearer`.
    dpop_as_bearer: HeaderValue,
    /// The last proof the `dpop` task had accepted: `dpop-replayed-proof` sends it again.
    pub(crate) accepted_proof: Mutex<Option<HeaderValue>>,
}

fn sensitive(value: String) -> HeaderValue {
    let mut value = HeaderValue::try_from(value).expect("header value");
    value.set_sensitive(true);
    value
}

impl Fixtures {
    pub(crate) fn new(material: Arc<Material>, soak: &SoakArgs) -> Self {
        let signer = &material.signer;
        let whole_run = (soak.duration.as_secs() + 600) as i64;
        let x5t = |client: usize| json!({ "x5t#S256": material.clients[client].x5t_s256 });
        let bearer =
            |claims: &Value, kid: &str| sensitive(format!("Bearer {}", signer.sign(claims, kid)));
        let bound = (0..material.clients.len())
            .map(|client| bearer(&signer.claims(Some(x5t(client)), whole_run), KID))
            .collect();
        let mut admin = signer.claims(Some(x5t(REFUSED)), whole_run);
        admin["scope"] = json!("read admin");
        let mut wrong_audience = signer.claims(Some(x5t(REFUSED)), whole_run);
        wrong_audience["aud"] = json!("https://other-api.load.test");
        let mut wrong_issuer = signer.claims(Some(x5t(REFUSED)), whole_run);
        wrong_issuer["iss"] = json!("https://other-as.load.test");
        let elsewhere = json!({ "x5t#S256": URL_SAFE_NO_PAD.encode([0u8; 32]) });
        let dpop_claims = signer.claims(
            Some(json!({ "jkt": material.clients[DPOP].dpop.jkt })),
            whole_run,
        );
        let dpop_token = signer.sign(&dpop_claims, KID);
        let dpop = DpopToken {
            authorization: sensitive(format!("DPoP {dpop_token}")),
            ath: URL_SAFE_NO_PAD
                .encode(Sha256::digest(dpop_token.as_bytes()))
                .into(),
        };
        Fixtures {
            token_lifetime: soak.token_lifetime,
            bound,
            admin: bearer(&admin, KID),
            // Well past the validator's 60 s leeway.
            expired: bearer(&signer.claims(Some(x5t(REFUSED)), -600), KID),
            wrong_audience: bearer(&wrong_audience, KID),
            wrong_issuer: bearer(&wrong_issuer, KID),
            unknown_key: bearer(&signer.claims(Some(x5t(REFUSED)), whole_run), "other-key"),
            unbound: bearer(&signer.claims(None, whole_run), KID),
            other_certificate: bearer(&signer.claims(Some(elsewhere), whole_run), KID),
            dpop_as_bearer: sensitive(format!("Bearer {dpop_token}")),
            dpop,
            accepted_proof: Mutex::new(None),
            material,
        }
    }

    /// The path and headers of a request of `kind`; `None` when it cannot be made yet (a
    /// replayed proof before the `dpop` task had one accepted).
    pub(crate) fn request(
        &self,
        kind: Kind,
    ) -> Option<(&'static str, Vec<(&'static str, HeaderValue)>)> {
        let auth = |value: &HeaderValue| vec![("authorization", value.clone())];
        let dpop_client = &self.material.clients[DPOP].dpop;
        let ath = &self.dpop.ath;
        let dpop = |proof: HeaderValue| {
            vec![
                ("authorization", self.dpop.authorization.clone()),
                ("dpop", proof),
            ]
        };
        let fresh_bound = |client: usize| {
            let claims = self.material.signer.claims(
                Some(json!({ "x5t#S256": self.material.clients[client].x5t_s256 })),
                self.token_lifetime as i64,
            );
            sensitive(format!(
                "Bearer {}",
                self.material.signer.sign(&claims, KID)
            ))
        };
        Some(match kind {
            Kind::Repeated => ("/", auth(&self.bound[REPEATED])),
            Kind::RepeatedH2 => ("/", auth(&self.bound[REPEATED_H2])),
            Kind::Distinct => ("/", auth(&fresh_bound(DISTINCT))),
            Kind::Dpop | Kind::DpopNoCertificate => ("/", dpop(dpop_client.proof(ath))),
            Kind::Scoped => ("/admin", auth(&self.admin)),
            Kind::Churn => ("/", auth(&self.bound[CHURN])),
            // Each idle connection has its own client (certificate) and token: set by the task.
            Kind::IdleHeld | Kind::IdleHeldH2 | Kind::IdleLapsing | Kind::IdleLapsingH2 => {
                ("/", Vec::new())
            }
            Kind::NoToken => ("/", Vec::new()),
            Kind::OtherScheme => (
                "/",
                vec![(
                    "authorization",
                    HeaderValue::from_static("Basic bG9hZDpsb2Fk"),
                )],
            ),
            Kind::QueryToken => ("/?access_token=load-token", Vec::new()),
            Kind::TwoHeaders => (
                "/",
                vec![
                    ("authorization", self.bound[REFUSED].clone()),
                    ("authorization", self.bound[REFUSED].clone()),
                ],
            ),
            Kind::NotB64token => (
                "/",
                vec![("authorization", HeaderValue::from_static("Bearer a,b"))],
            ),
            Kind::NotAJwt => (
                "/",
                vec![(
                    "authorization",
                    HeaderValue::from_static("Bearer not.a.jwt"),
                )],
            ),
            // A new token each time (as in a token-spraying attack), its signature altered.
            Kind::BadSignature => ("/", auth(&corrupted(&fresh_bound(REFUSED)))),
            Kind::Expired => ("/", auth(&self.expired)),
            Kind::WrongAudience => ("/", auth(&self.wrong_audience)),
            Kind::WrongIssuer => ("/", auth(&self.wrong_issuer)),
            Kind::UnknownKey => ("/", auth(&self.unknown_key)),
            Kind::Unbound => ("/", auth(&self.unbound)),
            Kind::OtherCertificate => ("/", auth(&self.other_certificate)),
            Kind::NoCertificate => ("/", auth(&self.bound[REFUSED])),
            Kind::InsufficientScope => ("/admin", auth(&self.bound[REFUSED])),
            Kind::DpopAsBearer => ("/", auth(&self.dpop_as_bearer)),
            Kind::DpopReplayed => {
                let proof = self
                    .accepted_proof
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()?;
                ("/", dpop(proof))
            }
            Kind::DpopOtherUrl => (
                "/",
                dpop(dpop_client.proof_for("GET", "https://localhost/other", 0, ath)),
            ),
            Kind::DpopOtherMethod => ("/", dpop(dpop_client.proof_for("POST", HTU, 0, ath))),
            // Well past the 60 s window (and the 15 s of skew).
            Kind::DpopStale => ("/", dpop(dpop_client.proof_for("GET", HTU, 300, ath))),
            // Signed by another client's key than the token's `cnf.jkt`.
            Kind::DpopOtherKey => ("/", dpop(self.material.clients[REFUSED].dpop.proof(ath))),
        })
    }
}
