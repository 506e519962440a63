//! Content digests: what lets the Writer tell a re-fetched conversation (or user record) that
//! did not change from one that did, without reading its stored rows back.
//!
//! xxh3-128 (the `twox-hash` crate) of the conversation's raw JSON exactly as the API sent it,
//! stored as 32 lowercase hex digits in `content_digest`. 128 bits make an accidental match of
//! two different contents negligible; xxh3 hashes gigabytes a second, so digesting every page
//! costs far less than the rows it saves. The digest is a change detector, not a security
//! measure: the data comes from Genesys over TLS, not from an adversary choosing collisions.
//! A user record has no raw JSON of its own, so its digest covers the fields stored for it.
//! A NULL digest (rows written before the column existed) means "unknown": the next re-fetch
//! rewrites the row once and stores its digest.

use chrono::NaiveDateTime;
use twox_hash::XxHash3_128;

/// Length of a stored digest (hex digits).
pub const DIGEST_LEN: usize = 32;

/// The digest of `bytes` as stored: 32 lowercase hex digits.
pub fn digest_hex(bytes: &[u8]) -> String {
    format!("{:032x}", XxHash3_128::oneshot(bytes))
}

/// A conversation's digest: of its raw JSON as received.
pub fn conversation_digest(raw_json: &str) -> String {
    digest_hex(raw_json.as_bytes())
}

/// A presence or routing-status record's digest, over its stored fields. Each field is
/// length-prefixed (absent fields are marked apart from empty ones), so different records
/// never share an encoding.
pub fn user_record_digest(
    user_id: &str,
    start_time: NaiveDateTime,
    end_time: Option<NaiveDateTime>,
    fields: &[Option<&str>],
) -> String {
    let mut buf = Vec::with_capacity(64 + user_id.len());
    let mut put = |s: Option<&str>| match s {
        Some(s) => {
            buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
            buf.extend_from_slice(s.as_bytes());
        }
        None => buf.extend_from_slice(&u64::MAX.to_le_bytes()),
    };
    put(Some(user_id));
    put(Some(&start_time.and_utc().timestamp_millis().to_string()));
    put(end_time
        .map(|t| t.and_utc().timestamp_millis().to_string())
        .as_deref());
    for f in fields {
        put(*f);
    }
    digest_hex(&buf)
}

/// A key's 128-bit hash, for the Writer's sets of received keys (16 bytes a key however long
/// the id).
pub fn key_hash(key: &str) -> u128 {
    XxHash3_128::oneshot(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_stable_hex_and_tell_contents_apart() {
        let a = conversation_digest(r#"{"conversationId":"c","x":1}"#);
        assert_eq!(a.len(), DIGEST_LEN);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(a, conversation_digest(r#"{"conversationId":"c","x":1}"#));
        assert_ne!(a, conversation_digest(r#"{"conversationId":"c","x":2}"#));
        // The empty input's xxh3-128 (reference value of the algorithm).
        assert_eq!(digest_hex(b""), "99aa06d3014798d86001c324468d497f");
    }

    #[test]
    fn user_record_fields_cannot_run_into_each_other() {
        let t = chrono::DateTime::from_timestamp(1_709_280_000, 0)
            .unwrap()
            .naive_utc();
        let d = |f: &[Option<&str>]| user_record_digest("u", t, None, f);
        assert_ne!(d(&[Some("ab"), Some("c")]), d(&[Some("a"), Some("bc")]));
        assert_ne!(d(&[None]), d(&[Some("")]));
        assert_ne!(
            user_record_digest("u", t, None, &[]),
            user_record_digest("u", t, Some(t), &[])
        );
    }
}
