//! ACLs from the command line, against a real `strata server --require-auth`: the bootstrap
//! user grants another user rights with `strata acl create`, lists and deletes them, and that
//! user's client commands are served or refused accordingly; `--super-user` lets a user past
//! every check; a client certificate is the user its common name names; the web console signs
//! users in and shows and changes only what their ACLs allow.

mod common;
mod support;

use std::path::Path;

use anyhow::{Result, ensure};
use serde_json::json;
use support::{COMMAND_TIMEOUT, Output, Server, run, strata, table_row};

const REQUIRE_AUTH: [&str; 3] = ["--require-auth", "--bootstrap-user", "admin:admin-secret"];
const ADMIN_FLAGS: [&str; 4] = ["--user", "admin", "--password", "admin-secret"];

/// Runs `strata` commands against one server as one user.
struct As<'a> {
    server: &'a Server,
    /// The user, by name.
    who: &'a str,
    /// The user's password, passed as STRATA_PASSWORD (with STRATA_USER) as a script would;
    /// `None` for a user a client certificate names.
    password: Option<&'a str>,
    /// Flags added to every command: the TLS files of a server that speaks TLS.
    flags: Vec<String>,
}

impl As<'_> {
    fn run(&self, arguments: &[&str], stdin: &str) -> Result<Output> {
        let mut command = strata(arguments);
        command
            .args(["--bootstrap", &self.server.address])
            .args(&self.flags);
        if let Some(password) = self.password {
            command
                .env("STRATA_USER", self.who)
                .env("STRATA_PASSWORD", password);
        }
        run(command, stdin, COMMAND_TIMEOUT)
    }

    fn succeeds(&self, arguments: &[&str], stdin: &str) -> Result<Output> {
        let output = self.run(arguments, stdin)?;
        ensure!(
            output.status.success(),
            "strata {arguments:?} as {} failed: {}",
            self.who,
            output.stderr
        );
        Ok(output)
    }

    /// Runs a command that must fail, with `reason` in what it printed.
    fn is_refused(&self, arguments: &[&str], stdin: &str, reason: &str) -> Result<Output> {
        let output = self.run(arguments, stdin)?;
        ensure!(
            !output.status.success(),
            "strata {arguments:?} as {} succeeded: {}",
            self.who,
            output.stdout
        );
        ensure!(
            output.stderr.contains(reason),
            "strata {arguments:?} as {} should say {reason}: {}",
            self.who,
            output.stderr
        );
        Ok(output)
    }
}

/// A server that requires authentication, with `extra` flags; the bootstrap user, with
/// `client_flags` (TLS files), probes it.
fn start(directory: &Path, extra: &[&str], client_flags: &[String]) -> Result<Server> {
    let probe: Vec<&str> = ADMIN_FLAGS
        .iter()
        .copied()
        .chain(client_flags.iter().map(String::as_str))
        .collect();
    support::start_server_probed(
        &directory.join("data"),
        &directory.join("server.log"),
        &[&REQUIRE_AUTH[..], extra].concat(),
        &probe,
    )
}

fn admin<'a>(server: &'a Server, flags: &[String]) -> As<'a> {
    As {
        server,
        who: "admin",
        password: Some("admin-secret"),
        flags: flags.to_vec(),
    }
}

fn reader(server: &Server) -> As<'_> {
    As {
        server,
        who: "reader",
        password: Some("reader-secret"),
        flags: Vec::new(),
    }
}

const ONE_PARTITION: [&str; 4] = ["--partitions", "1", "--replication-factor", "1"];

/// Topics `a`, `b` and `logs.app`, one record in each of `a` and `logs.app`, and the user
/// `reader`, made by the bootstrap user.
fn topics_and_reader(admin: &As) -> Result<()> {
    for topic in ["a", "b", "logs.app"] {
        admin.succeeds(
            &[&["topic", "create", topic], &ONE_PARTITION[..]].concat(),
            "",
        )?;
    }
    admin.succeeds(&["produce", "a"], "in a\n")?;
    admin.succeeds(&["produce", "logs.app"], "in logs\n")?;
    admin.succeeds(
        &[
            "user",
            "create",
            "reader",
            "--new-password",
            "reader-secret",
        ],
        "",
    )?;
    Ok(())
}

/// `strata acl create` giving reader Read on topic `name` (`extra`: more flags).
fn grant_read(admin: &As, name: &str, extra: &[&str]) -> Result<Output> {
    let create = [
        "acl",
        "create",
        "--principal",
        "reader",
        "--operation",
        "read",
        "--topic",
        name,
    ];
    admin.succeeds(&[&create[..], extra].concat(), "")
}

const CONSUME_A: [&str; 4] = ["consume", "a", "--from-beginning", "-e"];

