//! OAuth client-credentials login and bearer-token checks.
//!
//! `POST /oauth/token` accepts the client in HTTP Basic auth or as `client_id`/`client_secret`
//! form fields (clients use both), with `grant_type=client_credentials`. Tokens live
//! `token_ttl` of real time; an unknown or expired token gets 401 on every API call.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use rand::RngCore;

use super::config::Clients;

/// Why a login or an API call was refused (the server renders the Genesys body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// 400: grant type missing or not `client_credentials`, or no client given.
    BadRequest(String),
    /// 401 on login: unknown client or wrong secret.
    BadCredentials,
    /// 401 on an API call: no bearer token.
    Missing,
    /// 401 on an API call: unknown or expired token.
    Invalid,
}

#[derive(Debug)]
struct TokenInfo {
    client_id: String,
    expires: Instant,
}

/// Issued tokens. Tokens never appear in Debug output.
pub struct Auth {
    clients: Clients,
    ttl: Duration,
    tokens: Mutex<HashMap<String, TokenInfo>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("clients", &self.clients)
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// The parts of a token request.
#[derive(Debug, Default)]
pub struct LoginRequest<'a> {
    pub authorization: Option<&'a str>,
    pub form: Vec<(String, String)>,
}

impl Auth {
    pub fn new(clients: Clients, ttl: Duration) -> Self {
        Auth {
            clients,
            ttl,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Checks a token request and issues a token: `(client_id, access_token)`.
    pub fn login(
        &self,
        req: &LoginRequest<'_>,
        now: Instant,
    ) -> Result<(String, String), AuthError> {
        let field = |k: &str| {
            req.form
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        match field("grant_type") {
            None => {
                return Err(AuthError::BadRequest(
                    "Missing grant_type: expected client_credentials".into(),
                ))
            }
            Some("client_credentials") => {}
            Some(_) => {
                return Err(AuthError::BadRequest(
                    "Unsupported grant_type: expected client_credentials".into(),
                ))
            }
        }
        let basic = req
            .authorization
            .and_then(|h| {
                h.strip_prefix("Basic ")
                    .or_else(|| h.strip_prefix("basic "))
            })
            .map(str::trim);
        let (id, secret) = match basic {
            Some(b64) => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| AuthError::BadCredentials)?;
                let text = String::from_utf8(raw).map_err(|_| AuthError::BadCredentials)?;
                let (i, s) = text.split_once(':').ok_or(AuthError::BadCredentials)?;
                (i.to_string(), s.to_string())
            }
            None => match (field("client_id"), field("client_secret")) {
                (Some(i), Some(s)) => (i.to_string(), s.to_string()),
                _ => {
                    return Err(AuthError::BadRequest(
                        "Missing client credentials: use HTTP Basic auth or client_id and client_secret".into(),
                    ))
                }
            },
        };
        let known = self
            .clients
            .0
            .iter()
            .any(|(i, s)| *i == id && constant_time_eq(s.as_bytes(), secret.as_bytes()));
        if !known {
            return Err(AuthError::BadCredentials);
        }
        let mut bytes = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut bytes);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.retain(|_, t| t.expires > now);
        tokens.insert(
            token.clone(),
            TokenInfo {
                client_id: id.clone(),
                expires: now + self.ttl,
            },
        );
        Ok((id, token))
    }

    /// The client id behind an `Authorization: Bearer …` header at `now`.
    pub fn check(&self, authorization: Option<&str>, now: Instant) -> Result<String, AuthError> {
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        match tokens.get(token) {
            Some(t) if t.expires > now => Ok(t.client_id.clone()),
            _ => Err(AuthError::Invalid),
        }
    }

    /// Expires every token now (tests of the 401 → new token → replay path).
    pub fn expire_all(&self) {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(
            Clients(vec![("id".into(), "secret".into())]),
            Duration::from_secs(10),
        )
    }

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn basic_and_form_credentials_both_work_and_tokens_expire() {
        let a = auth();
        let t0 = Instant::now();
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("id:secret")
        );
        let (id, tok) = a
            .login(
                &LoginRequest {
                    authorization: Some(&basic),
                    form: form(&[("grant_type", "client_credentials")]),
                },
                t0,
            )
            .unwrap();
        assert_eq!(id, "id");
        let (_, tok2) = a
            .login(
                &LoginRequest {
                    authorization: None,
                    form: form(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", "id"),
                        ("client_secret", "secret"),
                    ]),
                },
                t0,
            )
            .unwrap();
        let bearer = format!("Bearer {tok}");
        assert_eq!(a.check(Some(&bearer), t0).unwrap(), "id");
        assert_eq!(a.check(Some(&format!("Bearer {tok2}")), t0).unwrap(), "id");
        assert_eq!(
            a.check(Some(&bearer), t0 + Duration::from_secs(10)),
            Err(AuthError::Invalid)
        );
        assert_eq!(a.check(Some("Bearer nope"), t0), Err(AuthError::Invalid));
        assert_eq!(a.check(None, t0), Err(AuthError::Missing));
    }

    #[test]
    fn bad_logins_are_refused() {
        let a = auth();
        let t0 = Instant::now();
        let wrong = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("id:wrong")
        );
        let r = |authz: Option<&str>, f: &[(&str, &str)]| {
            a.login(
                &LoginRequest {
                    authorization: authz,
                    form: form(f),
                },
                t0,
            )
        };
        assert_eq!(
            r(Some(&wrong), &[("grant_type", "client_credentials")]),
            Err(AuthError::BadCredentials)
        );
        assert!(matches!(
            r(None, &[("grant_type", "password")]),
            Err(AuthError::BadRequest(_))
        ));
        assert!(matches!(r(None, &[]), Err(AuthError::BadRequest(_))));
        assert!(matches!(
            r(None, &[("grant_type", "client_credentials")]),
            Err(AuthError::BadRequest(_))
        ));
        assert_eq!(
            r(Some("Basic !!!"), &[("grant_type", "client_credentials")]),
            Err(AuthError::BadCredentials)
        );
    }
}
