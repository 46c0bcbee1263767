//! `signed_metadata` (RFC 9728 §2.2): the document's values as the claims of a JWT signed by
//! the party that attests to them (its `iss`), for clients that trust that party's keys more
//! than the channel the document came over.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::ConfigError;
use crate::support::crypto::{self, jose_provider};
use crate::support::jose;

/// Who signs the metadata, and with what.
pub(super) struct Signer {
    pub(super) issuer: String,
    pub(super) algorithm: Algorithm,
    pub(super) key: EncodingKey,
    pub(super) kid: Option<String>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of Debug output.
        f.debug_struct("Signer")
            .field("issuer", &self.issuer)
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// The compact JWS of `document`'s values plus `iss` (§2.2: it MUST name the attesting
    /// party), signed with the configured key through certbound's crypto provider.
    pub(super) fn sign(&self, document: &impl Serialize) -> Result<String, ConfigError> {
        let failed = |reason: &'static str| ConfigError::invalid("signed_metadata", reason);
        let Ok(Value::Object(mut claims)) = serde_json::to_value(document) else {
            return Err(failed("the document is not a JSON object"));
        };
        claims.insert("iss".to_owned(), Value::from(self.issuer.as_str()));
        let mut header = json!({ "alg": jose::name(self.algorithm), "typ": "JWT" });
        if let Some(kid) = &self.kid {
            header["kid"] = Value::from(kid.as_str());
        }
        let header = serde_json::to_vec(&header).map_err(|_| failed("cannot render"))?;
        let claims = serde_json::to_vec(&claims).map_err(|_| failed("cannot render"))?;
        let mut jws = URL_SAFE_NO_PAD.encode(header);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(claims, &mut jws);
        let signature = crypto::sign(jose_provider()?, self.algorithm, &self.key, jws.as_bytes())
            .map_err(|e| {
            ConfigError::invalid_because(
                "signed_metadata",
                "the key cannot sign with this algorithm",
                e,
            )
        })?;
        jws.push('.');
        jws.push_str(&signature);
        Ok(jws)
    }
}

#[cfg(all(test, any(feature = "aws-lc-rs", feature = "rust-crypto")))]
// The signature is checked by jsonwebtoken's own `decode` (independently of certbound's
// signer), with the process-wide provider installed by the test.
#[allow(clippy::disallowed_methods)]
mod tests {
    use crate::ResourceMetadata;
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
    use serde_json::{Map, Value};

    fn document(service: &crate::resource_metadata::ResourceMetadataService) -> Value {
        serde_json::from_slice(&service.body()).unwrap()
    }

    #[test]
    fn signed_metadata_is_a_jwt_of_the_documents_values_and_its_issuer() {
        crate::test_helpers::install_jose_default();
        let key = crate::test_helpers::p256_key();
        let service = ResourceMetadata::new("https://api.example/v1")
            .unwrap()
            .authorization_server("https://as.example")
            .scopes_supported(["read"])
            .signed_metadata(
                "https://attester.example",
                Algorithm::ES256,
                EncodingKey::from_ec_der(&key.serialize_der()),
            )
            .signed_metadata_key_id("meta-1")
            .build()
            .unwrap();
        let doc = document(&service);
        let jwt = doc["signed_metadata"].as_str().expect("signed_metadata");
        let header = jsonwebtoken::decode_header(jwt).unwrap();
        assert_eq!(
            (header.alg, header.kid.as_deref()),
            (Algorithm::ES256, Some("meta-1"))
        );
        let decoding = DecodingKey::from_ec_pem(key.public_key_pem().as_bytes()).unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.set_issuer(&["https://attester.example"]);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(jwt, &decoding, &validation)
            .expect("the signature verifies")
            .claims;
        // Every other value of the document, and `iss`.
        let mut expected = doc.as_object().unwrap().clone();
        expected.remove("signed_metadata");
        expected.insert("iss".into(), "https://attester.example".into());
        assert_eq!(claims, expected);
    }

    #[test]
    fn a_signing_key_that_does_not_fit_its_algorithm_or_an_issuer_that_is_not_https_is_refused() {
        let key = crate::test_helpers::p256_key();
        let signed = |issuer: &str, algorithm| {
            ResourceMetadata::new("https://api.example")
                .unwrap()
                .signed_metadata(
                    issuer,
                    algorithm,
                    EncodingKey::from_ec_der(&key.serialize_der()),
                )
                .build()
        };
        assert!(signed("https://attester.example", Algorithm::RS256).is_err());
        assert!(signed("http://attester.example", Algorithm::ES256).is_err());
        assert!(signed("https://attester.example", Algorithm::ES256).is_ok());
    }
}
