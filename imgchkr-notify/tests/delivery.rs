//! Deliveries against real receivers on 127.0.0.1: success, retries, give-ups, timeouts,
//! misbehaving bodies, deadline and in-flight bound.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Receiver, Reply, closed_port, fast, notification};
use imgchkr_core::{DeliveryStatus, Event, Notifier};
use imgchkr_notify::WebhookNotifier;

fn errors(outcome: &imgchkr_core::DeliveryOutcome) -> Vec<Option<String>> {
    outcome.attempts.iter().map(|a| a.error.clone()).collect()
}

#[tokio::test]
async fn a_2xx_is_delivered_in_one_attempt_with_the_contract_headers() {
    let receiver = Receiver::always(200).await;
    let notifier = WebhookNotifier::new(fast()).unwrap();
    let n = notification(receiver.url("/print/onStart"), Event::OnStart);

    let outcome = notifier.deliver(&n).await;

    assert!(outcome.delivered);
    let record = outcome.record(n.event, n.url.clone());
    assert_eq!(record.status, DeliveryStatus::Delivered);
    assert_eq!(
        (record.attempts, record.http_status, record.error),
        (1, Some(200), None)
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("user-agent"),
        Some(concat!("imgchkr/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(r.header("webhook-id"), Some(n.webhook_id.as_str()));
    assert_eq!(
        r.header("webhook-signature"),
        None,
        "no secret, no signature"
    );
    let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - ts).abs() <= 5, "timestamp {ts}, now {now}");
    assert_eq!(r.body, n.payload.to_json());
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"id": n.job_id.to_string(), "state": "started"})
    );
}

