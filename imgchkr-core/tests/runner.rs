//! The job runner: event order, verdicts, and delivery outcomes recorded on the job.

use std::sync::Mutex;

use imgchkr_core::job::DeliveryStatus;
use imgchkr_core::notify::BoxFuture;
use imgchkr_core::recorder::Recorder;
use imgchkr_core::runner::give_up;
use imgchkr_core::{
    AssetPath, Event, Job, JobId, JobState, JobUpdate, NotificationUrls, Policy, RecordingNotifier,
    Report, StoreError, run_job,
};

/// The smallest recorder the runner needs: the job, and every update in order.
struct Jobs {
    job: Mutex<Job>,
    log: Mutex<Vec<JobUpdate>>,
}

impl Jobs {
    fn new(job: &Job) -> Jobs {
        Jobs {
            job: Mutex::new(job.clone()),
            log: Mutex::default(),
        }
    }

    fn get(&self) -> Job {
        self.job.lock().unwrap().clone()
    }

    fn apply(&self, update: JobUpdate) {
        self.job.lock().unwrap().apply(&update);
        self.log.lock().unwrap().push(update);
    }
}

impl Recorder for Jobs {
    fn record(&self, update: JobUpdate) -> BoxFuture<'_, Result<(), StoreError>> {
        self.apply(update);
        Box::pin(async { Ok(()) })
    }
}

fn new_job() -> Job {
    let url = |e: &str| format!("http://callback/print/{e}").parse().unwrap();
    Job::new(
        JobId::random(),
        AssetPath::Local {
            path: "a.jpg".into(),
        },
        NotificationUrls {
            on_start: url("onStart"),
            on_success: url("onSuccess"),
            on_failure: url("onFailure"),
        },
    )
}

/// A SOF0 header for `width` x `height`.
fn header(width: u16, height: u16) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 8];
    bytes.extend_from_slice(&height.to_be_bytes());
    bytes.extend_from_slice(&width.to_be_bytes());
    bytes.extend_from_slice(&[1, 1, 0x11, 0]);
    bytes
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    futures_executor::block_on(future)
}