/// What Read on topic `a` alone lets `user` do: consume `a` and see it listed, but not write
/// to it (without idempotence, so the write itself is what is refused).
fn reads_a_and_nothing_else(user: &As) -> Result<()> {
    let consumed = user.succeeds(&CONSUME_A, "")?;
    ensure!(consumed.stdout == "in a\n", "{:?}", consumed.stdout);
    user.is_refused(
        &["produce", "a", "--acks", "1"],
        "written\n",
        "TOPIC_AUTHORIZATION_FAILED",
    )?;
    let topics = user.succeeds(&["topic", "list"], "")?;
    ensure!(topics.stdout == "a\n", "{:?}", topics.stdout);
    Ok(())
}

#[test]
fn acls_grant_listed_and_deleted_from_the_cli_decide_what_a_user_may_do() -> Result<()> {
    let directory = tempfile::tempdir()?;
    let server = start(directory.path(), &[], &[])?;
    let (admin, reader) = (admin(&server, &[]), reader(&server));
    topics_and_reader(&admin)?;

    // Known but granted nothing: reader sees no topic and reads none.
    let nothing = reader.succeeds(&["topic", "list"], "")?;
    ensure!(nothing.stdout.is_empty(), "{:?}", nothing.stdout);

    let created = grant_read(&admin, "a", &[])?;
    ensure!(
        created.stdout.starts_with("created 1 ACL:"),
        "{}",
        created.stdout
    );
    let listed = admin.succeeds(&["acl", "list", "--format", "json"], "")?;
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout)?;
    let read_a = json!({
        "principal": "User:reader",
        "host": "*",
        "permission": "ALLOW",
        "operation": "READ",
        "resource_type": "TOPIC",
        "pattern_type": "LITERAL",
        "resource_name": "a",
    });
    ensure!(listed == json!([read_a]), "{listed}");
    let table = admin.succeeds(&["acl", "list", "--principal", "User:reader"], "")?;
    let row = table_row(&table.stdout, "  User:reader")?;
    ensure!(
        row == ["User:reader", "*", "ALLOW", "READ", "TOPIC", "LITERAL", "a"],
        "{}",
        table.stdout
    );

    reads_a_and_nothing_else(&reader)?;
    // Without Write anywhere, an idempotent producer (the default) is refused its producer id
    // before it writes anything, and is told what would let it.
    let idempotent = reader.is_refused(
        &["produce", "a"],
        "written\n",
        "CLUSTER_AUTHORIZATION_FAILED",
    )?;
    ensure!(
        idempotent.stderr.contains("needs Write on a topic")
            && !idempotent.stderr.contains("cannot connect"),
        "{}",
        idempotent.stderr
    );
    reader.is_refused(
        &["consume", "b", "--from-beginning", "-e"],
        "",
        "TOPIC_AUTHORIZATION_FAILED",
    )?;
    // Managing ACLs is Alter on the cluster, which reader lacks.
    reader.is_refused(
        &[
            "acl",
            "create",
            "--principal",
            "reader",
            "--operation",
            "all",
            "--topic",
            "*",
        ],
        "",
        "CLUSTER_AUTHORIZATION_FAILED",
    )?;

    // A prefixed grant covers every topic the prefix starts.
    grant_read(&admin, "logs.", &["--prefixed"])?;
    let consumed = reader.succeeds(&["consume", "logs.app", "--from-beginning", "-e"], "")?;
    ensure!(consumed.stdout == "in logs\n", "{:?}", consumed.stdout);
    let topics = reader.succeeds(&["topic", "list"], "")?;
    ensure!(topics.stdout == "a\nlogs.app\n", "{:?}", topics.stdout);
    let matching = admin.succeeds(
        &[
            "acl", "list", "--topic", "logs.app", "--match", "--format", "json",
        ],
        "",
    )?;
    let matching: serde_json::Value = serde_json::from_str(&matching.stdout)?;
    ensure!(
        matching.as_array().map(Vec::len) == Some(1)
            && matching[0]["pattern_type"] == "PREFIXED"
            && matching[0]["resource_name"] == "logs.",
        "{matching}"
    );

    // Deleting needs a filter (or --all); what a filter deletes is printed, and is gone.
    admin.is_refused(&["acl", "delete"], "", "--all")?;
    let deleted = admin.succeeds(
        &["acl", "delete", "--principal", "reader", "--topic", "a"],
        "",
    )?;
    ensure!(
        deleted.stdout.starts_with("deleted 1 ACL:")
            && table_row(&deleted.stdout, "  User:reader")?.last() == Some(&"a"),
        "{}",
        deleted.stdout
    );
    reader.is_refused(&CONSUME_A, "", "TOPIC_AUTHORIZATION_FAILED")?;
    let left = admin.succeeds(&["acl", "list", "--format", "json"], "")?;
    let left: serde_json::Value = serde_json::from_str(&left.stdout)?;
    ensure!(
        left.as_array().map(Vec::len) == Some(1) && left[0]["resource_name"] == "logs.",
        "the literal delete left the prefixed ACL alone: {left}"
    );
    Ok(())
}

