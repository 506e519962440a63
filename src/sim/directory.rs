//! The simulated org's directory: the users, queues, wrap-up codes and divisions its
//! conversations name, served as the platform API's listings (`pageSize` default 25, at most
//! [`MAX_PAGE_SIZE`], `pageNumber` from 1; `entities`, `pageSize`, `pageNumber`, `total`,
//! `pageCount`, `firstUri`, `selfUri`, `lastUri`, and `nextUri` unless on the last page).
//!
//! It is consistent with [`Dataset`]: every queue, agent, wrap-up code and division a
//! conversation carries is listed. Some users are inactive or deleted (`GET /api/v2/users`
//! lists only active ones unless `state` says otherwise; deleted users stay listed with
//! `state=any`, as history still names them). Queue 0 is renamed to [`RENAMED_QUEUE`] at a
//! known simulated time ([`changes_at`]), so tests can watch a refresh follow it.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::data::{Dataset, DIVISION_ID};

/// Largest `pageSize` a listing accepts (400 above).
pub const MAX_PAGE_SIZE: u32 = 500;
/// `pageSize` when none is given.
pub const DEFAULT_PAGE_SIZE: u32 = 25;
/// Queue 0's name from [`changes_at`] on (before: `Queue 1`).
pub const RENAMED_QUEUE: &str = "Priority Care";
/// A second division some queues belong to.
pub const SUPPORT_DIVISION_ID: &str = "9b1f3c2d-7e6a-4d58-8c3b-2a9e0f4d6b71";

const WRAPUP_NAMES: [&str; 10] = [
    "Resolved",
    "Callback requested",
    "Escalated",
    "Billing question",
    "Order status",
    "Technical issue",
    "Complaint",
    "Sale",
    "Wrong number",
    "Follow-up needed",
];

/// A listing the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimListing {
    Users,
    Queues,
    WrapupCodes,
    Divisions,
}

impl SimListing {
    pub fn path(self) -> &'static str {
        match self {
            SimListing::Users => "/api/v2/users",
            SimListing::Queues => "/api/v2/routing/queues",
            SimListing::WrapupCodes => "/api/v2/routing/wrapupcodes",
            SimListing::Divisions => "/api/v2/authorization/divisions",
        }
    }

    pub fn endpoint(self) -> &'static str {
        match self {
            SimListing::Users => "users.list",
            SimListing::Queues => "routing.queues.list",
            SimListing::WrapupCodes => "routing.wrapupcodes.list",
            SimListing::Divisions => "authorization.divisions.list",
        }
    }
}

/// When queue 0 is renamed: a day after history starts.
pub fn changes_at(ds: &Dataset) -> DateTime<Utc> {
    ds.history_start() + Duration::days(1)
}

/// A user's state: every 8th (from the 6th) is inactive, every 8th (from the 7th) deleted.
pub fn user_state(index: usize) -> &'static str {
    match index % 8 {
        5 => "inactive",
        6 => "deleted",
        _ => "active",
    }
}

/// The first deleted user.
pub fn deleted_user(ds: &Dataset) -> Option<&str> {
    ds.users()
        .iter()
        .enumerate()
        .find(|(i, _)| user_state(*i) == "deleted")
        .map(|(_, u)| u.id.as_str())
}

/// The name queue `index` has at `now`.
pub fn queue_name(ds: &Dataset, index: usize, now: DateTime<Utc>) -> String {
    if index == 0 && now >= changes_at(ds) {
        RENAMED_QUEUE.to_string()
    } else {
        format!("Queue {}", index + 1)
    }
}

fn division_ref(id: &str) -> Value {
    let name = if id == DIVISION_ID { "Home" } else { "Support" };
    json!({ "id": id, "name": name, "selfUri": format!("/api/v2/authorization/divisions/{id}") })
}

/// Every entity of `listing` at `now` (users: those whose state matches `state`).
pub fn entities(ds: &Dataset, listing: SimListing, state: &str, now: DateTime<Utc>) -> Vec<Value> {
    match listing {
        SimListing::Divisions => [DIVISION_ID, SUPPORT_DIVISION_ID]
            .iter()
            .map(|id| {
                let mut d = division_ref(id);
                d["homeDivision"] = json!(*id == DIVISION_ID);
                d
            })
            .collect(),
        SimListing::Queues => ds
            .queue_ids()
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let division = if i % 3 == 2 {
                    SUPPORT_DIVISION_ID
                } else {
                    DIVISION_ID
                };
                json!({
                    "id": id,
                    "name": queue_name(ds, i, now),
                    "division": division_ref(division),
                    "mediaSettings": {},
                    "selfUri": format!("/api/v2/routing/queues/{id}"),
                })
            })
            .collect(),
        SimListing::WrapupCodes => ds
            .wrapup_ids()
            .iter()
            .enumerate()
            .map(|(i, id)| {
                json!({
                    "id": id,
                    "name": WRAPUP_NAMES[i % WRAPUP_NAMES.len()],
                    "division": division_ref(DIVISION_ID),
                    "selfUri": format!("/api/v2/routing/wrapupcodes/{id}"),
                })
            })
            .collect(),
        SimListing::Users => ds
            .users()
            .iter()
            .enumerate()
            .filter(|(i, _)| state == "any" || state == user_state(*i))
            .map(|(i, u)| {
                let email = format!(
                    "{}.{i}@example.com",
                    u.name.to_lowercase().replace(' ', ".")
                );
                json!({
                    "id": u.id,
                    "name": u.name,
                    "email": email,
                    "state": user_state(i),
                    "division": division_ref(DIVISION_ID),
                    "username": email,
                    "version": 1,
                    "selfUri": format!("/api/v2/users/{}", u.id),
                })
            })
            .collect(),
    }
}

