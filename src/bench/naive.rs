//! The naive baseline of `sluice bench paths`: what a new user would write first with the
//! official SDK — log in, then for each UTC day page the synchronous details query with
//! pageSize 100, one request at a time, until a page comes back short. The SDK retries a 429
//! after its Retry-After (facts §6), so this loop does too; any other error ends that day (a
//! script would get an ApiException) and is reported.
//!
//! It runs in the bench process against the same simulator as the engine's paths, so the
//! simulator's counters measure both the same way.
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde_json::{json, Value};

use super::harness::HarnessError;

/// The SDK script's page size.
pub const NAIVE_PAGE_SIZE: usize = 100;

/// Longest a 429 makes the loop wait (a Retry-After above it is clamped).
const MAX_RETRY_AFTER_SECS: u64 = 120;

/// The loop's stopping rule: a day is done when a page holds fewer than `page_size`
/// conversations (an empty page included).
pub fn day_done(page_len: usize, page_size: usize) -> bool {
    page_len < page_size
}

/// What the naive loop did.
#[derive(Clone, Debug, Default)]
pub struct NaiveReport {
    /// Conversation ids received, in order (repeats included).
    pub conversation_ids: Vec<String>,
    pub requests: u64,
    pub answered_429: u64,
    /// Errors that ended a day early (e.g. past the paging cap).
    pub errors: Vec<String>,
    pub wall: Duration,
}

/// Runs the loop over `[from, to)` against `base_url` with the client's credentials.
pub fn run(
    base_url: &str,
    client_id: &str,
    secret: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<NaiveReport, HarnessError> {
    let base = base_url.trim_end_matches('/').to_owned();
    let (id, secret) = (client_id.to_owned(), secret.to_owned());
    actix_rt::System::new().block_on(async move {
        let started = Instant::now();
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(120))
            .finish();
        let token = login(&client, &base, &id, &secret).await?;
        let mut report = NaiveReport::default();
        let url = format!("{base}/api/v2/analytics/conversations/details/query");
        let mut day = from;
        while day < to {
            let next = (day + ChronoDuration::days(1)).min(to);
            let interval = format!("{}/{}", rfc(day), rfc(next));
            let mut page = 1u32;
            loop {
                let body = json!({
                    "interval": interval,
                    "order": "asc",
                    "orderBy": "conversationStart",
                    "paging": {"pageSize": NAIVE_PAGE_SIZE, "pageNumber": page},
                });
                let (status, retry_after, v) = post(&client, &url, &token, &body).await?;
                report.requests += 1;
                if status == 429 {
                    report.answered_429 += 1;
                    let secs = retry_after.unwrap_or(1).clamp(1, MAX_RETRY_AFTER_SECS);
                    actix_rt::time::sleep(Duration::from_secs(secs)).await;
                    continue;
                }
                if status != 200 {
                    report.errors.push(format!(
                        "{interval} page {page}: HTTP {status} {}",
                        v.get("message").and_then(Value::as_str).unwrap_or("")
                    ));
                    break;
                }
                let items = v
                    .get("conversations")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                report.conversation_ids.extend(
                    items
                        .iter()
                        .filter_map(|c| c.get("conversationId").and_then(Value::as_str))
                        .map(str::to_owned),
                );
                if day_done(items.len(), NAIVE_PAGE_SIZE) {
                    break;
                }
                page += 1;
            }
            day = next;
        }
        report.wall = started.elapsed();
        Ok(report)
    })
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn http_err(url: &str, message: impl Into<String>) -> HarnessError {
    HarnessError::Http {
        method: "POST",
        url: url.to_owned(),
        message: message.into(),
    }
}

async fn login(
    client: &awc::Client,
    base: &str,
    id: &str,
    secret: &str,
) -> Result<String, HarnessError> {
    let url = format!("{base}/oauth/token");
    let mut resp = client
        .post(&url)
        .basic_auth(id, secret)
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .send_body("grant_type=client_credentials")
        .await
        .map_err(|e| http_err(&url, e.to_string()))?;
    let v: Value = resp
        .json()
        .await
        .map_err(|e| http_err(&url, e.to_string()))?;
    v.get("access_token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| http_err(&url, format!("no access_token (HTTP {})", resp.status())))
}

/// One query request: status, Retry-After (seconds) and the JSON body (`null` if none).
async fn post(
    client: &awc::Client,
    url: &str,
    token: &str,
    body: &Value,
) -> Result<(u16, Option<u64>, Value), HarnessError> {
    let mut resp = client
        .post(url)
        .bearer_auth(token)
        .send_json(body)
        .await
        .map_err(|e| http_err(url, e.to_string()))?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("Retry-After")
        .and_then(|h| h.to_str().ok())
        .and_then(|s| s.trim().parse().ok());
    let bytes = resp
        .body()
        .limit(64 << 20)
        .await
        .map_err(|e| http_err(url, e.to_string()))?;
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, retry_after, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_ends_on_the_first_short_page() {
        assert!(!day_done(100, 100));
        assert!(day_done(99, 100));
        assert!(day_done(0, 100));
        // A day of exactly 200 conversations costs a third, empty page.
        let pages = [100usize, 100, 0];
        let read = pages
            .iter()
            .position(|&n| day_done(n, NAIVE_PAGE_SIZE))
            .map(|i| i + 1);
        assert_eq!(read, Some(3));
    }
}
