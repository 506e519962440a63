//! `sluice demo` (in-process, small): every id in its reports has its name, and it ends with a
//! named queue report of the busiest day.
use sluice::demo::{busiest_day_queue_report, run_demo, DemoArgs};
use sluice::progress::ProgressMode;
use sluice::report::{self, ReportSpec};
use sluice::storage::{connect, DatabaseUrl};

#[test]
fn every_id_in_the_demos_reports_has_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let args = DemoArgs {
        days: 2,
        per_day: 300,
        users: 12,
        db: dir.path().join("demo.db"),
        rate_per_minute: 6000,
        window_secs: 1,
        mode: "query".into(),
        seed: 5,
    };
    let demo = actix_rt::System::new()
        .block_on(run_demo(&args, ProgressMode::Off))
        .expect("demo runs");
    assert!(demo.ok(), "{}", demo.text());
    let url = DatabaseUrl::sqlite(&args.db);
    let mut conn = connect(&url).unwrap();
    let spec = ReportSpec::utc_days(demo.interval.start, demo.interval.end);
    let queues = report::queue_report(&mut conn, &spec).unwrap();
    let agents = report::agent_report(&mut conn, &spec).unwrap();
    let wrapups = report::wrapup_report(&mut conn, &spec).unwrap();
    let presence = report::presence_report(&mut conn, &spec, demo.interval.end).unwrap();
    assert!(
        !queues.is_empty() && !agents.is_empty() && !wrapups.is_empty() && !presence.is_empty()
    );
    for r in &queues {
        assert_ne!(r.queue, r.queue_id, "{r:?}");
    }
    for r in &agents {
        assert_ne!(r.agent, r.user_id, "{r:?}");
    }
    for r in &wrapups {
        assert!(
            r.queue != r.queue_id && r.wrap_up != r.wrap_up_code,
            "{r:?}"
        );
    }
    for r in &presence {
        assert_ne!(r.agent, r.user_id, "{r:?}");
    }
    let text = busiest_day_queue_report(&url, demo.interval).unwrap();
    assert!(text.contains("busiest day"), "{text}");
    assert!(
        text.contains(sluice::sim::directory::RENAMED_QUEUE),
        "{text}"
    );
    for r in &queues {
        assert!(!text.contains(&r.queue_id), "{text}");
    }
}
