//! Comparing stored content with the simulator's truth by digest: the truth from
//! `/__sim/expected/digests`, the copy read back from the database, both digested by
//! `sluice::digest` (one canonical function), differences reported by id.
#![allow(dead_code)]

use sluice::digest::{compare_digests, load_stored_digests, ContentDigests, DigestDiff};
use sluice::genesys::model::Interval;
use sluice::sim::SimHandle;
use sluice::storage::DatabaseUrl;

use super::db::TestDb;

/// The simulator's content digests for `interval` (as seen at its clock now).
pub fn truth_digests(base_url: &str, interval: Interval) -> ContentDigests {
    let base = base_url.to_owned();
    std::thread::spawn(move || {
        actix_rt::System::new()
            .block_on(sluice::demo::fetch_expected_digests(&base, interval))
            .expect("ground-truth digests")
    })
    .join()
    .expect("digest thread")
}

/// The digests of what `url` holds for `interval` (read off any runtime: MySQL needs that).
pub fn stored_digests(url: &DatabaseUrl, interval: Interval) -> ContentDigests {
    let url = url.clone();
    std::thread::spawn(move || load_stored_digests(&url, interval).expect("read the database"))
        .join()
        .expect("stored-digest thread")
}

/// Truth against the database: (conversations, user records), missing / extra / different ids.
pub fn content_diff(sim: &SimHandle, db: &TestDb, interval: Interval) -> (DigestDiff, DigestDiff) {
    let truth = truth_digests(&sim.base_url(), interval);
    compare_digests(&truth, &stored_digests(&db.url, interval))
}

/// Asserts every conversation of `interval` (and, with `users`, every user record) is stored
/// with the truth's content, naming the ids that are missing, extra or different.
pub fn assert_content_matches(sim: &SimHandle, db: &TestDb, interval: Interval, users: bool) {
    let (conversations, user_records) = content_diff(sim, db, interval);
    assert!(
        conversations.is_empty(),
        "stored conversations differ from the truth in {interval}: {}",
        conversations.summary()
    );
    if users {
        assert!(
            user_records.is_empty(),
            "stored user records differ from the truth in {interval}: {}",
            user_records.summary()
        );
    }
}
