//! The calling side starting from the API's URL (RFC 9728): a resource server serving its
//! metadata with `certbound::resource_metadata` and the example authorization server's routes,
//! both in-process over real mutual TLS; and a step-up refusal reaching the application as
//! `CallError::StepUp`.

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use certbound::client::{
    CallError, ReqwestClient, ResourceChallenge, TokenErrorKind, TokenLayer, TokenSource,
};
use certbound::{BoundTokenLayer, RequireStepUpLayer, ResourceMetadata};
use serde_json::json;
use tower::ServiceExt as _;
use tower_layer::Layer as _;

use crate::client_tokens::{self_signed, Authority};
use crate::common::*;

/// A resource server on 127.0.0.1 for the resource `https://ADDR{path}`: `{path}/whoami`
/// behind the token layer, `{path}/transfer` also requiring an MFA login no older than 5
/// minutes, and the metadata that `publish` builds from the resource identifier (unless
/// `None`), outside the layer.
async fn resource_server(
    authority: &Authority,
    path: &str,
    publish: impl FnOnce(&str) -> Option<ResourceMetadata>,
) -> (TestServer, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let resource = format!("https://{}{path}", listener.local_addr().expect("address"));
    let metadata_url = ResourceMetadata::new(&resource)
        .expect("resource")
        .metadata_url()
        .to_owned();
    let layer = BoundTokenLayer::new(authority.validator())
        .resource_metadata(&metadata_url)
        .expect("metadata URL");
    let step_up = RequireStepUpLayer::acr_values(["urn:example:mfa"])
        .expect("acr values")
        .max_age(Duration::from_secs(300))
        .resource_metadata(&metadata_url)
        .expect("metadata URL");
    let mut app = Router::new()
        .route(&format!("{path}/whoami"), get(whoami))
        .route(&format!("{path}/transfer"), get(whoami).layer(step_up))
        // Only the routes: any other path is a plain 404.
        .route_layer(layer);
    if let Some(metadata) = publish(&resource) {
        let service = metadata.build().expect("metadata");
        app = app.route_service(service.path(), service.clone());
    }
    let server = TestServer::start_on(listener, any_certificate_tls(&authority.pki), app);
    (server, resource)
}

/// A source for `client_id` starting from `resource`, trusting only the test CA.
fn source_for(
    authority: &Authority,
    client_id: &str,
    identity: &certbound::client::ClientIdentity,
    resource: &str,
) -> certbound::client::TokenSourceBuilder {
    TokenSource::builder(client_id, identity.clone())
        .resource_url(resource)
        .trust_root(authority.pki.ca_der())
        .only_trust_roots()
}

#[tokio::test]
async fn a_source_started_from_the_resource_url_asks_its_authorization_server_for_that_resource() {
    let (_test, identity, registration) = self_signed("payments");
    let authority = Authority::start(json!([registration]), 300, None).await;
    let issuer = authority.issuer.clone();
    let (api, resource) = resource_server(&authority, "/v1", |resource| {
        Some(
            ResourceMetadata::new(resource)
                .expect("resource")
                .authorization_server(&issuer),
        )
    })
    .await;
    let tokens = source_for(&authority, "payments", &identity, &resource)
        .build()
        .expect("source");
    let api_client = authority.api_client(&identity);
    let client = ReqwestClient::new(api_client.clone(), tokens.clone());
    let response = client
        .execute(
            api_client
                .get(api.url("/v1/whoami"))
                .build()
                .expect("request"),
        )
        .await
        .expect("call");
    assert_eq!(response.status(), 200);
    let forms = authority.forms();
    assert_eq!(forms.len(), 1);
    assert_eq!(authority.requested_resources(0), [resource.as_str()]);
    assert!(format!("{tokens:?}").contains(&issuer), "{tokens:?}");

    // `resource` given by the application names the resource instead.
    let named = source_for(&authority, "payments", &identity, &resource)
        .resource("https://named.example/")
        .build()
        .expect("source");
    named.token().await.expect("token");
    assert_eq!(authority.requested_resources(1), ["https://named.example/"]);
}

