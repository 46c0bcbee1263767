//! The forwarded client certificate in the `apache` format (see `certbound_fuzz::check_forwarded`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    certbound_fuzz::check_forwarded(certbound::ForwardedCertFormat::Apache, data);
});
