use std::net::SocketAddr;
use std::path::Path;

use super::*;

const EXAMPLE: &str = include_str!("../../config/changebot.toml");

fn example(set: &[&str]) -> Config {
    let set: Vec<String> = set.iter().map(|s| s.to_string()).collect();
    Config::parse(EXAMPLE, Path::new("changebot.toml"), &|n| {
        set.iter().any(|s| s == n).then(|| "x".to_string())
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn lines(config: &Config, set: &[&str], http: Http, console: Option<&str>) -> Vec<Line> {
    let is_set = |n: &str| set.contains(&n);
    report(
        config,
        &Facts {
            http,
            console,
            is_set: &is_set,
        },
    )
}

fn find<'a>(lines: &'a [Line], prefix: &str) -> &'a Line {
    let found: Vec<&Line> = lines
        .iter()
        .filter(|l| l.text.starts_with(prefix))
        .collect();
    assert_eq!(found.len(), 1, "one `{prefix}` line in {lines:#?}");
    found[0]
}

#[test]
fn nothing_set_says_what_is_off_and_why_once_per_surface() {
    let config = example(&[]);
    let out = lines(&config, &[], Http::Listening(addr("127.0.0.1:8080")), None);
    for surface in [
        "http:",
        "api:",
        "web:",
        "github:",
        "discord:",
        "deployments:",
        "scheduler:",
        "console:",
    ] {
        find(&out, surface);
    }
    let api = find(&out, "api:");
    assert_eq!(api.text, "api: off, CHANGEBOT_API_TOKEN is not set");
    assert_eq!(api.level, Level::Warn);
    assert!(find(&out, "web:").text.starts_with("web: off"));
    let gh = find(&out, "github:");
    assert!(
        gh.text.starts_with("github: off")
            && gh
                .text
                .contains("CHANGEBOT_GITHUB_WEBHOOK_SECRET is not set")
            && gh.text.contains("GITHUB_TOKEN"),
        "{gh:?}"
    );
    assert_eq!(
        find(&out, "discord:").text,
        "discord: off, DISCORD_TOKEN is not set"
    );
    assert!(
        find(&out, "deployments:")
            .text
            .contains("3 targets: 3 dry runs (no url)"),
        "{out:#?}"
    );
    assert!(find(&out, "console:").text.starts_with("console: off"));
    let next: Vec<&Line> = out.iter().filter(|l| l.text.starts_with("next:")).collect();
    assert!(
        next.iter()
            .any(|l| l.text.contains("changebot chat --as alice help")),
        "{next:#?}"
    );
    assert!(
        next.iter()
            .any(|l| l.text.contains("set CHANGEBOT_API_TOKEN")),
        "{next:#?}"
    );
    // The example's public_url and bind agree.
    assert!(
        !out.iter().any(|l| l.text.contains("public_url")),
        "{out:#?}"
    );
}

#[test]
fn everything_set_says_where_each_surface_is() {
    let set = [
        "CHANGEBOT_API_TOKEN",
        "CHANGEBOT_GITHUB_WEBHOOK_SECRET",
        "GITHUB_TOKEN",
        "DISCORD_TOKEN",
    ];
    let config = example(&set);
    let out = lines(
        &config,
        &set,
        Http::Listening(addr("127.0.0.1:8080")),
        Some("alice"),
    );
    assert_eq!(
        find(&out, "api:").text,
        "api: on, http://127.0.0.1:8080/api/* with the API token from CHANGEBOT_API_TOKEN"
    );
    assert!(find(&out, "web:").text.contains("http://127.0.0.1:8080/"));
    assert_eq!(
        find(&out, "github:").text,
        "github: on, webhook at http://127.0.0.1:8080/webhooks/github; replies with the token"
    );
    assert!(find(&out, "discord:").text.starts_with("discord: on"));
    assert_eq!(find(&out, "console:").text, "console: on, as alice");
    assert!(out.iter().all(|l| l.level == Level::Info), "{out:#?}");
    assert!(
        out.iter().any(|l| l
            .text
            .contains("Bearer $CHANGEBOT_API_TOKEN\" http://127.0.0.1:8080/api/changes")),
        "{out:#?}"
    );
}

#[test]
fn a_busy_port_under_the_console_says_it_runs_beside_the_other_server() {
    let config = example(&["CHANGEBOT_API_TOKEN"]);
    let out = lines(&config, &["CHANGEBOT_API_TOKEN"], Http::Busy, Some("alice"));
    let http = find(&out, "http:");
    assert!(
        http.text.contains("127.0.0.1:8080 is already in use") && http.text.contains("--bind"),
        "{http:?}"
    );
    assert!(find(&out, "api:").text.starts_with("api: off here"));
    assert!(find(&out, "web:").text.starts_with("web: off here"));
}

#[test]
fn public_url_and_bind_that_disagree_are_flagged() {
    let flagged = |public: &str, bound: &str| address_disagreement(public, addr(bound));
    // Agree.
    assert_eq!(flagged("http://127.0.0.1:8080", "127.0.0.1:8080"), None);
    assert_eq!(flagged("http://localhost:8080/", "127.0.0.1:8080"), None);
    assert_eq!(flagged("http://10.0.0.5:8080", "0.0.0.0:8080"), None);
    assert_eq!(flagged("http://10.0.0.5:8080", "10.0.0.5:8080"), None);
    // A public name behind a reverse proxy on this host.
    assert_eq!(
        flagged("https://changebot.example.com", "127.0.0.1:8080"),
        None
    );
    // Disagree.
    let loopback_public = flagged("http://127.0.0.1:8080", "0.0.0.0:8080").expect("flagged");
    assert!(
        loopback_public.contains("points at this machine only"),
        "{loopback_public}"
    );
    let port = flagged("http://127.0.0.1:9090", "127.0.0.1:8080").expect("flagged");
    assert!(port.contains("disagree"), "{port}");
    let other_ip = flagged("http://10.0.0.6:8080", "10.0.0.5:8080").expect("flagged");
    assert!(other_ip.contains("disagree"), "{other_ip}");
    let any_port = flagged("http://10.0.0.5:9000", "0.0.0.0:8080").expect("flagged");
    assert!(any_port.contains("port 9000"), "{any_port}");
}

#[test]
fn the_warning_is_part_of_the_report() {
    let config = example(&[]);
    let out = lines(&config, &[], Http::Listening(addr("0.0.0.0:8080")), None);
    assert!(
        out.iter()
            .any(|l| l.level == Level::Warn && l.text.contains("public_url")),
        "{out:#?}"
    );
}

#[test]
fn next_steps_point_where_the_server_really_listens() {
    let config = example(&["CHANGEBOT_API_TOKEN"]);
    // --bind 127.0.0.1:0 got port 37475; public_url still says 8080.
    let out = lines(
        &config,
        &["CHANGEBOT_API_TOKEN"],
        Http::Listening(addr("127.0.0.1:37475")),
        None,
    );
    let next: Vec<&str> = out
        .iter()
        .filter(|l| l.text.starts_with("next:"))
        .map(|l| l.text.as_str())
        .collect();
    assert!(
        next.iter()
            .any(|l| l.contains("http://127.0.0.1:37475/api/changes")),
        "{next:#?}"
    );
    assert!(!next.iter().any(|l| l.contains(":8080")), "{next:#?}");
    let wildcard = lines(
        &config,
        &["CHANGEBOT_API_TOKEN"],
        Http::Listening(addr("0.0.0.0:9000")),
        None,
    );
    assert!(
        wildcard
            .iter()
            .any(|l| l.text.contains("open http://127.0.0.1:9000/ in a browser")),
        "{wildcard:#?}"
    );
}

#[test]
fn beside_another_server_github_says_only_what_this_process_does() {
    let config = example(&[]);
    let out = lines(&config, &[], Http::Busy, Some("alice"));
    let gh = find(&out, "github:");
    assert!(
        gh.text.starts_with("github: off here")
            && gh.text.contains("the webhook is the other server's"),
        "{gh:?}"
    );
    let set = ["GITHUB_TOKEN"];
    let config = example(&set);
    let out = lines(&config, &set, Http::Busy, Some("alice"));
    assert_eq!(
        find(&out, "github:").text,
        "github: on, replies with the token; the webhook is the other server's"
    );
}

#[test]
fn a_loopback_public_url_on_another_port_says_both() {
    let why =
        address_disagreement("http://127.0.0.1:18099", addr("0.0.0.0:18082")).expect("flagged");
    assert!(
        why.contains("points at this machine only") && why.contains("on port 18082, not 18099"),
        "{why}"
    );
}

#[test]
fn an_unset_read_only_token_is_said_on_the_api_line() {
    let text = EXAMPLE.replace(
        "# read_token_env = \"CHANGEBOT_READ_TOKEN\"",
        "read_token_env = \"CHANGEBOT_READ_TOKEN\"",
    );
    let set = ["CHANGEBOT_API_TOKEN"];
    let config = Config::parse(&text, Path::new("changebot.toml"), &|n| {
        set.contains(&n).then(|| "x".to_string())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let out = lines(&config, &set, Http::Listening(addr("127.0.0.1:8080")), None);
    let api = find(&out, "api:");
    assert_eq!(api.level, Level::Warn);
    assert!(
        api.text
            .ends_with("; no read-only token (CHANGEBOT_READ_TOKEN is not set)"),
        "{api:?}"
    );
}

#[test]
fn api_and_web_lines_name_where_a_person_reaches_them_now() {
    let set = ["CHANGEBOT_API_TOKEN"];
    let config = example(&set);
    let out = lines(
        &config,
        &set,
        Http::Listening(addr("127.0.0.1:43101")),
        None,
    );
    assert!(
        find(&out, "api:")
            .text
            .contains("http://127.0.0.1:43101/api/*"),
        "{out:#?}"
    );
    assert!(
        find(&out, "web:").text.contains("http://127.0.0.1:43101/"),
        "{out:#?}"
    );
}