/// Paging parameters of a listing request.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListingQuery {
    pub page_size: Option<String>,
    pub page_number: Option<String>,
    pub state: Option<String>,
}

fn number(name: &str, v: Option<&str>, default: u32) -> Result<u32, String> {
    match v {
        None => Ok(default),
        Some(s) => s
            .trim()
            .parse::<u32>()
            .map_err(|_| format!("{name} must be a positive integer, got {s:?}")),
    }
}

/// One page of `listing` as the API answers it, or the message of a 400.
pub fn page(
    ds: &Dataset,
    listing: SimListing,
    q: &ListingQuery,
    now: DateTime<Utc>,
) -> Result<Value, String> {
    let size = number("pageSize", q.page_size.as_deref(), DEFAULT_PAGE_SIZE)?;
    let number_ = number("pageNumber", q.page_number.as_deref(), 1)?;
    if size == 0 || size > MAX_PAGE_SIZE {
        return Err(format!("pageSize must be 1 to {MAX_PAGE_SIZE}, got {size}"));
    }
    if number_ == 0 {
        return Err("pageNumber starts at 1".into());
    }
    let state = q.state.as_deref().unwrap_or("active");
    if listing == SimListing::Users && !["active", "inactive", "deleted", "any"].contains(&state) {
        return Err(format!(
            "state must be active, inactive, deleted or any, got {state:?}"
        ));
    }
    let all = entities(ds, listing, state, now);
    let total = all.len();
    let count = total.div_ceil(size as usize).max(1);
    let start = (number_ as usize - 1).saturating_mul(size as usize);
    let items: Vec<Value> = all.into_iter().skip(start).take(size as usize).collect();
    let uri = |n: usize| {
        let extra = if listing == SimListing::Users {
            format!("&state={state}")
        } else {
            String::new()
        };
        format!("{}?pageSize={size}&pageNumber={n}{extra}", listing.path())
    };
    let mut body = json!({
        "entities": items,
        "pageSize": size,
        "pageNumber": number_,
        "total": total,
        "pageCount": count,
        "firstUri": uri(1),
        "selfUri": uri(number_ as usize),
        "lastUri": uri(count),
    });
    if (number_ as usize) < count {
        body["nextUri"] = json!(uri(number_ as usize + 1));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::config::SimConfig;
    use chrono::TimeZone;

    fn ds() -> Dataset {
        let now = Utc.with_ymd_and_hms(2024, 3, 3, 0, 0, 0).unwrap();
        Dataset::new(&SimConfig {
            users: 20,
            days: 2,
            per_day: 100,
            now: Some(now),
            ..SimConfig::default()
        })
    }

    #[test]
    fn listings_page_to_the_end_and_reject_oversized_pages() {
        let ds = ds();
        let now = ds.history_start();
        let q = |size: &str, n: &str| ListingQuery {
            page_size: Some(size.into()),
            page_number: Some(n.into()),
            state: Some("any".into()),
        };
        let p1 = page(&ds, SimListing::Users, &q("8", "1"), now).unwrap();
        assert_eq!(p1["total"], json!(20));
        assert_eq!(p1["pageCount"], json!(3));
        assert!(p1["nextUri"].as_str().unwrap().contains("pageNumber=2"));
        let p3 = page(&ds, SimListing::Users, &q("8", "3"), now).unwrap();
        assert_eq!(p3["entities"].as_array().unwrap().len(), 4);
        assert!(p3.get("nextUri").is_none());
        assert!(page(&ds, SimListing::Users, &q("501", "1"), now).is_err());
        // Default state: active users only.
        let active = page(&ds, SimListing::Users, &ListingQuery::default(), now).unwrap();
        assert!(active["total"].as_u64().unwrap() < 20);
    }

    #[test]
    fn a_queue_is_renamed_at_the_known_time_and_deleted_users_stay_listed() {
        let ds = ds();
        let before = changes_at(&ds) - Duration::seconds(1);
        let after = changes_at(&ds);
        assert_eq!(queue_name(&ds, 0, before), "Queue 1");
        assert_eq!(queue_name(&ds, 0, after), RENAMED_QUEUE);
        let deleted = deleted_user(&ds).unwrap();
        let listed = |state| {
            entities(&ds, SimListing::Users, state, after)
                .iter()
                .any(|u| u["id"] == json!(deleted))
        };
        assert!(listed("any") && listed("deleted"));
        assert!(!listed("active"));
    }
}
