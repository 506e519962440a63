//! Secrets (the OAuth client secret, access tokens) wrapped so that `Debug` and `Display`
//! print `[redacted]`: they cannot leak through logs, error messages or `{:?}` of a settings
//! struct. The value is read only through [`Secret::expose`], at the point it goes on the wire.

use std::fmt;
use std::path::Path;

/// A string that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Reads a secret from a file; surrounding whitespace (a trailing newline) is dropped.
    pub fn from_file(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Ok(Secret(text.trim().to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// OAuth client-credentials of one Genesys OAuth client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: Secret,
}

/// Credentials could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("cannot read the client secret file {path}: {message}")]
    File { path: String, message: String },
    #[error("{0} is empty")]
    Empty(&'static str),
}

impl Credentials {
    pub fn new(client_id: impl Into<String>, client_secret: Secret) -> Self {
        Credentials {
            client_id: client_id.into(),
            client_secret,
        }
    }

    /// GENESYS_CLIENT_ID plus GENESYS_CLIENT_SECRET, or GENESYS_CLIENT_SECRET_FILE (a file
    /// holding the secret, so it never has to be in the environment or on a command line).
    pub fn from_env() -> Result<Self, CredentialsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`Self::from_env`] with an injectable lookup (tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, CredentialsError> {
        let client_id = get("GENESYS_CLIENT_ID")
            .ok_or(CredentialsError::Missing("GENESYS_CLIENT_ID"))?
            .trim()
            .to_owned();
        if client_id.is_empty() {
            return Err(CredentialsError::Empty("GENESYS_CLIENT_ID"));
        }
        let secret = match get("GENESYS_CLIENT_SECRET") {
            Some(s) => Secret::new(s.trim()),
            None => {
                let path = get("GENESYS_CLIENT_SECRET_FILE").ok_or(CredentialsError::Missing(
                    "GENESYS_CLIENT_SECRET or GENESYS_CLIENT_SECRET_FILE",
                ))?;
                Secret::from_file(Path::new(&path)).map_err(|e| CredentialsError::File {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            }
        };
        if secret.is_empty() {
            return Err(CredentialsError::Empty("the client secret"));
        }
        Ok(Credentials {
            client_id,
            client_secret: secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let c = Credentials::new("id-1", Secret::new("hunter2"));
        let shown = format!("{c:?} {} {:?}", c.client_secret, c.client_secret);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("[redacted]"));
        assert!(shown.contains("id-1"));
        assert_eq!(c.client_secret.expose(), "hunter2");
    }

    #[test]
    fn credentials_from_env_or_file() {
        let c = Credentials::from_lookup(|k| match k {
            "GENESYS_CLIENT_ID" => Some("abc".into()),
            "GENESYS_CLIENT_SECRET" => Some("s3cret\n".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.client_secret.expose(), "s3cret");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "from-file\n").unwrap();
        let p = path.to_string_lossy().into_owned();
        let c = Credentials::from_lookup(|k| match k {
            "GENESYS_CLIENT_ID" => Some("abc".into()),
            "GENESYS_CLIENT_SECRET_FILE" => Some(p.clone()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.client_secret.expose(), "from-file");

        let e = Credentials::from_lookup(|k| (k == "GENESYS_CLIENT_ID").then(|| "abc".into()))
            .unwrap_err();
        assert!(e.to_string().contains("GENESYS_CLIENT_SECRET"));
        let e = Credentials::from_lookup(|k| match k {
            "GENESYS_CLIENT_ID" => Some("abc".into()),
            "GENESYS_CLIENT_SECRET_FILE" => Some("/nonexistent/secret".into()),
            _ => None,
        })
        .unwrap_err();
        assert!(matches!(e, CredentialsError::File { .. }));
    }
}
