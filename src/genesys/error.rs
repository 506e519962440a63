//! Every outcome of an API attempt is classified here, in one place, into success or an
//! [`ApiError`] that says what the caller must do: nothing (the client retries transient
//! failures itself), split the request ([`ApiError::TooLarge`]), wait (rate limited), or fail
//! the partition (a permanent client error, with the API's message).

use std::time::Duration;

use crate::actors::rate_limiter::LimiterGone;
use crate::genesys::model::ErrorBody;
use crate::genesys::secret::CredentialsError;
use crate::rate::{Feedback, Outcome, RateHeaders, MAX_SERVER_WAIT};

/// How many bytes of an unparsable body an error keeps.
pub const SNIPPET_BYTES: usize = 200;

/// Why an API call did not produce its result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// HTTP 429. `quota_breach`: Retry-After above the quota-breach threshold (180 s), i.e. a
    /// daily/org quota is exhausted; the limiter waits it out, the caller should report it.
    #[error("rate limited (429){}{}", retry_after.map(|d| format!(", retry after {} s", d.as_secs())).unwrap_or_default(), if *quota_breach { ": QUOTA BREACH" } else { "" })]
    RateLimited {
        retry_after: Option<Duration>,
        quota_breach: bool,
    },
    /// HTTP 401 even after one token renewal (or the login service refused the credentials).
    #[error("unauthorized: {message}")]
    Unauthorized { message: String },
    /// The request asks for too much: result too large, paging cap reached, interval too
    /// long, or body over the size limit. The caller must split it.
    #[error("request too large (HTTP {status}, {code}): {message}; split the interval")]
    TooLarge {
        status: u16,
        code: String,
        message: String,
    },
    /// 5xx / 408: transient, retried with backoff.
    #[error("server error (HTTP {status}){}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    ServerError { status: u16, message: String },
    /// No HTTP answer: connect error, timeout, broken connection. Transient.
    #[error("transport error: {0}")]
    Transport(String),
    /// A permanent client error (400, 403, 404, …): fail the partition with this message.
    #[error("HTTP {status} {code}: {message}")]
    Client {
        status: u16,
        code: String,
        message: String,
    },
    /// The body did not parse; it is re-requested, never half-used.
    #[error("malformed response (HTTP {status}): {message}; body starts with {snippet:?}")]
    Malformed {
        status: u16,
        message: String,
        snippet: String,
    },
    /// Transient failures went on for the whole retry budget.
    #[error("gave up after {attempts} attempts; last error: {last}")]
    RetriesExhausted { attempts: u32, last: Box<ApiError> },
    /// Invalid client settings.
    #[error("invalid setting `{setting}`: {message}")]
    Settings { setting: String, message: String },
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    LimiterGone(#[from] LimiterGone),
}

impl ApiError {
    /// Transient: retried by the client (5xx, transport, malformed body).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::ServerError { .. } | ApiError::Transport(_) | ApiError::Malformed { .. }
        )
    }

    /// The caller must split the request into smaller ones.
    pub fn must_split(&self) -> bool {
        matches!(self, ApiError::TooLarge { .. })
    }

    pub fn is_quota_breach(&self) -> bool {
        matches!(
            self,
            ApiError::RateLimited {
                quota_breach: true,
                ..
            }
        )
    }

    /// What the rate limiter should learn from this outcome.
    pub fn outcome(&self) -> Outcome {
        match self {
            ApiError::RateLimited { .. } => Outcome::RateLimited,
            ApiError::ServerError { .. } | ApiError::Malformed { .. } => Outcome::ServerError,
            ApiError::Transport(_) => Outcome::Transport,
            _ => Outcome::Answered,
        }
    }
}

/// The first bytes of a body, as text, for error messages.
pub fn snippet(body: &[u8]) -> String {
    let cut = &body[..body.len().min(SNIPPET_BYTES)];
    String::from_utf8_lossy(cut).into_owned()
}

/// The response parts classification looks at.
#[derive(Debug, Clone, Default)]
pub struct ResponseHead<'a> {
    pub status: u16,
    pub retry_after: Option<&'a str>,
    pub headers: RateHeaders,
}

/// Parses a Retry-After value: delta seconds (integer or decimal) or an HTTP date. Hostile
/// values never panic: a negative or past value is zero, anything over [`MAX_SERVER_WAIT`]
/// (`1e20`, `99999999999999999999`, a date in the year 9999) is clamped to it.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        // All digits but too long for u64 is still a (huge) number of seconds.
        let secs = v.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_SERVER_WAIT));
    }
    if let Ok(s) = v.parse::<f64>() {
        if s.is_nan() {
            return None;
        }
        return Some(clamp_secs_f64(s));
    }
    chrono::DateTime::parse_from_rfc2822(v).ok().map(|t| {
        (t.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(MAX_SERVER_WAIT)
    })
}

