//! The facts of a `CheckRequest` as Envoy fills it, and the `CheckResponse` of an answer.

use std::collections::HashMap;

use envoy_types::ext_authz::v3::pb::HttpResponse;
use envoy_types::pb::envoy::config::core::v3::{
    HeaderMap as EnvoyHeaderMap, HeaderValue as EnvoyHeaderValue,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use http_body_util::Full;

use super::*;

fn check(http: HttpRequest, certificate: &str) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                certificate: certificate.to_owned(),
                ..Default::default()
            }),
            request: Some(Request {
                time: None,
                http: Some(http),
            }),
            ..Default::default()
        }),
    }
}

fn http_request(path: &str) -> HttpRequest {
    HttpRequest {
        method: "POST".into(),
        scheme: "https".into(),
        host: "api.example.com".into(),
        path: path.into(),
        protocol: "HTTP/1.1".into(),
        ..Default::default()
    }
}

fn entry(key: &str, value: &str) -> EnvoyHeaderValue {
    EnvoyHeaderValue {
        key: key.into(),
        value: value.into(),
        raw_value: Vec::new(),
    }
}

#[test]
fn method_scheme_host_and_path_come_from_the_http_attributes_without_the_query() {
    let mut http = http_request("/accounts/7?expand=all#top");
    http.headers = HashMap::from([
        (":path".into(), "/accounts/7?expand=all".into()),
        ("authorization".into(), "DPoP token".into()),
    ]);
    let described = described(&check(http, "")).expect("facts");
    assert_eq!(described.method, Method::POST);
    assert_eq!(described.scheme, "https");
    assert_eq!(described.authority, "api.example.com");
    assert_eq!(described.path, "/accounts/7");
    assert_eq!(described.headers["authorization"], "DPoP token");
    assert!(described
        .headers
        .keys()
        .all(|name| !name.as_str().starts_with(':')));
}

#[test]
fn the_header_map_is_preferred_and_keeps_repeated_headers_and_raw_values() {
    let mut http = http_request("/x");
    http.headers = HashMap::from([("dpop".into(), "one,two".into())]);
    http.header_map = Some(EnvoyHeaderMap {
        headers: vec![
            entry(":authority", "api.example.com"),
            entry("dpop", "one"),
            entry("dpop", "two"),
            EnvoyHeaderValue {
                key: "authorization".into(),
                value: String::new(),
                raw_value: b"DPoP raw".to_vec(),
            },
        ],
    });
    let described = described(&check(http, "")).expect("facts");
    let proofs: Vec<_> = described.headers.get_all("dpop").iter().collect();
    assert_eq!(proofs, ["one", "two"]);
    assert_eq!(described.headers["authorization"], "DPoP raw");
}

#[test]
fn a_check_without_http_attributes_or_with_a_broken_header_has_no_facts() {
    let mut empty = check(http_request("/x"), "");
    empty.attributes.as_mut().unwrap().request = None;
    assert!(described(&empty).is_err());
    let mut http = http_request("/x");
    http.header_map = Some(EnvoyHeaderMap {
        headers: vec![entry("dpop", "a\nb")],
    });
    assert!(described(&check(http, "")).is_err());
    let mut http = http_request("/x");
    http.method = "GE T".into();
    assert!(described(&check(http, "")).is_err());
}

/// A certificate as Envoy's `include_peer_certificate` sends it: URL-encoded PEM.
fn url_encoded_pem() -> (Vec<u8>, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["client".to_owned()]).expect("certificate");
    let encoded =
        percent_encoding::utf8_percent_encode(&cert.cert.pem(), percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    (cert.cert.der().to_vec(), encoded)
}

#[test]
fn the_source_certificate_is_url_encoded_pem_and_empty_or_garbage_is_none() {
    let (der, encoded) = url_encoded_pem();
    let chain = source_certificate(&check(http_request("/x"), &encoded)).expect("a chain");
    assert_eq!(chain.len(), 1);
    assert_eq!(chain[0].as_ref(), der.as_slice());
    assert!(source_certificate(&check(http_request("/x"), "")).is_none());
    assert!(source_certificate(&check(http_request("/x"), "not%20a%20certificate")).is_none());
}

