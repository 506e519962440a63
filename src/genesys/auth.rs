//! The OAuth access-token cache. One token is shared by every request of a client; it is
//! renewed ahead of expiry (single flight: concurrent callers wait for the one renewal), and a
//! 401 invalidates exactly the token that was refused so that one renewal follows, not many.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::error::ApiError;
use super::model::TokenResponse;
use super::secret::Secret;

/// A token handed to a request, with the generation to name it in [`TokenCache::invalidate`].
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub value: Secret,
    pub generation: u64,
}

#[derive(Debug)]
struct Cached {
    token: AccessToken,
    renew_at: Instant,
    expires_at: Instant,
}

/// Cache of one client's access token.
#[derive(Debug)]
pub struct TokenCache {
    renew_ahead: Duration,
    state: Mutex<(Option<Cached>, u64)>,
}

impl TokenCache {
    /// `renew_ahead`: renew this long before expiry (at most 10 % of the token's lifetime).
    pub fn new(renew_ahead: Duration) -> Self {
        TokenCache {
            renew_ahead,
            state: Mutex::new((None, 0)),
        }
    }

    /// The cached token, or a new one from `fetch` when none is cached or renewal is due. If
    /// renewal fails while the old token is still valid, the old one is used.
    pub async fn get<F, Fut>(&self, fetch: F) -> Result<AccessToken, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<TokenResponse, ApiError>>,
    {
        let mut guard = self.state.lock().await;
        let now = Instant::now();
        if let Some(c) = &guard.0 {
            if now < c.renew_at {
                return Ok(c.token.clone());
            }
        }
        match fetch().await {
            Ok(resp) => {
                let lifetime = token_lifetime(resp.expires_in);
                let ahead = self.renew_ahead.min(lifetime / 10);
                let now = Instant::now();
                guard.1 += 1;
                let token = AccessToken {
                    value: Secret::new(resp.access_token),
                    generation: guard.1,
                };
                guard.0 = Some(Cached {
                    token: token.clone(),
                    renew_at: now.checked_add(lifetime - ahead).unwrap_or(now),
                    expires_at: now.checked_add(lifetime).unwrap_or(now),
                });
                Ok(token)
            }
            Err(e) => match &guard.0 {
                Some(c)
                    if Instant::now() < c.expires_at
                        && !matches!(e, ApiError::Unauthorized { .. }) =>
                {
                    log::warn!(
                        "token renewal failed ({e}); using the current token until it expires"
                    );
                    Ok(c.token.clone())
                }
                _ => Err(e),
            },
        }
    }

    /// Forgets the token of `generation` (refused with 401); a newer one is kept.
    pub async fn invalidate(&self, generation: u64) {
        let mut guard = self.state.lock().await;
        if guard
            .0
            .as_ref()
            .is_some_and(|c| c.token.generation == generation)
        {
            guard.0 = None;
        }
    }
}

/// The longest token lifetime believed, whatever `expires_in` says (Genesys issues 24 h).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(7 * 86_400);

/// A token answer's `expires_in` (seconds, server input) as a lifetime in
/// `1 s ..= MAX_TOKEN_LIFETIME`: zero, negative or absurd values cannot panic the cache.
pub fn token_lifetime(expires_in: i64) -> Duration {
    Duration::from_secs(expires_in.clamp(1, MAX_TOKEN_LIFETIME.as_secs() as i64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn token(n: u32, expires_in: i64) -> TokenResponse {
        TokenResponse {
            access_token: format!("tok-{n}"),
            token_type: Some("bearer".into()),
            expires_in,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn token_is_cached_renewed_ahead_of_expiry_and_invalidated_once() {
        let cache = TokenCache::new(Duration::from_secs(300));
        let fetches = AtomicU32::new(0);
        let fetch = || async {
            let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(token(n, 86_400))
        };
        let a = cache.get(fetch).await.unwrap();
        let b = cache.get(fetch).await.unwrap();
        assert_eq!(a.value.expose(), "tok-1");
        assert_eq!(b.generation, a.generation);
        assert_eq!(fetches.load(Ordering::SeqCst), 1);

        // Renewed 300 s ahead of the 24 h expiry, not later.
        tokio::time::advance(Duration::from_secs(86_400 - 301)).await;
        assert_eq!(cache.get(fetch).await.unwrap().value.expose(), "tok-1");
        tokio::time::advance(Duration::from_secs(2)).await;
        let c = cache.get(fetch).await.unwrap();
        assert_eq!(c.value.expose(), "tok-2");

        // Two requests refused with the same token: one renewal.
        cache.invalidate(c.generation).await;
        let d = cache.get(fetch).await.unwrap();
        cache.invalidate(c.generation).await;
        let e = cache.get(fetch).await.unwrap();
        assert_eq!(d.value.expose(), "tok-3");
        assert_eq!(e.value.expose(), "tok-3");
        assert_eq!(fetches.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn short_lived_tokens_renew_at_ninety_percent_and_failures_keep_a_valid_token() {
        let cache = TokenCache::new(Duration::from_secs(300));
        let t = cache.get(|| async { Ok(token(1, 600)) }).await.unwrap();
        tokio::time::advance(Duration::from_secs(541)).await;
        let kept = cache
            .get(|| async { Err(ApiError::Transport("down".into())) })
            .await
            .unwrap();
        assert_eq!(kept.generation, t.generation);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(cache
            .get(|| async { Err(ApiError::Transport("down".into())) })
            .await
            .is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn absurd_expires_in_values_are_clamped_not_panics() {
        for expires_in in [i64::MIN, -1, 0, i64::MAX] {
            let cache = TokenCache::new(Duration::from_secs(300));
            let t = cache.get(|| async { Ok(token(1, expires_in)) }).await;
            assert!(t.is_ok(), "{expires_in}");
        }
        assert_eq!(token_lifetime(i64::MAX), MAX_TOKEN_LIFETIME);
        assert_eq!(token_lifetime(-5), Duration::from_secs(1));
        assert_eq!(token_lifetime(86_400), Duration::from_secs(86_400));
    }

    proptest::proptest! {
        #[test]
        fn any_token_answer_parses_or_errs_and_its_lifetime_is_bounded(
            body in "\\PC{0,80}",
            expires_in in proptest::num::i64::ANY,
        ) {
            let _ = serde_json::from_str::<TokenResponse>(&body);
            let json = format!(r#"{{"access_token":"x","expires_in":{expires_in}}}"#);
            let parsed: TokenResponse = serde_json::from_str(&json).unwrap();
            let life = token_lifetime(parsed.expires_in);
            proptest::prop_assert!(life >= Duration::from_secs(1) && life <= MAX_TOKEN_LIFETIME);
        }
    }
}