#[test]
fn a_super_user_passes_every_check_without_acls() -> Result<()> {
    let directory = tempfile::tempdir()?;
    let server = start(directory.path(), &["--super-user", "reader"], &[])?;
    topics_and_reader(&admin(&server, &[]))?;
    let reader = reader(&server);
    reader.succeeds(
        &[&["topic", "create", "c"], &ONE_PARTITION[..]].concat(),
        "",
    )?;
    reader.succeeds(&["produce", "a"], "by reader\n")?;
    let consumed = reader.succeeds(&CONSUME_A, "")?;
    ensure!(
        consumed.stdout == "in a\nby reader\n",
        "{:?}",
        consumed.stdout
    );
    let topics = reader.succeeds(&["topic", "list"], "")?;
    ensure!(
        topics.stdout == "a\nb\nc\nlogs.app\n",
        "{:?}",
        topics.stdout
    );
    let listed = reader.succeeds(&["acl", "list", "--format", "json"], "")?;
    ensure!(listed.stdout.trim() == "[]", "{:?}", listed.stdout);
    Ok(())
}

#[test]
fn a_client_certificate_is_the_user_its_common_name_names() -> Result<()> {
    let directory = tempfile::tempdir()?;
    let certs = directory.path().join("certs");
    let file = |name: &str| certs.join(name).to_string_lossy().into_owned();
    let created = run(
        strata(&[
            "certs",
            "create",
            "--out",
            &file(""),
            "--client-user",
            "reader",
        ]),
        "",
        COMMAND_TIMEOUT,
    )?;
    ensure!(created.status.success(), "{}", created.stderr);
    let trust = vec!["--tls-ca".to_string(), file("ca.pem")];
    let server = start(
        directory.path(),
        &[
            "--tls-cert",
            &file("node-1.pem"),
            "--tls-key",
            &file("node-1-key.pem"),
            "--tls-ca",
            &file("ca.pem"),
            "--tls-client-auth",
            "optional",
            "--tls-client-ca",
            &file("client-ca.pem"),
        ],
        &trust,
    )?;
    let admin = admin(&server, &trust);
    topics_and_reader(&admin)?;
    grant_read(&admin, "a", &[])?;

    // No password: the certificate says who this is, and reader's ACLs apply.
    let certificate = As {
        server: &server,
        who: "reader (by certificate)",
        password: None,
        flags: [
            &trust[..],
            &[
                "--tls-cert".to_string(),
                file("client.pem"),
                "--tls-key".to_string(),
                file("client-key.pem"),
            ],
        ]
        .concat(),
    };
    reads_a_and_nothing_else(&certificate)
}

/// A browser of the console at `address`: keeps the session cookie it is given.
struct Browser<'a> {
    address: &'a str,
    cookie: Option<String>,
}

impl Browser<'_> {
    fn request(&mut self, method: &str, path: &str, form: &str) -> Result<common::HttpResponse> {
        let cookie = self.cookie.clone();
        let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("Cookie", c.as_str())).collect();
        let response = common::http(self.address, method, path, &headers, form)
            .ok_or_else(|| anyhow::anyhow!("the console did not answer {method} {path}"))?;
        if let Some(set) = response.header("set-cookie") {
            let pair = set.split(';').next().unwrap_or_default();
            self.cookie = (!pair.ends_with('=')).then(|| pair.to_string());
        }
        Ok(response)
    }

    fn get(&mut self, path: &str) -> Result<common::HttpResponse> {
        self.request("GET", path, "")
    }

    fn post(&mut self, path: &str, form: &str) -> Result<common::HttpResponse> {
        self.request("POST", path, form)
    }
}

