//! The command-line contract of issue 25, on the built binary:
//! `certbound-authz check-config FILE` exits 0 when valid, 2 with one line naming the bad key
//! when not; `certbound-authz --config FILE` exits 2 with one line on stderr when invalid.

mod binary;
mod support;

use std::ffi::OsStr;

use binary::run;
use support::TempDir;

/// A valid configuration using files: the issuer's CA, the nonce key, the introspection secret.
fn valid(dir: &TempDir) -> String {
    dir.write("as-ca.pem", support::server_pki().0);
    dir.write("nonce.key", [42u8; 32]);
    dir.write("rs-secret.txt", "s3cret\n");
    r#"
[listen]
http = "127.0.0.1:0"
grpc = "127.0.0.1:0"

[[issuers]]
issuer = "https://as.example.com"
audiences = ["https://api.example.com"]
jwks_url = "https://as.example.com/jwks"
ca_file = "as-ca.pem"

[introspection]
url = "https://as.example.com/token/introspection"
client_id = "rs"
client_secret_file = "rs-secret.txt"
ca_file = "as-ca.pem"

[tokens]
allow_unbound = false
dpop = true
dpop_nonce_key_file = "nonce.key"
replay_redis = "redis://127.0.0.1:6379"
public_url = "https://api.example.com"

[proxy]
profile = "nginx"
trusted = ["127.0.0.1/32"]
client_cert_header = "x-ssl-client-cert"
grpc_client_cert = "source"

[[routes]]
path_prefix = "/admin"
methods = ["POST"]
scopes = ["admin"]
open = false

[identity_headers]
subject = "x-auth-subject"
client_id = "x-auth-client-id"
scope = "x-auth-scope"
issuer = "x-auth-issuer"
binding = "x-auth-binding"
"#
    .to_owned()
}

fn check(dir: &TempDir, text: &str) -> (i32, String, String) {
    let file = dir.write("authz.toml", text);
    run(&[OsStr::new("check-config"), file.as_os_str()])
}

#[test]
fn check_config_accepts_a_valid_file_with_every_key_of_the_contract() {
    let dir = TempDir::new();
    let (code, stdout, stderr) = check(&dir, &valid(&dir));
    assert_eq!(code, 0, "stdout: {stdout} stderr: {stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn check_config_refuses_each_kind_of_bad_key_with_exit_2_and_one_line_naming_it() {
    let dir = TempDir::new();
    let text = valid(&dir);
    for (what, from, to, key) in [
        (
            "unknown key",
            "allow_unbound = false",
            "allow_unbond = false",
            "tokens.allow_unbond",
        ),
        (
            "unknown table",
            "[identity_headers]",
            "[identity]",
            "identity",
        ),
        ("wrong type", "dpop = true", "dpop = \"yes\"", "tokens.dpop"),
        (
            "unknown profile",
            "profile = \"nginx\"",
            "profile = \"haproxy\"",
            "proxy.profile",
        ),
        (
            "bad address",
            "http = \"127.0.0.1:0\"",
            "http = \"nowhere\"",
            "listen.http",
        ),
        (
            "bad CIDR",
            "\"127.0.0.1/32\"",
            "\"127.0.0.1/33\"",
            "proxy.trusted[0]",
        ),
        (
            "missing file",
            "ca_file = \"as-ca.pem\"\n\n[introspection]",
            "ca_file = \"missing.pem\"\n\n[introspection]",
            "issuers[0].ca_file",
        ),
        (
            "short nonce key",
            "dpop_nonce_key_file = \"nonce.key\"",
            "dpop_nonce_key_file = \"rs-secret.txt\"",
            "tokens.dpop_nonce_key_file",
        ),
        (
            "missing key",
            "audiences = [\"https://api.example.com\"]\n",
            "",
            "audiences",
        ),
        (
            "not https",
            "url = \"https://as.example.com/token/introspection\"",
            "url = \"http://as.example.com/token/introspection\"",
            "introspection.url",
        ),
    ] {
        assert!(text.contains(from), "{what}: {from}");
        let (code, _, stderr) = check(&dir, &text.replacen(from, to, 1));
        assert_eq!(code, 2, "{what}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
        assert!(stderr.contains(key), "{what}: {key} not in {stderr}");
        assert!(stderr.starts_with("certbound-authz: "), "{what}: {stderr}");
    }
}

#[test]
fn run_refuses_an_invalid_file_with_exit_2_and_one_line() {
    let dir = TempDir::new();
    let text = valid(&dir).replace("[proxy]", "[proxi]");
    let file = dir.write("authz.toml", text);
    let (code, _, stderr) = run(&[OsStr::new("--config"), file.as_os_str()]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("proxi"), "{stderr}");
}

#[test]
fn an_unreadable_configuration_file_exits_2() {
    let dir = TempDir::new();
    let missing = dir.0.join("nothing.toml");
    let (code, _, stderr) = run(&[OsStr::new("check-config"), missing.as_os_str()]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn without_arguments_the_usage_is_an_error_of_exit_2() {
    let (code, _, stderr) = run(&[]);
    assert_eq!(code, 2, "{stderr}");
}
