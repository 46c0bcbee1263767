//! certbound-authz behind a real Caddy (`deploy/`), terminating mTLS in front of an echo
//! server: the cases of `proxy_support::cases`.

mod binary;
mod proxy_support;
mod support;

use proxy_support::{cases, Kind};

#[tokio::test]
async fn a_certificate_bound_token_with_its_certificate_reaches_the_upstream_with_the_identity() {
    cases::a_certificate_bound_token_with_its_certificate_reaches_the_upstream_with_the_identity(
        Kind::Caddy,
    )
    .await;
}

#[tokio::test]
async fn a_token_stolen_to_another_certificate_or_used_without_one_is_refused() {
    cases::a_token_stolen_to_another_certificate_or_used_without_one_is_refused(Kind::Caddy).await;
}

#[tokio::test]
async fn identity_headers_sent_by_the_client_never_reach_the_upstream_as_sent() {
    cases::identity_headers_sent_by_the_client_never_reach_the_upstream_as_sent(Kind::Caddy).await;
}

#[tokio::test]
async fn a_certificate_header_sent_by_the_client_is_not_believed() {
    cases::a_certificate_header_sent_by_the_client_is_not_believed(Kind::Caddy).await;
}

#[tokio::test]
async fn a_dpop_proof_is_good_once_and_a_replayed_or_foreign_key_proof_is_refused() {
    cases::a_dpop_proof_is_good_once_and_a_replayed_or_foreign_key_proof_is_refused(Kind::Caddy)
        .await;
}

#[tokio::test]
async fn a_dpop_nonce_makes_the_round_trip_through_the_proxy() {
    cases::a_dpop_nonce_makes_the_round_trip_through_the_proxy(Kind::Caddy).await;
}

#[tokio::test]
async fn a_dpop_proof_for_the_public_url_is_allowed_behind_a_path_prefixing_proxy() {
    cases::a_dpop_proof_for_the_public_url_is_allowed_behind_a_path_prefixing_proxy(Kind::Caddy)
        .await;
}

#[tokio::test]
async fn a_fresh_dpop_nonce_of_an_allow_reaches_the_client() {
    let reached = cases::a_fresh_nonce_on_an_allow_reaches_the_client(Kind::Caddy).await;
    assert_ne!(
        reached,
        Some(false),
        "Caddy dropped the DPoP-Nonce of an allow"
    );
}

#[tokio::test]
async fn a_token_without_the_routes_scope_is_refused_with_403_and_the_challenge() {
    cases::a_token_without_the_routes_scope_is_refused_with_403_and_the_challenge(Kind::Caddy)
        .await;
}
