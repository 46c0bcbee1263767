//! PLACEHOLDER (being written): the client-side proof signer.
#![allow(missing_docs, dead_code, unused_variables)]
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::Algorithm;

use crate::error::ConfigError;
use crate::thumbprint::JwkThumbprint;

pub struct DpopKey(());
#[derive(Debug)]
pub struct ProofBuilder<'a>(&'a DpopKey);

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DpopKey")
    }
}

impl DpopKey {
    pub fn generate(alg: Algorithm) -> Result<Self, ConfigError> {
        todo!()
    }
    pub fn from_pkcs8_pem(pem: &[u8]) -> Result<Self, ConfigError> {
        todo!()
    }
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, ConfigError> {
        todo!()
    }
    pub fn to_pkcs8_pem(&self) -> String {
        todo!()
    }
    pub fn algorithm(&self) -> Algorithm {
        todo!()
    }
    pub fn public_jwk(&self) -> &Jwk {
        todo!()
    }
    pub fn thumbprint(&self) -> JwkThumbprint {
        todo!()
    }
    pub fn proof<'a>(&'a self, method: &str, url: &str) -> ProofBuilder<'a> {
        todo!()
    }
}

impl ProofBuilder<'_> {
    pub fn access_token(self, token: &str) -> Self {
        todo!()
    }
    pub fn nonce(self, nonce: &str) -> Self {
        todo!()
    }
    pub fn issued_at(self, unix_seconds: i64) -> Self {
        todo!()
    }
    pub fn jti(self, jti: &str) -> Self {
        todo!()
    }
    pub fn claim(self, name: &str, value: serde_json::Value) -> Self {
        todo!()
    }
    pub fn sign(self) -> Result<String, jsonwebtoken::errors::Error> {
        todo!()
    }
}
