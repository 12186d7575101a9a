//! What the notifier signs verifies with the Standard Webhooks reference crate.

mod common;

use common::{OTHER_SECRET, Receiver, Reply, SECRET, fast, notification};
use imgchkr_core::{Event, Notifier};
use imgchkr_notify::{Secret, WebhookConfig, WebhookNotifier};
use standardwebhooks::Webhook;

fn signed_with(secrets: &[&str]) -> WebhookConfig {
    WebhookConfig {
        secrets: secrets.iter().map(|s| Secret::parse(s).unwrap()).collect(),
        ..fast()
    }
}

#[tokio::test]
async fn every_attempt_is_signed_and_verifies() {
    let receiver = Receiver::start(|i| Reply::Status(if i < 2 { 500 } else { 200 }, vec![])).await;
    let notifier = WebhookNotifier::new(signed_with(&[SECRET])).unwrap();
    let n = notification(receiver.url("/hook"), Event::OnFailure);

    assert!(notifier.deliver(&n).await.delivered);

    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    let verifier = Webhook::new(SECRET).unwrap();
    for r in &requests {
        verifier.verify(&r.body, &r.header_map()).unwrap();
        assert_eq!(r.header("webhook-id"), Some(n.webhook_id.as_str()));
    }
    // A tampered body or another key does not verify.
    let r = &requests[0];
    let mut tampered = r.body.clone();
    tampered.push(b' ');
    assert!(verifier.verify(&tampered, &r.header_map()).is_err());
    let other = Webhook::new(OTHER_SECRET).unwrap();
    assert!(other.verify(&r.body, &r.header_map()).is_err());
}

#[tokio::test]
async fn several_secrets_each_verify_for_rotation() {
    let receiver = Receiver::always(200).await;
    let notifier = WebhookNotifier::new(signed_with(&[SECRET, OTHER_SECRET])).unwrap();
    let n = notification(receiver.url("/hook"), Event::OnSuccess);

    assert!(notifier.deliver(&n).await.delivered);

    let r = &receiver.requests()[0];
    let signature = r.header("webhook-signature").unwrap();
    assert_eq!(signature.split(' ').count(), 2, "{signature}");
    assert!(signature.split(' ').all(|s| s.starts_with("v1,")));
    for secret in [SECRET, OTHER_SECRET] {
        Webhook::new(secret)
            .unwrap()
            .verify(&r.body, &r.header_map())
            .unwrap();
    }
}

#[test]
fn the_published_test_vector_agrees_with_the_reference_crate() {
    let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    let body = br#"{"test": 2432232314}"#;
    let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    assert_eq!(
        Secret::parse(SECRET).unwrap().sign(id, 1614265330, body),
        expected
    );
    assert_eq!(
        Webhook::new(SECRET)
            .unwrap()
            .sign(id, 1614265330, body)
            .unwrap(),
        expected
    );
}