#[tokio::test]
async fn failures_then_success_are_retried_with_the_same_webhook_id() {
    let receiver = Receiver::start(|i| match i {
        0 => Reply::Status(500, vec![]),
        1 => Reply::Status(503, vec![]),
        _ => Reply::Status(204, vec![]),
    })
    .await;
    let notifier = WebhookNotifier::new(fast()).unwrap();
    let n = notification(receiver.url("/hook"), Event::OnSuccess);

    let outcome = notifier.deliver(&n).await;

    assert!(outcome.delivered);
    assert_eq!(
        errors(&outcome),
        [Some("HTTP 500".into()), Some("HTTP 503".into()), None]
    );
    assert_eq!(
        outcome
            .attempts
            .iter()
            .map(|a| a.number)
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let record = outcome.record(n.event, n.url.clone());
    assert_eq!((record.attempts, record.http_status), (3, Some(204)));
    let ids: Vec<_> = receiver
        .requests()
        .iter()
        .map(|r| r.header("webhook-id").map(str::to_owned))
        .collect();
    assert_eq!(ids, vec![Some(n.webhook_id.clone()); 3]);
}

#[tokio::test]
async fn a_server_error_forever_uses_every_attempt() {
    let receiver = Receiver::always(500).await;
    let notifier = WebhookNotifier::new(fast()).unwrap();
    let n = notification(receiver.url("/hook"), Event::OnFailure);

    let outcome = notifier.deliver(&n).await;

    assert!(!outcome.delivered);
    assert_eq!(outcome.attempts.len(), 3);
    assert_eq!(receiver.requests().len(), 3);
    let record = outcome.record(n.event, n.url.clone());
    assert_eq!(record.status, DeliveryStatus::Failed);
    assert_eq!((record.attempts, record.http_status), (3, Some(500)));
    assert_eq!(record.error.as_deref(), Some("HTTP 500"));
}

#[tokio::test]
async fn a_4xx_is_not_retried() {
    for status in [410, 404, 400] {
        let receiver = Receiver::always(status).await;
        let notifier = WebhookNotifier::new(fast()).unwrap();
        let n = notification(receiver.url("/hook"), Event::OnStart);

        let outcome = notifier.deliver(&n).await;

        assert_eq!(errors(&outcome), [Some(format!("HTTP {status}"))]);
        assert_eq!(receiver.requests().len(), 1);
    }
}

#[tokio::test]
async fn retryable_4xx_are_retried() {
    for status in [408, 429] {
        let receiver =
            Receiver::start(move |i| Reply::Status(if i == 0 { status } else { 200 }, vec![]))
                .await;
        let notifier = WebhookNotifier::new(fast()).unwrap();
        let outcome = notifier
            .deliver(&notification(receiver.url("/"), Event::OnStart))
            .await;
        assert!(outcome.delivered, "{status}");
        assert_eq!(outcome.attempts.len(), 2);
    }
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let elsewhere = Receiver::always(200).await;
    let location = elsewhere.url("/stolen").to_string();
    let receiver =
        Receiver::start(move |_| Reply::Status(302, vec![("Location", location.clone())])).await;
    let notifier = WebhookNotifier::new(fast()).unwrap();
    let n = notification(receiver.url("/hook"), Event::OnStart);

    let outcome = notifier.deliver(&n).await;

    assert!(!outcome.delivered);
    assert_eq!(
        errors(&outcome),
        [Some("redirect not followed (HTTP 302)".into())]
    );
    assert_eq!(outcome.attempts[0].http_status, Some(302));
    assert_eq!(elsewhere.connections(), 0);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let receiver = Receiver::start(|i| match i {
        0 => Reply::Status(429, vec![("Retry-After", "1".into())]),
        _ => Reply::Status(200, vec![]),
    })
    .await;
    let notifier = WebhookNotifier::new(fast()).unwrap();

    let outcome = notifier
        .deliver(&notification(receiver.url("/"), Event::OnStart))
        .await;

    assert!(outcome.delivered);
    let requests = receiver.requests();
    let gap = requests[1].at - requests[0].at;
    assert!(gap >= Duration::from_millis(900), "retried after {gap:?}");
}

#[tokio::test]
async fn retry_after_is_capped() {
    let receiver = Receiver::start(|i| match i {
        0 => Reply::Status(503, vec![("Retry-After", "3600".into())]),
        _ => Reply::Status(200, vec![]),
    })
    .await;
    let config = imgchkr_notify::WebhookConfig {
        max_retry_after: Duration::from_millis(200),
        ..fast()
    };
    let notifier = WebhookNotifier::new(config).unwrap();
    let started = Instant::now();

    let outcome = notifier
        .deliver(&notification(receiver.url("/"), Event::OnStart))
        .await;

    assert!(outcome.delivered);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_retry_that_cannot_fit_the_deadline_is_not_waited_for() {
    let receiver =
        Receiver::start(|_| Reply::Status(429, vec![("Retry-After", "10".into())])).await;
    let config = imgchkr_notify::WebhookConfig {
        deadline: Duration::from_secs(1),
        max_retry_after: Duration::from_secs(30),
        ..fast()
    };
    let notifier = WebhookNotifier::new(config).unwrap();
    let started = Instant::now();

    let outcome = notifier
        .deliver(&notification(receiver.url("/"), Event::OnStart))
        .await;

    assert_eq!(errors(&outcome), [Some("HTTP 429".into())]);
    // Waiting as asked would take 10 s.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out() {
    let receiver = Receiver::start(|_| Reply::Hang).await;
    let config = imgchkr_notify::WebhookConfig {
        max_attempts: 2,
        ..fast()
    };
    let notifier = WebhookNotifier::new(config.clone()).unwrap();
    let started = Instant::now();

    let outcome = notifier
        .deliver(&notification(receiver.url("/"), Event::OnStart))
        .await;

    let elapsed = started.elapsed();
    assert_eq!(
        errors(&outcome),
        [Some("timeout".into()), Some("timeout".into())]
    );
    assert_eq!(outcome.attempts[0].http_status, None);
    assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
    assert!(
        elapsed < config.deadline + Duration::from_secs(2),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn a_trickling_receiver_is_cut_off_by_the_attempt_timeout() {
    let receiver = Receiver::start(|_| Reply::TrickleHead).await;
    let config = imgchkr_notify::WebhookConfig {
        max_attempts: 1,
        ..fast()
    };
    let notifier = WebhookNotifier::new(config).unwrap();
    let started = Instant::now();

    let outcome = notifier
        .deliver(&notification(receiver.url("/"), Event::OnStart))
        .await;

    assert_eq!(errors(&outcome), [Some("timeout".into())]);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn nothing_listening_is_connection_refused() {
    let addr = closed_port().await;
    let notifier = WebhookNotifier::new(fast()).unwrap();
    let url = format!("http://{addr}/hook").parse().unwrap();
    let n = notification(url, Event::OnStart);

    let outcome = notifier.deliver(&n).await;

    assert_eq!(
        errors(&outcome),
        vec![Some("connection refused".to_owned()); 3]
    );
    let record = outcome.record(n.event, n.url.clone());
    assert_eq!((record.attempts, record.http_status), (3, None));
    assert_eq!(record.error.as_deref(), Some("connection refused"));
}

#[tokio::test]
async fn an_endless_body_is_cut_off_by_the_read_cap() {
    // A long attempt timeout, so only the read cap can end the attempts quickly.
    let config = imgchkr_notify::WebhookConfig {
        timeout: Duration::from_secs(10),
        ..fast()
    };
    for (status, delivered, attempts) in [(200, true, 1), (500, false, 3)] {
        let receiver = Receiver::start(move |_| Reply::EndlessBody(status)).await;
        let notifier = WebhookNotifier::new(config.clone()).unwrap();
        let started = Instant::now();

        let outcome = notifier
            .deliver(&notification(receiver.url("/"), Event::OnStart))
            .await;

        assert_eq!(outcome.delivered, delivered, "{status}");
        assert_eq!(outcome.attempts.len(), attempts, "{status}");
        assert_eq!(outcome.attempts[0].http_status, Some(status));
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{status}: {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn a_trickled_body_after_a_2xx_does_not_hold_the_delivery() {
    let receiver = Receiver::start(|_| Reply::TrickleBody(200)).await;
    let config = imgchkr_notify::WebhookConfig {
        timeout: Duration::from_secs(10),
        ..fast()
    };
    let notifier = WebhookNotifier::new(config).unwrap();
    let started = Instant::now();

    let outcome = notifier
        .deliver(&notification(receiver.url("/"), Event::OnStart))
        .await;

    assert!(outcome.delivered);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_deadline_bounds_the_whole_delivery() {
    let receiver = Receiver::start(|_| Reply::Hang).await;
    let config = imgchkr_notify::WebhookConfig {
        timeout: Duration::from_secs(10),
        deadline: Duration::from_millis(800),
        max_attempts: 5,
        ..fast()
    };
    let notifier = WebhookNotifier::new(config).unwrap();
    let started = Instant::now();

    let outcome = notifier
        .deliver(&notification(receiver.url("/"), Event::OnStart))
        .await;

    let elapsed = started.elapsed();
    assert!(!outcome.delivered);
    assert_eq!(errors(&outcome), [Some("timeout".into())]);
    assert!(elapsed >= Duration::from_millis(700), "{elapsed:?}");
    // Generous for a loaded machine, yet far below the 10 s attempt timeout.
    assert!(elapsed < Duration::from_millis(800 + 2000), "{elapsed:?}");
}

#[tokio::test]
async fn attempts_in_flight_are_bounded() {
    let receiver = Receiver::start(|_| Reply::Delayed(Duration::from_millis(300), 200)).await;
    let config = imgchkr_notify::WebhookConfig {
        max_in_flight: 2,
        timeout: Duration::from_secs(2),
        ..fast()
    };
    let notifier = Arc::new(WebhookNotifier::new(config).unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let notifier = Arc::clone(&notifier);
        let n = notification(receiver.url("/"), Event::OnStart);
        tasks.spawn(async move { notifier.deliver(&n).await });
    }

    let outcomes = tasks.join_all().await;

    assert!(
        outcomes
            .iter()
            .all(|o| o.delivered && o.attempts.len() == 1)
    );
    assert_eq!(receiver.requests().len(), 6);
    assert!(
        receiver.max_concurrent() <= 2,
        "{} at once",
        receiver.max_concurrent()
    );
    assert_eq!(receiver.max_concurrent(), 2);
}

#[tokio::test]
async fn a_full_notifier_gives_up_at_the_deadline() {
    let receiver = Receiver::start(|_| Reply::Hang).await;
    let config = imgchkr_notify::WebhookConfig {
        max_in_flight: 1,
        max_attempts: 1,
        timeout: Duration::from_secs(2),
        deadline: Duration::from_millis(500),
        ..fast()
    };
    let notifier = Arc::new(WebhookNotifier::new(config).unwrap());
    // Two deliveries started together, one slot: the one that gets it hangs until its
    // deadline, which is also the other's, so the other never gets a useful attempt.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let notifier = Arc::clone(&notifier);
        let n = notification(receiver.url("/"), Event::OnStart);
        tasks.spawn(async move { notifier.deliver(&n).await });
    }
    let started = Instant::now();

    let mut outcomes: Vec<_> = tasks.join_all().await.iter().map(errors).collect();

    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            [Some("timeout".to_owned())],
            [Some("timeout waiting for a delivery slot".to_owned())]
        ]
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn an_unresolvable_name_is_a_dns_failure() {
    let notifier = WebhookNotifier::new(fast()).unwrap();
    let n = notification(
        "http://no-such-host.invalid/hook".parse().unwrap(),
        Event::OnStart,
    );

    let outcome = notifier.deliver(&n).await;

    assert_eq!(outcome.attempts.len(), 3);
    // `.invalid` never resolves (RFC 6761); a resolver that does not even answer in time
    // makes it a timeout instead.
    let error = outcome.attempts[0].error.clone().unwrap();
    assert!(error == "dns failure" || error == "timeout", "{error}");
}

#[tokio::test]
async fn a_webhook_id_that_cannot_be_a_header_fails_without_connecting() {
    let receiver = Receiver::always(200).await;
    let notifier = WebhookNotifier::new(fast()).unwrap();
    let mut n = notification(receiver.url("/"), Event::OnStart);
    n.webhook_id = "msg\r\nX-Injected: 1".to_owned();

    let outcome = notifier.deliver(&n).await;

    assert_eq!(outcome.attempts.len(), 1, "not retried");
    let error = outcome.attempts[0].error.clone().unwrap();
    assert!(error.starts_with("invalid request"), "{error}");
    assert_eq!(receiver.connections(), 0);
}
