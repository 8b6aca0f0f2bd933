//! `Config::decode` on arbitrary bytes. A config that decodes is valid,
//! re-encodes to bytes that decode to the same config, and its saved
//! retention policy decodes or is refused without a panic.

#![no_main]

use cairn::store::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(config) = Config::decode(data) else {
        return;
    };
    assert_eq!(config.validate(), Ok(()));
    let _ = config.sqlite();
    if let Ok(Some(policy)) = config.saved_policy() {
        let _ = policy.policy.to_string();
        let saved = config.with_policy(Some(&policy));
        assert_eq!(saved.saved_policy().ok().flatten().as_ref(), Some(&policy));
    }
    let encoded = config.encode();
    let again = match Config::decode(&encoded) {
        Ok(c) => c,
        Err(e) => panic!(
            "a decoded config re-encodes to bytes that do not decode: {e}\n{}",
            String::from_utf8_lossy(&encoded)
        ),
    };
    assert_eq!(again, config, "decode(encode(config)) != config");
    assert_eq!(again.encode(), encoded, "encoding is not stable");
});