#[test]
fn a_failing_image_sends_on_start_then_on_failure_with_the_errors() {
    let (notifier, job) = (RecordingNotifier::new(), new_job());
    let store = Jobs::new(&job);
    let report = Report::from_bytes(&header(1800, 1200), &Policy::default());
    let state = block_on(run_job(&job, &store, &notifier, async { report })).unwrap();
    assert_eq!(state, JobState::Failed);

    let sent = notifier.sent();
    assert_eq!(
        sent.iter().map(|n| n.event).collect::<Vec<_>>(),
        [Event::OnStart, Event::OnFailure]
    );
    assert_eq!(
        String::from_utf8(sent[0].payload.to_json()).unwrap(),
        format!(r#"{{"id":"{}","state":"started"}}"#, job.id)
    );
    assert_eq!(
        String::from_utf8(sent[1].payload.to_json()).unwrap(),
        format!(
            r#"{{"id":"{}","state":"failed","errors":{{"image":["Image width exceeds maximum (1800/1000)","Image height exceeds maximum (1200/1000)"]}}}}"#,
            job.id
        )
    );
    assert_eq!(sent[1].url.as_str(), "http://callback/print/onFailure");
    assert_eq!(
        sent[0].webhook_id,
        format!("msg_{}_onStart", job.id.0.simple())
    );

    let stored = store.get();
    assert_eq!(stored.state, JobState::Failed);
    assert_eq!(stored.errors.unwrap()["image"].len(), 2);
    assert!(stored.finished_at.is_some());
    let statuses: Vec<_> = stored
        .notifications
        .iter()
        .map(|r| (r.event, r.status, r.attempts))
        .collect();
    assert_eq!(
        statuses,
        [
            (Event::OnStart, DeliveryStatus::Delivered, 1),
            (Event::OnFailure, DeliveryStatus::Delivered, 1)
        ]
    );
}

#[test]
fn a_valid_image_succeeds_and_the_verdict_is_recorded_before_the_final_event() {
    let (notifier, job) = (RecordingNotifier::new(), new_job());
    let store = Jobs::new(&job);
    let report = Report::from_bytes(&header(800, 600), &Policy::default());
    assert_eq!(
        block_on(run_job(&job, &store, &notifier, async { report })).unwrap(),
        JobState::Success
    );
    let events: Vec<_> = notifier.sent().iter().map(|n| n.event).collect();
    assert_eq!(events, [Event::OnStart, Event::OnSuccess]);

    let log = store.log.lock().unwrap().clone();
    let position = |f: &dyn Fn(&JobUpdate) -> bool| log.iter().position(f).unwrap();
    let verdict = position(&|u| matches!(u, JobUpdate::Verdict { errors: None, .. }));
    let final_pending =
        position(&|u| matches!(u, JobUpdate::Delivery(r) if r.event == Event::OnSuccess));
    assert!(verdict < final_pending, "{log:?}");
}

#[test]
fn failed_deliveries_are_recorded_and_never_change_the_verdict() {
    let job = new_job();
    let store = Jobs::new(&job);
    let notifier = RecordingNotifier::failing("connection refused");
    let report = Report::from_bytes(&header(10, 10), &Policy::default());
    assert_eq!(
        block_on(run_job(&job, &store, &notifier, async { report })).unwrap(),
        JobState::Success
    );
    let stored = store.get();
    assert_eq!(stored.state, JobState::Success);
    for record in &stored.notifications {
        assert_eq!(record.status, DeliveryStatus::Failed);
        assert_eq!(record.error.as_deref(), Some("connection refused"));
    }
    let json = serde_json::to_value(&stored).unwrap();
    assert_eq!(json["notifications"][0]["event"], "onStart");
    assert_eq!(json["notifications"][0]["status"], "failed");
    assert_eq!(json["state"], "success");
    assert!(json.get("errors").is_none());
}

fn abandoned() -> imgchkr_core::ErrorMap {
    [(
        "image".to_owned(),
        vec!["Job abandoned after 5 delivery attempts".to_owned()],
    )]
    .into()
}

#[test]
fn giving_up_on_a_started_job_fails_it_and_sends_on_failure_once() {
    let (notifier, job) = (RecordingNotifier::new(), new_job());
    let store = Jobs::new(&job);
    store.apply(JobUpdate::Started {
        at: time::OffsetDateTime::now_utc(),
    });

    let state = block_on(give_up(&store.get(), &store, &notifier, abandoned())).unwrap();
    assert_eq!(state, JobState::Failed);
    let sent = notifier.sent();
    assert_eq!(sent.len(), 1, "only the final event: {sent:?}");
    assert_eq!(sent[0].event, Event::OnFailure);
    assert_eq!(sent[0].url.as_str(), "http://callback/print/onFailure");
    assert_eq!(
        sent[0].webhook_id,
        format!("msg_{}_onFailure", job.id.0.simple()),
        "the id a normal run would use"
    );
    assert_eq!(
        String::from_utf8(sent[0].payload.to_json()).unwrap(),
        format!(
            r#"{{"id":"{}","state":"failed","errors":{{"image":["Job abandoned after 5 delivery attempts"]}}}}"#,
            job.id
        )
    );
    let stored = store.get();
    assert_eq!(stored.state, JobState::Failed);
    assert_eq!(stored.errors, Some(abandoned()));
    assert!(stored.finished_at.is_some());
    let records: Vec<_> = stored
        .notifications
        .iter()
        .map(|r| (r.event, r.status))
        .collect();
    assert_eq!(records, [(Event::OnFailure, DeliveryStatus::Delivered)]);

    // Again (the worker giving up died before acknowledging): already delivered, not resent.
    let state = block_on(give_up(&store.get(), &store, &notifier, abandoned())).unwrap();
    assert_eq!(state, JobState::Failed);
    assert_eq!(notifier.sent().len(), 1);
}

#[test]
fn giving_up_keeps_a_verdict_already_in_and_sends_its_final_event() {
    let (notifier, job) = (RecordingNotifier::new(), new_job());
    let store = Jobs::new(&job);
    store.apply(JobUpdate::Verdict {
        errors: None,
        warnings: Vec::new(),
        at: time::OffsetDateTime::now_utc(),
    });

    let state = block_on(give_up(&store.get(), &store, &notifier, abandoned())).unwrap();
    assert_eq!(state, JobState::Success, "the verdict stands");
    let sent = notifier.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].event, Event::OnSuccess);
    assert_eq!(sent[0].payload.errors, None);
    let stored = store.get();
    assert_eq!(stored.state, JobState::Success);
    assert_eq!(stored.errors, None);
    assert_eq!(stored.notifications[0].status, DeliveryStatus::Delivered);
}

#[test]
fn a_failed_final_delivery_is_retried_by_giving_up() {
    let job = new_job();
    let store = Jobs::new(&job);
    let refused = RecordingNotifier::failing("connection refused");
    assert_eq!(
        block_on(give_up(&store.get(), &store, &refused, abandoned())).unwrap(),
        JobState::Failed
    );
    let stored = store.get();
    assert_eq!(stored.notifications[0].status, DeliveryStatus::Failed);
    let notifier = RecordingNotifier::new();
    block_on(give_up(&store.get(), &store, &notifier, abandoned())).unwrap();
    assert_eq!(notifier.sent().len(), 1, "not yet delivered: sent again");
}
