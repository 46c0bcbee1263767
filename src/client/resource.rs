//! Starting from the API's URL: the protected resource's metadata (RFC 9728), checked and
//! read for the authorization server to ask.

use http::header::ACCEPT;
use http::StatusCode;
use serde_json::{Map, Value};

use super::TokenError;
use crate::resource_metadata::builder::WELL_KNOWN;
use crate::upstream::{check_url, read_limited};

/// The metadata a resource URL was checked against: the resource identifier it names (the one
/// the client asked about) and the authorization server chosen from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProtectedResource {
    pub(crate) resource: String,
    pub(crate) issuer: String,
}

/// Where to look for the metadata of `url`, in order: the identifiers a matching document may
/// name, and the document's URL (RFC 9728 §3.1: the well-known suffix between the host and the
/// path). For a URL with a path, the resource's origin comes second (the API as a whole, as
/// MCP clients look for it), asked only when the first document does not exist (`404`, or
/// `401` / `403` from a server that protects every other path).
pub(crate) fn candidates(url: &str) -> Vec<(Vec<String>, String)> {
    let Some(scheme_end) = url.find("://") else {
        return Vec::new();
    };
    let authority_end = url[scheme_end + 3..]
        .find('/')
        .map_or(url.len(), |at| scheme_end + 3 + at);
    let (origin, path) = url.split_at(authority_end);
    let root = (
        vec![origin.to_owned(), format!("{origin}/")],
        format!("{origin}{WELL_KNOWN}"),
    );
    if path.is_empty() || path == "/" {
        // §3.1: a path of only "/" is a terminating slash; both spellings have this document.
        return vec![root];
    }
    vec![
        (vec![url.to_owned()], format!("{origin}{WELL_KNOWN}{path}")),
        root,
    ]
}

/// Fetches the metadata of the resource at `url`, checks that it names the resource asked
/// about (§3.3: otherwise it must not be used), and picks its authorization server: `prefer`
/// when given (it must be listed), else the first. Nothing is sent to any authorization server
/// here.
pub(crate) async fn protected_resource(
    http: &reqwest::Client,
    url: &str,
    prefer: Option<&str>,
    allow_http: bool,
    limit: usize,
) -> Result<ProtectedResource, TokenError> {
    let candidates = candidates(url);
    let mut missing = Vec::new();
    for (identifiers, metadata_url) in &candidates {
        let Some(document) = fetch(http, metadata_url, limit).await? else {
            missing.push(metadata_url.as_str());
            continue;
        };
        return read(&document, metadata_url, identifiers, prefer, allow_http);
    }
    Err(TokenError::resource_metadata(format!(
        "no protected resource metadata at {}",
        missing.join(" nor at ")
    )))
}

/// The document at `url`, or `None` when there is none (`404`, `401`, `403`).
async fn fetch(
    http: &reqwest::Client,
    url: &str,
    limit: usize,
) -> Result<Option<Map<String, Value>>, TokenError> {
    let response = http
        .get(url)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| TokenError::resource_metadata(format!("{url}: no answer")).because(e))?;
    let status = response.status();
    // No document there. A server that protects every path but its metadata's own answers a
    // path-suffixed well-known URL it does not serve with 401 or 403 rather than 404 (the
    // example resource server does, for a resource that is its origin): that is no document
    // either, and the origin's is asked next. What is read is checked the same way.
    if matches!(
        status,
        StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    ) {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(TokenError::resource_metadata(format!("{url}: {status}")));
    }
    let body = read_limited(response, url, limit)
        .await
        .map_err(|e| TokenError::resource_metadata(e.message()))?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|_| TokenError::resource_metadata(format!("{url}: not a JSON object")))
}