/// Seconds as a float into a wait in `0 ..= MAX_SERVER_WAIT` (negative → 0, ∞ → the cap).
fn clamp_secs_f64(s: f64) -> Duration {
    if s.is_nan() || s <= 0.0 {
        return Duration::ZERO;
    }
    if s >= MAX_SERVER_WAIT.as_secs_f64() {
        return MAX_SERVER_WAIT;
    }
    Duration::from_secs_f64(s)
}

/// Legacy `inin-ratelimit-*` headers (`allowed`, `count`, `reset` as raw header text) into
/// [`RateHeaders`]: values that are not non-negative integers are ignored, counts saturate at
/// `u32::MAX` and the reset is clamped to [`MAX_SERVER_WAIT`].
pub fn parse_rate_headers(
    allowed: Option<&str>,
    count: Option<&str>,
    reset: Option<&str>,
) -> RateHeaders {
    let num = |v: Option<&str>| v.and_then(|v| v.trim().parse::<u64>().ok());
    RateHeaders {
        allowed: num(allowed).map(|v| v.min(u64::from(u32::MAX)) as u32),
        count: num(count).map(|v| v.min(u64::from(u32::MAX)) as u32),
        reset: num(reset).map(|v| Duration::from_secs(v).min(MAX_SERVER_WAIT)),
    }
}

/// `… Retry the request in [17] seconds` in a 429 message.
fn retry_after_from_message(message: &str) -> Option<Duration> {
    let start = message.find('[')?;
    let end = message[start..].find(']')? + start;
    parse_retry_after(&message[start + 1..end])
}

fn contains_any(haystack: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| haystack.contains(n))
}

/// True when a 400 answer says the request asks for too much (the caller must split).
pub fn is_too_large_400(code: &str, message: &str) -> bool {
    let code = code.to_ascii_lowercase();
    let m = message.to_ascii_lowercase();
    if contains_any(&code, &["too.large", "too_large", "toolarge"]) {
        return true;
    }
    if contains_any(
        &m,
        &["too large", "entity too large", "over the size limit"],
    ) {
        return true;
    }
    let interval_too_long = m.contains("interval")
        && contains_any(
            &m,
            &[
                "too long",
                "exceed",
                "maximum",
                "max ",
                "greater than",
                "longer than",
                "more than",
                "span",
            ],
        );
    let paging_cap = contains_any(
        &m,
        &[
            "paging",
            "pagenumber",
            "page number",
            "deep",
            "reachable",
            "result window",
            "10000",
            "10,000",
        ],
    ) && contains_any(
        &m,
        &["exceed", "limit", "maximum", "max", "cap", "beyond", "deep"],
    );
    interval_too_long || paging_cap
}

/// Classifies an HTTP answer. `Ok(())` means the body should hold the expected payload.
/// Also returns what the rate limiter must be told.
pub fn classify(head: &ResponseHead<'_>, body: &[u8]) -> (Result<(), ApiError>, Feedback) {
    let status = head.status;
    let mut feedback = Feedback {
        outcome: Some(Outcome::Answered),
        retry_after: None,
        limit: None,
        headers: head.headers,
    };
    if (200..300).contains(&status) {
        return (Ok(()), feedback);
    }
    let error_body: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let code = error_body
        .as_ref()
        .map(|b| b.code.clone())
        .unwrap_or_default();
    let message = error_body
        .as_ref()
        .map(|b| b.message.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| snippet(body));
    let err = match status {
        429 => {
            let retry_after = head
                .retry_after
                .and_then(parse_retry_after)
                .or_else(|| retry_after_from_message(&message));
            feedback.outcome = Some(Outcome::RateLimited);
            feedback.retry_after = retry_after;
            feedback.limit = error_body
                .as_ref()
                .and_then(|b| b.limit.as_ref())
                .map(|l| (l.key.clone(), l.value));
            ApiError::RateLimited {
                retry_after,
                // Set by the client from its threshold (see `with_quota_threshold`).
                quota_breach: false,
            }
        }
        401 => ApiError::Unauthorized { message },
        413 => ApiError::TooLarge {
            status,
            code,
            message,
        },
        400 if is_too_large_400(&code, &message) => ApiError::TooLarge {
            status,
            code,
            message,
        },
        408 | 500 | 502..=599 => {
            feedback.outcome = Some(Outcome::ServerError);
            ApiError::ServerError { status, message }
        }
        _ => ApiError::Client {
            status,
            code,
            message,
        },
    };
    (Err(err), feedback)
}

