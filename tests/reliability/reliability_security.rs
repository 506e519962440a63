//! The client secret never shows: not in the logs at trace level, not in `/status` or
//! `/metrics`, not in error messages, and not in the process's argv (`/proc/<pid>/cmdline`,
//! readable by every local user). It is passed through a file or the environment.
use crate::common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use common::process::*;

/// The forms a secret could leak in: as is, inside a Basic header, URL-encoded in a form body.
fn leaks(text: &str, id: &str, secret: &str) -> Vec<&'static str> {
    let mut found = Vec::new();
    if text.contains(secret) {
        found.push("plain");
    }
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    if text.contains(&basic) {
        found.push("base64 Basic credentials");
    }
    let half = &secret[secret.len() / 2..];
    if text.contains(half) {
        found.push("a part of it");
    }
    found
}

fn random_secret(tag: &str) -> String {
    format!("{tag}-{}", unique_name("s").replace('_', "x"))
}

enum SecretVia {
    File,
    Env,
}

fn secret_stays_hidden(via: SecretVia) {
    let dir = ScratchDir::new("sluice-secret").expect("scratch dir");
    let org = Org::new(6, 150, 10);
    let id = "sluice-secure";
    let secret = random_secret("Sup3rS3cret");
    let clients = format!("{id}:{secret}");
    // Slow answers so the run lasts long enough to read /status, /metrics and argv.
    let sim = start_sim(
        &dir,
        &org,
        41,
        &["--clients", &clients, "--latency-ms", "150,300"],
    );
    let db = ScratchDb::sqlite(dir.path(), "secret.db");
    let admin_port = free_port().expect("port");
    let mut cmd = SluiceCommand::new(bin(), dir.path())
        .args([
            "backfill",
            "--from",
            &org.start_arg(),
            "--to",
            &org.end_arg(),
            "--datasets",
            "conversations,users",
            "--mode",
            "query",
        ])
        .env("GENESYS_API_URL", sim.base_url())
        .env("GENESYS_LOGIN_URL", sim.base_url())
        .env("GENESYS_CLIENT_ID", id)
        .env("DATABASE_URL", db.url())
        .env("SLUICE_ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
        .env("RUST_LOG", "trace");
    cmd = match via {
        SecretVia::File => {
            let path = dir.path().join("client-secret");
            std::fs::write(&path, format!("{secret}\n")).expect("write secret file");
            cmd.env(
                "GENESYS_CLIENT_SECRET_FILE",
                path.to_str().expect("utf-8 path"),
            )
        }
        SecretVia::Env => cmd.env("GENESYS_CLIENT_SECRET", &secret),
    };
    let mut p = cmd.spawn("secret-backfill").expect("spawn backfill");

    let argv = p.cmdline().expect("read /proc/<pid>/cmdline").join(" ");
    assert!(
        leaks(&argv, id, &secret).is_empty(),
        "the secret is in argv: {argv}"
    );

    // Read /status and /metrics while the run is going.
    let admin = format!("http://127.0.0.1:{admin_port}");
    let mut seen = Vec::new();
    let t = Instant::now();
    let mut finished = None;
    while seen.len() < 2 && t.elapsed() < Duration::from_secs(60) {
        for path in ["/status", "/metrics"] {
            if seen.contains(&path) {
                continue;
            }
            if let Ok((200, body)) = http_request(
                "GET",
                &format!("{admin}{path}"),
                None,
                Duration::from_secs(5),
            ) {
                let body = String::from_utf8_lossy(&body).into_owned();
                let l = leaks(&body, id, &secret);
                assert!(l.is_empty(), "the secret is in {path} ({l:?}):\n{body}");
                seen.push(path);
            }
        }
        if let Some(f) = p.wait_timeout(Duration::from_millis(100)).expect("wait") {
            finished = Some(f);
            break;
        }
    }
    let f = match finished {
        Some(f) => f,
        None => p
            .wait_timeout(Duration::from_secs(180))
            .expect("wait")
            .unwrap_or_else(|| panic!("the backfill did not finish")),
    };
    assert_eq!(
        f.code(),
        Some(0),
        "backfill failed:\n{}",
        tail(&f.log, 4000)
    );
    assert_eq!(
        seen.len(),
        2,
        "/status and /metrics never answered during the run (read: {seen:?})"
    );
    let l = leaks(&f.log, id, &secret);
    assert!(
        l.is_empty(),
        "the secret is in the trace-level log ({l:?}), log at {}",
        p.log_path().display()
    );
    assert!(
        f.log.len() > 1000,
        "the trace log is suspiciously short: logging may be off, so the test checks nothing"
    );
}

#[test]
fn secret_from_file_never_leaks() {
    secret_stays_hidden(SecretVia::File);
}

#[test]
fn secret_from_env_never_leaks() {
    secret_stays_hidden(SecretVia::Env);
}

#[test]
fn error_messages_never_show_the_secret() {
    let dir = ScratchDir::new("sluice-secret-err").expect("scratch dir");
    let org = Org::new(2, 50, 10);
    let sim = start_sim(&dir, &org, 42, &[]);
    let db = ScratchDb::sqlite(dir.path(), "err.db");
    let wrong = random_secret("Wr0ngS3cret");
    // Wrong secret against the sim, then the same secret against an API that is not there.
    for (label, url) in [
        ("wrong-secret", sim.base_url()),
        (
            "dead-api",
            format!("http://127.0.0.1:{}", free_port().expect("port")),
        ),
    ] {
        let cmd = SluiceCommand::new(bin(), dir.path())
            .args([
                "backfill",
                "--from",
                &org.start_arg(),
                "--to",
                &org.end_arg(),
            ])
            .against_sim(&url, SIM_CLIENT_ID, &wrong)
            .env("DATABASE_URL", db.url())
            .env("RUST_LOG", "trace")
            // Two attempts instead of six: the same errors, without 15 s of backoff.
            .env("SLUICE_HTTP_MAX_ATTEMPTS", "2");
        let f = run(&cmd, label, Duration::from_secs(120));
        assert!(!f.success(), "{label}: expected a failure");
        let l = leaks(&f.log, SIM_CLIENT_ID, &wrong);
        assert!(l.is_empty(), "{label}: the secret is in the output ({l:?})");
    }
}
