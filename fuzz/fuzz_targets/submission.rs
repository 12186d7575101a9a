//! Arbitrary bytes as a request body: `Submission::from_json` never panics; an accepted
//! submission has an asset path and three absolute http(s) URLs with a host.
#![no_main]

use imgchkr_core::Submission;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Submission::from_json(data, &["local"]) {
        Ok(s) => {
            assert!(!s.asset_path.path().is_empty());
            let urls = &s.notification_urls;
            for url in [&urls.on_start, &urls.on_success, &urls.on_failure] {
                assert!(matches!(url.scheme(), "http" | "https"), "{url}");
                assert!(url.host_str().is_some_and(|h| !h.is_empty()), "{url}");
                assert!(!url.cannot_be_a_base(), "{url}");
                // What is stored re-parses to itself.
                assert_eq!(url::Url::parse(url.as_str()).as_ref(), Ok(url));
            }
            // An accepted body is valid JSON.
            assert!(serde_json::from_slice::<serde_json::Value>(data).is_ok());
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            // The error body serializes.
            assert!(serde_json::from_slice::<serde_json::Value>(&errors.to_json()).is_ok());
        }
    }
});
