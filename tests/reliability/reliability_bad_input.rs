//! Bad input — invalid configuration, wrong credentials, an unreachable API, a database the
//! engine may not write to — gets a clear message and a non-zero exit, and no partition is ever
//! marked done.
use crate::common;

use std::time::Duration;

use common::process::*;

/// The output mentions at least one of `words` (case-insensitive).
fn assert_mentions(f: &Finished, words: &[&str], what: &str) {
    let low = f.log.to_ascii_lowercase();
    assert!(
        words.iter().any(|w| low.contains(&w.to_ascii_lowercase())),
        "{what}: the output names none of {words:?}:\n{}",
        tail(&f.log, 3000)
    );
}

fn assert_failed(f: &Finished, what: &str) {
    assert!(
        !f.success() && f.code().is_some(),
        "{what}: expected a non-zero exit, got {:?}:\n{}",
        f.status,
        tail(&f.log, 3000)
    );
}

fn small_org() -> Org {
    Org::new(2, 50, 10)
}

#[test]
fn invalid_configuration_exits_2_naming_the_setting() {
    let dir = ScratchDir::new("sluice-badcfg").expect("scratch dir");
    let org = small_org();
    let sim = start_sim(&dir, &org, 31, &[]);
    let db = ScratchDb::sqlite(dir.path(), "badcfg.db");
    let good = backfill_cmd(&dir, &sim, &db, &org);

    // A number that is not a number, in the environment.
    let f = run(
        &good.clone().env("SLUICE_RATE_PER_MINUTE", "lots"),
        "bad-rate",
        Duration::from_secs(60),
    );
    assert_eq!(f.code(), Some(2), "bad SLUICE_RATE_PER_MINUTE:\n{}", f.log);
    assert_mentions(
        &f,
        &["SLUICE_RATE_PER_MINUTE", "rate_per_minute"],
        "bad rate",
    );

    // A range that ends before it starts.
    let reversed = SluiceCommand::new(bin(), dir.path())
        .args([
            "backfill",
            "--from",
            &org.end_arg(),
            "--to",
            &org.start_arg(),
            "--datasets",
            "conversations,users",
        ])
        .against_sim(&sim.base_url(), SIM_CLIENT_ID, SIM_CLIENT_SECRET)
        .env("DATABASE_URL", db.url());
    let f = run(&reversed, "reversed", Duration::from_secs(60));
    assert_eq!(f.code(), Some(2), "--to before --from:\n{}", f.log);
    assert_mentions(&f, &["--from", "--to", "from", "range"], "reversed range");

    // A configuration file that is not TOML.
    let cfg = dir.path().join("broken.toml");
    std::fs::write(&cfg, "rate_per_minute = = 300\n[[[").expect("write config");
    let f = run(
        &good
            .clone()
            .args(["--config", cfg.to_str().expect("utf-8 path")]),
        "bad-toml",
        Duration::from_secs(60),
    );
    assert_eq!(f.code(), Some(2), "broken config file:\n{}", f.log);
    assert_mentions(&f, &["broken.toml", "toml", "config"], "broken config file");

    // No client secret at all.
    let no_secret = SluiceCommand::new(bin(), dir.path())
        .args([
            "backfill",
            "--from",
            &org.start_arg(),
            "--to",
            &org.end_arg(),
        ])
        .env("GENESYS_API_URL", sim.base_url())
        .env("GENESYS_LOGIN_URL", sim.base_url())
        .env("GENESYS_CLIENT_ID", SIM_CLIENT_ID)
        .env("DATABASE_URL", db.url());
    let f = run(&no_secret, "no-secret", Duration::from_secs(60));
    assert_eq!(f.code(), Some(2), "missing client secret:\n{}", f.log);
    assert_mentions(&f, &["GENESYS_CLIENT_SECRET"], "missing secret");

    assert_eq!(
        partitions_done(&db),
        0,
        "bad configuration marked work done"
    );
}