/// Marks a 429 as a quota breach when its Retry-After is above `threshold`.
pub fn with_quota_threshold(err: ApiError, threshold: Duration) -> ApiError {
    match err {
        ApiError::RateLimited { retry_after, .. } => ApiError::RateLimited {
            retry_after,
            quota_breach: retry_after.is_some_and(|d| d > threshold),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16) -> ResponseHead<'static> {
        ResponseHead {
            status,
            ..Default::default()
        }
    }

    #[test]
    fn success_and_statuses_classify() {
        assert!(classify(&head(200), b"{}").0.is_ok());
        assert!(classify(&head(202), b"{}").0.is_ok());
        let (e, f) = classify(&head(503), b"upstream down");
        assert!(matches!(e, Err(ApiError::ServerError { status: 503, .. })));
        assert_eq!(f.outcome, Some(Outcome::ServerError));
        assert!(e.unwrap_err().is_transient());
        let (e, _) = classify(
            &head(401),
            br#"{"message":"Invalid login credentials.","code":"bad.credentials","status":401}"#,
        );
        assert!(
            matches!(e, Err(ApiError::Unauthorized { message }) if message == "Invalid login credentials.")
        );
        let (e, f) = classify(
            &head(403),
            br#"{"message":"Missing permission analytics:conversationDetail:view","code":"missing.permissions","status":403}"#,
        );
        let e = e.unwrap_err();
        assert!(
            matches!(&e, ApiError::Client { status: 403, code, .. } if code == "missing.permissions")
        );
        assert!(e.to_string().contains("analytics:conversationDetail:view"));
        assert!(!e.is_transient());
        assert_eq!(f.outcome, Some(Outcome::Answered));
        let (e, _) = classify(&head(413), b"");
        assert!(e.unwrap_err().must_split());
    }

    #[test]
    fn rate_limited_reads_retry_after_header_body_and_limit() {
        let body = br#"{"message":"Rate limit exceeded the maximum. Retry the request in [17] seconds","code":"too.many.requests.retry.after","status":429,
            "limit":{"key":"client.credentials.token.rate.per.minute","namespace":"analytics","value":300}}"#;
        let h = ResponseHead {
            status: 429,
            retry_after: Some("9"),
            ..Default::default()
        };
        let (e, f) = classify(&h, body);
        assert_eq!(
            e.unwrap_err(),
            ApiError::RateLimited {
                retry_after: Some(Duration::from_secs(9)),
                quota_breach: false
            }
        );
        assert_eq!(f.retry_after, Some(Duration::from_secs(9)));
        assert_eq!(f.outcome, Some(Outcome::RateLimited));
        assert_eq!(
            f.limit,
            Some(("client.credentials.token.rate.per.minute".to_owned(), 300))
        );
        // No header: the message's [17] is used.
        let (e, _) = classify(&head(429), body);
        let e = with_quota_threshold(e.unwrap_err(), Duration::from_secs(180));
        assert_eq!(
            e,
            ApiError::RateLimited {
                retry_after: Some(Duration::from_secs(17)),
                quota_breach: false
            }
        );
        let h = ResponseHead {
            status: 429,
            retry_after: Some("3600"),
            ..Default::default()
        };
        let e = with_quota_threshold(classify(&h, b"").0.unwrap_err(), Duration::from_secs(180));
        assert!(e.is_quota_breach());
    }

    #[test]
    fn split_worthy_400s_are_recognised() {
        for (code, msg) in [
            (
                "bad.request",
                "Max interval of 7 days exceeded for queries without filters",
            ),
            ("bad.request", "The interval is too long"),
            (
                "bad.request",
                "Paging limit exceeded: pageNumber x pageSize may not exceed 10000",
            ),
            (
                "response.entity.too.large",
                "The response is over the size limit",
            ),
            ("bad.request", "Cannot page beyond 10,000 results"),
            // The simulator's wording.
            ("bad.request", "Interval 2024-03-01T00:00:00Z/2024-03-10T00:00:00Z is longer than the maximum of 7 days for a query without filters (31 days with filters)"),
            ("bad.request", "Paging too deep: pageNumber x pageSize = 10100 exceeds the maximum of 10000 results; narrow the interval"),
        ] {
            let body = format!(r#"{{"message":"{msg}","code":"{code}","status":400}}"#);
            let e = classify(&head(400), body.as_bytes()).0.unwrap_err();
            assert!(e.must_split(), "{msg}: {e:?}");
        }
        for msg in [
            "pageSize must be at most 100",
            "Unable to parse the request body",
            "Invalid interval format",
            "paging.pageSize must be between 1 and 100, got 200",
            "paging.pageNumber must be at least 1, got 0",
            "Invalid interval: interval \"x\" is not two ISO-8601 instants joined by '/'",
        ] {
            let body = format!(r#"{{"message":"{msg}","code":"bad.request","status":400}}"#);
            let e = classify(&head(400), body.as_bytes()).0.unwrap_err();
            assert!(
                matches!(e, ApiError::Client { status: 400, .. }),
                "{msg}: {e:?}"
            );
        }
    }

    #[test]
    fn retry_after_formats() {
        assert_eq!(parse_retry_after("5"), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_retry_after(" 1.5 "),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn hostile_retry_after_values_are_clamped_to_a_day() {
        let day = MAX_SERVER_WAIT;
        assert_eq!(parse_retry_after("1e20"), Some(day));
        assert_eq!(parse_retry_after("99999999999999999999999"), Some(day));
        assert_eq!(parse_retry_after("inf"), Some(day));
        assert_eq!(parse_retry_after("-5"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-1e300"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("NaN"), None);
        assert_eq!(parse_retry_after(""), None);
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(day)
        );
        assert_eq!(parse_retry_after("86401"), Some(day));
        let h = parse_rate_headers(
            Some("99999999999"),
            Some("-1"),
            Some("18446744073709551615"),
        );
        assert_eq!(h.allowed, Some(u32::MAX));
        assert_eq!(h.count, None);
        assert_eq!(h.reset, Some(day));
        // A 429 over a day is a quota breach, waited out for a day.
        let h = ResponseHead {
            status: 429,
            retry_after: Some("1e20"),
            ..Default::default()
        };
        let (e, f) = classify(&h, b"");
        assert_eq!(f.retry_after, Some(day));
        assert!(with_quota_threshold(e.unwrap_err(), Duration::from_secs(180)).is_quota_breach());
    }

    mod hostile_input {
        use super::*;
        use proptest::prelude::*;

        fn retry_after_like() -> impl Strategy<Value = String> {
            prop_oneof![
                "\\PC{0,40}",
                "-?[0-9]{1,30}(\\.[0-9]{0,10})?([eE][+-]?[0-9]{1,4})?",
                "(Mon|Fri), [0-9]{1,2} (Jan|Dec) [0-9]{1,5} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT",
            ]
        }

        proptest! {
            #[test]
            fn retry_after_never_panics_and_stays_within_a_day(v in retry_after_like()) {
                if let Some(d) = parse_retry_after(&v) {
                    prop_assert!(d <= MAX_SERVER_WAIT);
                }
            }

            #[test]
            fn rate_headers_never_panic(a in "\\PC{0,24}", c in "-?[0-9]{0,25}", r in retry_after_like()) {
                let h = parse_rate_headers(Some(&a), Some(&c), Some(&r));
                prop_assert!(h.reset.is_none_or(|d| d <= MAX_SERVER_WAIT));
            }

            #[test]
            fn any_error_answer_classifies(
                status in 100u16..600,
                body in "\\PC{0,200}",
                message in "\\PC{0,60}",
                key in "\\PC{0,40}",
                value in proptest::num::i64::ANY,
                retry in retry_after_like(),
            ) {
                // Free text, and a well-formed 429 body carrying hostile values.
                let json = serde_json::json!({
                    "message": message, "code": "too.many.requests", "status": 429,
                    "limit": {"key": key, "value": value},
                }).to_string();
                for b in [body.as_bytes(), json.as_bytes()] {
                    let head = ResponseHead { status, retry_after: Some(&retry), ..Default::default() };
                    let (result, feedback) = classify(&head, b);
                    prop_assert_eq!(result.is_ok(), (200..300).contains(&status));
                    prop_assert!(feedback.retry_after.is_none_or(|d| d <= MAX_SERVER_WAIT));
                    let _ = result.map_err(|e| e.to_string());
                }
                let _ = crate::rate::limiter::limit_per_window(&key, value, 60);
                let _ = is_too_large_400(&key, &message);
            }
        }
    }
}
