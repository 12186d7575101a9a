//! The destination policy, against real receivers: refused destinations are never connected
//! to; allowlisted ones are delivered to; submission-time checks say why.

mod common;

use std::time::{Duration, Instant};

use common::{Receiver, fast, notification};
use imgchkr_core::{Event, Notifier};
use imgchkr_notify::{DestinationPolicy, WebhookConfig, WebhookNotifier};
use url::Url;

fn policy(allow: &[&str], deny_private: bool) -> WebhookNotifier {
    WebhookNotifier::new(WebhookConfig {
        destinations: DestinationPolicy::new(
            allow.iter().map(|r| r.parse().unwrap()).collect(),
            deny_private,
        ),
        connect_timeout: Duration::from_secs(2),
        ..fast()
    })
    .unwrap()
}

fn url(s: &str) -> Url {
    s.parse().unwrap()
}

fn localhost_url(receiver: &Receiver, path: &str) -> Url {
    format!("http://localhost:{}{path}", receiver.addr.port())
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_private_literal_is_never_connected_to() {
    let receiver = Receiver::always(200).await;
    let notifier = policy(&[], true);
    let n = notification(receiver.url("/hook"), Event::OnStart);

    let outcome = notifier.deliver(&n).await;

    assert!(!outcome.delivered);
    assert_eq!(outcome.attempts.len(), 1, "a refusal is not retried");
    assert_eq!(
        outcome.record(n.event, n.url.clone()).error.as_deref(),
        Some("destination not allowed: 127.0.0.1 is a loopback address")
    );
    assert_eq!(receiver.connections(), 0);
}

#[tokio::test]
async fn a_name_resolving_to_a_private_address_is_never_connected_to() {
    let receiver = Receiver::always(200).await;
    let notifier = policy(&[], true);
    let n = notification(localhost_url(&receiver, "/hook"), Event::OnStart);

    let outcome = notifier.deliver(&n).await;

    assert_eq!(outcome.attempts.len(), 1);
    let error = outcome.attempts[0].error.clone().unwrap();
    assert!(
        error.starts_with("destination not allowed: localhost resolves to "),
        "{error}"
    );
    assert!(error.ends_with("which is a loopback address"), "{error}");
    assert_eq!(receiver.connections(), 0);
}

#[tokio::test]
async fn an_allowlisted_range_overrides_deny_private() {
    let receiver = Receiver::always(200).await;
    let notifier = policy(&["127.0.0.0/8", "::1"], true);
    for target in [receiver.url("/"), localhost_url(&receiver, "/")] {
        let outcome = notifier
            .deliver(&notification(target.clone(), Event::OnStart))
            .await;
        assert!(outcome.delivered, "{target}: {:?}", outcome.attempts);
    }
}

#[tokio::test]
async fn a_host_off_the_allowlist_is_never_connected_to() {
    let receiver = Receiver::always(200).await;
    let notifier = policy(&[".example.com"], false);

    for target in [receiver.url("/"), localhost_url(&receiver, "/")] {
        let outcome = notifier
            .deliver(&notification(target.clone(), Event::OnStart))
            .await;
        let error = outcome.attempts[0].error.clone().unwrap();
        assert!(
            error.ends_with("is not in the allowlist"),
            "{target}: {error}"
        );
    }
    assert_eq!(receiver.connections(), 0);
}

#[tokio::test]
async fn an_allowlisted_name_is_delivered_to() {
    let receiver = Receiver::always(200).await;
    let notifier = policy(&["localhost"], false);
    let outcome = notifier
        .deliver(&notification(localhost_url(&receiver, "/"), Event::OnStart))
        .await;
    assert!(outcome.delivered, "{:?}", outcome.attempts);
}

#[tokio::test]
async fn submission_check_without_a_policy_accepts_at_once() {
    let notifier = policy(&[], false);
    let started = Instant::now();
    for u in [
        "http://10.0.0.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://no-such-host.invalid/hook",
        "https://hooks.example.com/hook",
    ] {
        assert_eq!(notifier.check_destination(&url(u)).await, Ok(()), "{u}");
    }
    // No DNS lookup happens: a thousand checks take well under a second.
    for _ in 0..1000 {
        notifier
            .check_destination(&url("http://no-such-host.invalid/"))
            .await
            .unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn submission_check_with_deny_private_says_why() {
    let notifier = policy(&[], true);
    let cases = [
        ("http://10.0.0.1/x", "10.0.0.1 is a private address"),
        (
            "http://169.254.169.254/",
            "169.254.169.254 is a cloud metadata address",
        ),
        (
            "http://[fd00:ec2::254]/",
            "fd00:ec2::254 is a cloud metadata address",
        ),
        ("http://[::1]:8080/", "::1 is a loopback address"),
        (
            "http://100.64.1.1/",
            "100.64.1.1 is a CGNAT (shared address space) address",
        ),
        ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
    ];
    for (u, why) in cases {
        assert_eq!(
            notifier.check_destination(&url(u)).await,
            Err(format!("Notification URL not allowed: {why}")),
            "{u}"
        );
    }
    let err = notifier
        .check_destination(&url("http://localhost:9/"))
        .await
        .unwrap_err();
    assert!(
        err.starts_with("Notification URL not allowed: localhost resolves to "),
        "{err}"
    );
    assert_eq!(
        notifier
            .check_destination(&url("http://8.8.8.8/hook"))
            .await,
        Ok(())
    );
    assert!(
        notifier
            .check_destination(&url("ftp://8.8.8.8/"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn submission_check_with_an_allowlist() {
    let notifier = policy(&[".example.com", "203.0.113.0/24"], false);
    assert_eq!(
        notifier
            .check_destination(&url("https://hooks.example.com/"))
            .await,
        Ok(())
    );
    assert_eq!(
        notifier
            .check_destination(&url("https://example.com/"))
            .await,
        Ok(())
    );
    assert_eq!(
        notifier
            .check_destination(&url("http://203.0.113.9/"))
            .await,
        Ok(())
    );
    assert_eq!(
        notifier.check_destination(&url("http://10.0.0.1/")).await,
        Err("Notification URL not allowed: 10.0.0.1 is not in the allowlist".into())
    );
    // With a range on the allowlist, a name off it is judged by its addresses.
    let err = notifier
        .check_destination(&url("http://localhost/"))
        .await
        .unwrap_err();
    assert!(
        err.starts_with("Notification URL not allowed: localhost resolves to "),
        "{err}"
    );
    assert!(err.ends_with("which is not in the allowlist"), "{err}");
}