#[tokio::test]
async fn the_xfcc_cert_of_a_trusted_peer_is_read_by_the_library_and_the_header_removed() {
    let (der, encoded) = url_encoded_pem();
    let layer = ForwardedCertLayer::new(ForwardedCertFormat::Xfcc)
        .trust_proxy("127.0.0.1/32".parse().unwrap());
    let mut headers = HeaderMap::new();
    let xfcc = format!(
        "By=spiffe://cluster.local/ns/default/sa/api;Hash=abc;Cert=\"{encoded}\";Subject=\"CN=client\""
    );
    headers.insert(
        "x-forwarded-client-cert",
        HeaderValue::from_str(&xfcc).unwrap(),
    );
    // `Hash=` that does not match `Cert=`: unusable, so no certificate.
    let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    assert!(xfcc_certificate(&layer, peer, &mut headers).await.is_none());
    assert!(headers.get("x-forwarded-client-cert").is_none());

    let xfcc = format!("By=spiffe://cluster.local/ns/default/sa/api;Cert=\"{encoded}\"");
    headers.insert(
        "x-forwarded-client-cert",
        HeaderValue::from_str(&xfcc).unwrap(),
    );
    let chain = xfcc_certificate(&layer, peer, &mut headers)
        .await
        .expect("a certificate");
    assert_eq!(chain.chain()[0].as_ref(), der.as_slice());
    assert!(headers.get("x-forwarded-client-cert").is_none());
}

fn answer(status: StatusCode, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut answer = Answer::new(Full::new(bytes::Bytes::from(body.to_owned())));
    *answer.status_mut() = status;
    for (name, value) in headers {
        answer.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    answer
}

fn names(list: &[&str]) -> Vec<HeaderName> {
    list.iter()
        .map(|name| HeaderName::from_bytes(name.as_bytes()).unwrap())
        .collect()
}

#[tokio::test]
async fn an_allow_sets_the_identity_headers_and_removes_the_ones_it_does_not_set() {
    let identity = names(&["x-auth-subject", "x-auth-client-id", "x-auth-scope"]);
    let allowed = answer(
        StatusCode::OK,
        &[
            ("x-auth-subject", "alice"),
            ("x-auth-scope", ""),
            ("dpop-nonce", "n-1"),
        ],
        "",
    );
    let response = response(&identity, allowed).await;
    assert_eq!(response.status.as_ref().unwrap().code, 0);
    let Some(HttpResponse::OkResponse(ok)) = response.http_response else {
        panic!("an ok_response");
    };
    let set: Vec<_> = ok
        .headers
        .iter()
        .map(|h| {
            let header = h.header.as_ref().unwrap();
            (header.key.as_str(), header.value.as_str(), h.append_action)
        })
        .collect();
    let overwrite = HeaderAppendAction::OverwriteIfExistsOrAdd as i32;
    assert_eq!(set, [("x-auth-subject", "alice", overwrite)]);
    assert_eq!(ok.headers_to_remove, ["x-auth-client-id", "x-auth-scope"]);
    let nonce = ok.response_headers_to_add[0].header.as_ref().unwrap();
    assert_eq!(
        (nonce.key.as_str(), nonce.value.as_str()),
        ("dpop-nonce", "n-1")
    );
}

#[tokio::test]
async fn a_refusal_keeps_the_layer_s_status_challenges_nonce_and_body() {
    let refused = answer(
        StatusCode::UNAUTHORIZED,
        &[
            ("www-authenticate", "Bearer error=\"invalid_token\""),
            ("www-authenticate", "DPoP algs=\"ES256\""),
            ("dpop-nonce", "n-2"),
            ("content-length", "4"),
        ],
        "nope",
    );
    let response = response(&[], refused).await;
    assert_eq!(
        response.status.as_ref().unwrap().code,
        tonic::Code::Unauthenticated as i32
    );
    let Some(HttpResponse::DeniedResponse(denied)) = response.http_response else {
        panic!("a denied_response");
    };
    assert_eq!(denied.status.unwrap().code, 401);
    assert_eq!(denied.body, "nope");
    let headers: Vec<_> = denied
        .headers
        .iter()
        .map(|h| {
            let header = h.header.as_ref().unwrap();
            (header.key.as_str(), header.value.as_str())
        })
        .collect();
    assert_eq!(
        headers,
        [
            ("www-authenticate", "Bearer error=\"invalid_token\""),
            ("www-authenticate", "DPoP algs=\"ES256\""),
            ("dpop-nonce", "n-2"),
        ]
    );
}

#[tokio::test]
async fn a_decision_that_could_not_be_made_denies_with_503_and_a_forbidden_one_with_403() {
    for (status, code, http) in [
        (
            StatusCode::SERVICE_UNAVAILABLE,
            tonic::Code::Unavailable,
            503,
        ),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            tonic::Code::Unavailable,
            503,
        ),
        (StatusCode::FORBIDDEN, tonic::Code::PermissionDenied, 403),
        (StatusCode::BAD_REQUEST, tonic::Code::PermissionDenied, 400),
    ] {
        let response = response(&[], answer(status, &[], "")).await;
        assert_eq!(response.status.as_ref().unwrap().code, code as i32);
        let Some(HttpResponse::DeniedResponse(denied)) = response.http_response else {
            panic!("a denied_response for {status}");
        };
        assert_eq!(denied.status.unwrap().code, http, "{status}");
    }
}