#[test]
fn the_console_signs_users_in_and_shows_only_what_their_acls_allow() -> Result<()> {
    let directory = tempfile::tempdir()?;
    let http = support::free_address()?;
    let server = start(directory.path(), &["--http-listen", &http], &[])?;
    let admin = admin(&server, &[]);
    topics_and_reader(&admin)?;
    grant_read(&admin, "a", &[])?;
    let mut browser = Browser {
        address: &http,
        cookie: None,
    };

    // Nobody signed in: every page sends to the sign-in form and back.
    let page = browser.get("/topics?x=1")?;
    ensure!(page.status == 303, "{}: {}", page.status, page.body);
    ensure!(
        page.header("location") == Some("/login?next=%2Ftopics%3Fx%3D1"),
        "{:?}",
        page.header("location")
    );
    ensure!(browser.get("/login")?.body.contains("form id=\"login\""));
    let wrong = browser.post("/login", "user=reader&password=guess&next=%2Ftopics")?;
    ensure!(wrong.status == 401, "{}: {}", wrong.status, wrong.body);
    ensure!(
        wrong.body.contains("id=\"error\"") && browser.cookie.is_none(),
        "{}",
        wrong.body
    );

    let signed_in = browser.post(
        "/login",
        "user=reader&password=reader-secret&next=%2Ftopics",
    )?;
    ensure!(signed_in.status == 303, "{}", signed_in.body);
    ensure!(signed_in.header("location") == Some("/topics"));
    ensure!(browser.cookie.is_some(), "no session cookie was set");
    // Read on `a` alone: `a` is listed and browsable, `b` neither, and nothing can be created.
    let topics = browser.get("/topics")?;
    ensure!(topics.status == 200, "{}", topics.body);
    ensure!(
        topics
            .body
            .contains("signed in as <b id=\"user\">reader</b>")
    );
    ensure!(topics.body.contains(">a</a>") && !topics.body.contains(">b</a>"));
    let records = browser.get("/topics/a/records?partition=0&offset=0")?;
    ensure!(records.status == 200, "{}", records.body);
    ensure!(records.body.contains("in a"), "{}", records.body);
    let hidden = browser.get("/topics/b")?;
    ensure!(hidden.status == 403, "{}: {}", hidden.status, hidden.body);
    ensure!(
        hidden.body.contains("TOPIC_AUTHORIZATION_FAILED"),
        "{}",
        hidden.body
    );
    let create = browser.post(
        "/topics",
        "name=readers-own&partitions=1&replication_factor=1&configs=",
    )?;
    ensure!(create.status == 403, "{}: {}", create.status, create.body);
    let alter = browser.post("/topics/a/configs", "key=retention.ms&value=1000")?;
    ensure!(alter.status == 403, "{}: {}", alter.status, alter.body);
    admin.is_refused(&["topic", "describe", "readers-own"], "", "UNKNOWN_TOPIC")?;

    // Signed out, the old cookie is worth nothing.
    let stale = browser.cookie.clone();
    ensure!(browser.post("/logout", "")?.status == 303);
    browser.cookie = stale;
    ensure!(browser.get("/topics")?.status == 303);

    // The bootstrap user is a super user: it sees and creates everything.
    browser.cookie = None;
    browser.post("/login", "user=admin&password=admin-secret&next=%2F")?;
    let topics = browser.get("/topics")?;
    ensure!(topics.body.contains(">b</a>"), "{}", topics.body);
    let created = browser.post(
        "/topics",
        "name=made-in-console&partitions=2&replication_factor=1&configs=retention.ms%3D60000",
    )?;
    ensure!(
        created.status == 303,
        "{}: {}",
        created.status,
        created.body
    );
    let described = admin.succeeds(&["topic", "describe", "made-in-console"], "")?;
    ensure!(
        described.stdout.contains("made-in-console"),
        "{}",
        described.stdout
    );

    // A form posted from another site is refused, signed in or not.
    let forged = common::http(
        &http,
        "POST",
        "/topics",
        &[
            ("Cookie", browser.cookie.as_deref().unwrap_or_default()),
            ("Origin", "https://evil.example"),
        ],
        "name=forged&partitions=1&replication_factor=1&configs=",
    )
    .ok_or_else(|| anyhow::anyhow!("no answer to the forged post"))?;
    ensure!(forged.status == 403, "{}: {}", forged.status, forged.body);

    // Guessing is cut short: an address that failed five times in a minute is turned away
    // before its guesses reach the cluster, right password or not. (The wrong password above
    // may still count, so the sixth guess at the latest is refused.)
    browser.cookie = None;
    let mut guesses = 0;
    loop {
        let guess = browser.post("/login", "user=reader&password=guess")?;
        guesses += 1;
        if guess.status == 429 {
            break;
        }
        ensure!(guess.status == 401, "{}: {}", guess.status, guess.body);
        ensure!(
            guesses < 6,
            "six wrong passwords in a row were all let through"
        );
    }
    let throttled = browser.post("/login", "user=reader&password=reader-secret")?;
    ensure!(
        throttled.status == 429,
        "{}: {}",
        throttled.status,
        throttled.body
    );
    ensure!(
        throttled.body.contains("too many failed sign-ins"),
        "{}",
        throttled.body
    );
    admin.is_refused(&["topic", "describe", "forged"], "", "UNKNOWN_TOPIC")?;
    Ok(())
}