/// Checks `document` (from `url`) and picks the authorization server.
fn read(
    document: &Map<String, Value>,
    url: &str,
    identifiers: &[String],
    prefer: Option<&str>,
    allow_http: bool,
) -> Result<ProtectedResource, TokenError> {
    let unusable = |why: String| TokenError::resource_metadata(format!("{url}: {why}"));
    let resource = document
        .get("resource")
        .and_then(Value::as_str)
        .ok_or_else(|| unusable("no resource".to_owned()))?;
    // RFC 9728 §3.3: the `resource` must be the identifier the metadata URL was built from,
    // or the document is not used: a resource server that serves another resource's metadata
    // must not get the client to ask that resource's authorization server.
    if !identifiers.iter().any(|id| id == resource) {
        return Err(unusable(format!(
            "its resource {:?} is not {}",
            super::error::oauth_text(resource, 200).unwrap_or_else(|| "(unprintable)".to_owned()),
            identifiers[0]
        )));
    }
    let servers: Vec<&str> = document
        .get("authorization_servers")
        .and_then(Value::as_array)
        .map(|servers| servers.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let issuer = match prefer {
        Some(prefer) => servers
            .iter()
            .copied()
            .find(|server| *server == prefer)
            .ok_or_else(|| {
                unusable(format!(
                    "authorization_servers does not list the preferred {prefer}"
                ))
            })?,
        None => servers
            .first()
            .copied()
            .ok_or_else(|| unusable("no authorization_servers".to_owned()))?,
    };
    check_url(issuer, allow_http).map_err(|reason| {
        unusable(format!(
            "the authorization server {:?} is unusable: {reason}",
            super::error::oauth_text(issuer, 200).unwrap_or_else(|| "(unprintable)".to_owned())
        ))
    })?;
    Ok(ProtectedResource {
        resource: resource.to_owned(),
        issuer: issuer.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn document(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("an object"),
        }
    }

    #[test]
    fn the_metadata_url_puts_the_well_known_suffix_before_the_path() {
        assert_eq!(
            candidates("https://api.example/v1"),
            [
                (
                    vec!["https://api.example/v1".to_owned()],
                    "https://api.example/.well-known/oauth-protected-resource/v1".to_owned()
                ),
                (
                    vec![
                        "https://api.example".to_owned(),
                        "https://api.example/".to_owned()
                    ],
                    "https://api.example/.well-known/oauth-protected-resource".to_owned()
                ),
            ]
        );
        for root in ["https://api.example:8443", "https://api.example:8443/"] {
            let found = candidates(root);
            assert_eq!(found.len(), 1, "{root}");
            assert_eq!(
                found[0].1,
                "https://api.example:8443/.well-known/oauth-protected-resource"
            );
        }
        assert!(candidates("not a url").is_empty());
    }

    #[test]
    fn metadata_naming_another_resource_is_not_used() {
        let ids = ["https://api.example/v1".to_owned()];
        let doc = document(json!({
            "resource": "https://evil.example/v1",
            "authorization_servers": ["https://as.evil.example"],
        }));
        let err = read(&doc, "https://api.example/m", &ids, None, false).expect_err("mismatch");
        assert!(
            matches!(
                err.kind(),
                super::super::TokenErrorKind::ResourceMetadata { .. }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("is not https://api.example/v1"),
            "{err}"
        );
        // §3.3 is an exact comparison.
        let doc = document(json!({
            "resource": "https://API.example/v1",
            "authorization_servers": ["https://as.example"],
        }));
        assert!(read(&doc, "u", &ids, None, false).is_err());
    }

    #[test]
    fn the_first_authorization_server_is_chosen_unless_the_application_names_one() {
        let ids = ["https://api.example/v1".to_owned()];
        let doc = document(json!({
            "resource": "https://api.example/v1",
            "authorization_servers": ["https://as1.example", "https://as2.example"],
        }));
        let pick = |prefer| read(&doc, "u", &ids, prefer, false).map(|p| p.issuer);
        assert_eq!(pick(None).expect("first"), "https://as1.example");
        assert_eq!(
            pick(Some("https://as2.example")).expect("preferred"),
            "https://as2.example"
        );
        assert!(pick(Some("https://as3.example")).is_err());
        for bad in [
            json!({"resource": "https://api.example/v1"}),
            json!({"resource": "https://api.example/v1", "authorization_servers": []}),
            json!({"resource": "https://api.example/v1", "authorization_servers": "https://as.example"}),
            json!({"resource": "https://api.example/v1", "authorization_servers": ["http://as.example"]}),
            json!({"authorization_servers": ["https://as.example"]}),
            json!({"resource": 7, "authorization_servers": ["https://as.example"]}),
        ] {
            assert!(
                read(&document(bad.clone()), "u", &ids, None, false).is_err(),
                "{bad}"
            );
        }
    }
}