#[tokio::test]
async fn the_application_may_choose_among_the_listed_authorization_servers() {
    let (_test, identity, registration) = self_signed("chooser");
    let authority = Authority::start(json!([registration]), 300, None).await;
    let issuer = authority.issuer.clone();
    let (_api, resource) = resource_server(&authority, "/v1", |resource| {
        Some(
            ResourceMetadata::new(resource)
                .expect("resource")
                .authorization_server("https://unused.invalid")
                .authorization_server(&issuer),
        )
    })
    .await;
    let tokens = source_for(&authority, "chooser", &identity, &resource)
        .prefer_authorization_server(&issuer)
        .build()
        .expect("source");
    tokens.token().await.expect("token");
    assert_eq!(authority.requests(), 1);

    // One the metadata does not list is not asked.
    let unlisted = source_for(&authority, "chooser", &identity, &resource)
        .prefer_authorization_server("https://other.invalid")
        .build()
        .expect("source");
    let error = unlisted.token().await.expect_err("not listed");
    assert!(
        matches!(error.kind(), TokenErrorKind::ResourceMetadata { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("https://other.invalid"),
        "{error}"
    );
    assert_eq!(authority.requests(), 1);
}

#[tokio::test]
async fn metadata_for_another_resource_or_none_at_all_sends_nothing_to_any_authorization_server() {
    let (_test, identity, registration) = self_signed("careful");
    let authority = Authority::start(json!([registration]), 300, None).await;
    let issuer = authority.issuer.clone();
    // Serves, at this resource's well-known URL, the document of another resource.
    let (_api, resource) = resource_server(&authority, "/v1", |resource| {
        let elsewhere = resource.replace("127.0.0.1", "localhost");
        Some(
            ResourceMetadata::new(&elsewhere)
                .expect("resource")
                .authorization_server(&issuer),
        )
    })
    .await;
    let tokens = source_for(&authority, "careful", &identity, &resource)
        .build()
        .expect("source");
    for _ in 0..2 {
        let error = tokens
            .token()
            .await
            .expect_err("another resource's metadata");
        assert!(
            matches!(error.kind(), TokenErrorKind::ResourceMetadata { .. }),
            "{error:?}"
        );
        assert!(
            error.to_string().contains(&format!("is not {resource}")),
            "{error}"
        );
    }

    let (_bare, bare) = resource_server(&authority, "/v2", |_| None).await;
    let tokens = source_for(&authority, "careful", &identity, &bare)
        .build()
        .expect("source");
    let error = tokens.token().await.expect_err("no metadata");
    assert!(
        matches!(error.kind(), TokenErrorKind::ResourceMetadata { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("no protected resource metadata at"),
        "{error}"
    );
    assert_eq!(authority.all_requests(), 0, "nothing reached the AS");
}

#[tokio::test]
async fn a_step_up_refusal_reaches_the_application_as_a_typed_error_with_its_parameters() {
    let (_test, identity, registration) = self_signed("stepper");
    let authority = Authority::start(json!([registration]), 300, None).await;
    let issuer = authority.issuer.clone();
    let (api, resource) = resource_server(&authority, "/v1", |resource| {
        Some(
            ResourceMetadata::new(resource)
                .expect("resource")
                .authorization_server(&issuer),
        )
    })
    .await;
    let metadata_url = ResourceMetadata::new(&resource)
        .expect("resource")
        .metadata_url()
        .to_owned();
    let tokens = source_for(&authority, "stepper", &identity, &resource)
        .build()
        .expect("source");
    let http = authority.api_client(&identity);
    let client = TokenLayer::new(tokens.clone()).layer(reqwest_service(http.clone()));
    let request = |path: &str| {
        http::Request::get(api.url(path))
            .body(reqwest::Body::from(Vec::new()))
            .expect("request")
    };
    let error = client
        .oneshot(request("/v1/transfer"))
        .await
        .expect_err("step-up");
    let Some(CallError::StepUp {
        acr_values,
        max_age,
        resource_metadata,
        ..
    }) = error.downcast_ref::<CallError>()
    else {
        panic!("not a step-up error: {error:?}");
    };
    assert_eq!(acr_values, &["urn:example:mfa"]);
    assert_eq!(*max_age, Some(300));
    assert_eq!(resource_metadata.as_deref(), Some(metadata_url.as_str()));
    assert!(error.to_string().contains("cannot step up"), "{error}");
    // No retry with another token: the token was fine.
    assert_eq!(authority.requests(), 1);

    // The reqwest adapter says the same.
    let adapter = ReqwestClient::new(http.clone(), tokens);
    let error = adapter
        .execute(http.get(api.url("/v1/transfer")).build().expect("request"))
        .await
        .expect_err("step-up");
    assert!(
        matches!(
            error.downcast_ref::<CallError>(),
            Some(CallError::StepUp { .. })
        ),
        "{error:?}"
    );

    // Any other refusal is handed on, with what its challenge says in its extensions: here
    // the calls present another certificate than the one the tokens are bound to.
    let (_, stranger, _) = self_signed("stranger");
    let mismatched = TokenLayer::new(tokens_for_stranger(&authority, &identity, &resource))
        .layer(reqwest_service(authority.api_client(&stranger)));
    let response = mismatched
        .oneshot(request("/v1/whoami"))
        .await
        .expect("a response");
    assert_eq!(response.status(), 401);
    let challenge = response
        .extensions()
        .get::<ResourceChallenge>()
        .expect("the challenge");
    assert_eq!(challenge.error(), Some("invalid_token"));
    assert_eq!(challenge.resource_metadata(), Some(metadata_url.as_str()));
    assert!(!challenge.is_step_up());
}

fn tokens_for_stranger(
    authority: &Authority,
    identity: &certbound::client::ClientIdentity,
    resource: &str,
) -> TokenSource {
    source_for(authority, "stepper", identity, resource)
        .build()
        .expect("source")
}

/// reqwest behind `tower::service_fn`: any tower HTTP client will do for the layer.
fn reqwest_service(
    http: reqwest::Client,
) -> impl tower::Service<
    http::Request<reqwest::Body>,
    Response = http::Response<reqwest::Body>,
    Error = reqwest::Error,
    Future = impl Send,
> + Clone {
    tower::service_fn(move |request: http::Request<reqwest::Body>| {
        let http = http.clone();
        async move {
            let request = reqwest::Request::try_from(request)?;
            Ok(http::Response::from(http.execute(request).await?))
        }
    })
}