#[test]
fn wrong_credentials_fail_clearly_and_mark_nothing_done() {
    let dir = ScratchDir::new("sluice-badcred").expect("scratch dir");
    let org = small_org();
    let sim = start_sim(&dir, &org, 32, &[]);
    let db = ScratchDb::sqlite(dir.path(), "badcred.db");
    let wrong = "not-the-secret-5f1e";
    let cmd = backfill_cmd(&dir, &sim, &db, &org).env("GENESYS_CLIENT_SECRET", wrong);
    let f = run(&cmd, "wrong-secret", Duration::from_secs(90));
    assert_failed(&f, "wrong credentials");
    assert_mentions(
        &f,
        &[
            "credential",
            "unauthorized",
            "401",
            "invalid_client",
            "authenticat",
        ],
        "wrong credentials",
    );
    assert!(
        !f.log.contains(wrong),
        "the (wrong) secret was printed:\n{}",
        f.log
    );
    assert_eq!(
        partitions_done(&db),
        0,
        "wrong credentials marked work done"
    );
}

#[test]
fn unreachable_api_fails_clearly_and_marks_nothing_done() {
    let dir = ScratchDir::new("sluice-noapi").expect("scratch dir");
    let org = small_org();
    let db = ScratchDb::sqlite(dir.path(), "noapi.db");
    // A port nobody listens on.
    let dead = format!("http://127.0.0.1:{}", free_port().expect("port"));
    let cmd = SluiceCommand::new(bin(), dir.path())
        .args([
            "backfill",
            "--from",
            &org.start_arg(),
            "--to",
            &org.end_arg(),
        ])
        .against_sim(&dead, SIM_CLIENT_ID, SIM_CLIENT_SECRET)
        .env("DATABASE_URL", db.url())
        // Two attempts instead of six: the same failure, without 15 s of backoff.
        .env("SLUICE_HTTP_MAX_ATTEMPTS", "2");
    let f = run(&cmd, "no-api", Duration::from_secs(120));
    assert_failed(&f, "unreachable API");
    assert_mentions(
        &f,
        &["connect", "unreachable", "refused", "transport"],
        "unreachable API",
    );
    assert_eq!(
        partitions_done(&db),
        0,
        "an unreachable API marked work done"
    );
}

#[test]
fn database_without_permissions_fails_clearly() {
    let dir = ScratchDir::new("sluice-noperm").expect("scratch dir");
    let org = small_org();
    let sim = start_sim(&dir, &org, 33, &[]);
    let _mariadb = common::db::mariadb_shared();
    let db = ScratchDb::mysql("sluice_noperm").expect("MariaDB scratch database");
    let name = db.mysql_name().expect("a MariaDB database").to_owned();
    let user = unique_name("np").to_lowercase();
    let user = &user[..user.len().min(32)];
    let password = "np-pass-8c2d";
    mysql_exec(
        MYSQL_ADMIN_URL,
        &format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"),
    )
    .expect("create user");
    mysql_exec(
        MYSQL_ADMIN_URL,
        &format!("CREATE USER '{user}'@'localhost' IDENTIFIED BY '{password}'"),
    )
    .expect("create user");
    struct DropUser(String);
    impl Drop for DropUser {
        fn drop(&mut self) {
            for host in ["%", "localhost"] {
                let _ = mysql_exec(
                    MYSQL_ADMIN_URL,
                    &format!("DROP USER IF EXISTS '{}'@'{host}'", self.0),
                );
            }
        }
    }
    let _cleanup = DropUser(user.to_owned());

    let url = format!("mysql://{user}:{password}@127.0.0.1:3306/{name}");
    let cmd = backfill_cmd(&dir, &sim, &db, &org).env("DATABASE_URL", &url);
    let f = run(&cmd, "no-perm", Duration::from_secs(90));
    assert_failed(&f, "database without permissions");
    assert_mentions(
        &f,
        &["denied", "permission", "privilege"],
        "database without permissions",
    );
    assert!(
        !f.log.contains(password),
        "the database password was printed:\n{}",
        f.log
    );
    assert_eq!(partitions_done(&db), 0);
}
