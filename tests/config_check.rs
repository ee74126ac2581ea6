//! `changebot check-config` behaviour: every problem in the config is found at once and reported
//! with its file and line; secrets' presence comes from an injected environment.

use std::path::{Path, PathBuf};

use changebot::config::{AnnouncementKind, Config, ConfigError, ConfigErrors};
use changebot::domain::calendar::FreezeSpan;
use changebot::domain::policy::OWNERS;

const EXAMPLE: &str = include_str!("../config/changebot.toml");
const FILE: &str = "config/changebot.toml";

/// A small valid organisation the scenarios below break in one place each.
const BASE: &str = r#"
[discord]
token_env = "DISCORD_TOKEN"
channels = { releases = "223456789012345678" }

[[person]]
name = "alice"
github = "alice-gh"
groups = ["ops", "cab"]

[[person]]
name = "bob"
groups = ["cab"]

[[person]]
name = "carol"
groups = ["ops"]

[[service]]
name = "api"
repos = ["acme/api"]
owners = "ops"
environments = ["staging", "production"]
windows = ["nightly"]
channel = "releases"

[[policy]]
name = "normal"
when = { type = "normal" }
require = [{ group = "cab", count = 2 }, { group = "owners", count = 1 }]

[[window]]
name = "nightly"
cron = "0 22 * * *"
duration = "3h"
timezone = "Europe/Berlin"
"#;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse_with(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    Config::parse(text, Path::new(FILE), env)
}

fn errors(text: &str) -> Vec<ConfigError> {
    match parse_with(text, &no_env) {
        Ok(_) => panic!("expected config errors, got none"),
        Err(ConfigErrors(errors)) => errors,
    }
}

/// The 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in text"));
    text[..at].matches('\n').count() + 1
}

/// Asserts exactly one error, on the line of `needle`, whose message contains every `words`.
fn assert_one(text: &str, needle: &str, words: &[&str]) {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "expected one error, got: {errs:#?}");
    assert_reported(&errs, text, needle, words);
}

fn assert_reported(errs: &[ConfigError], text: &str, needle: &str, words: &[&str]) {
    let line = line_of(text, needle);
    let found = errs
        .iter()
        .any(|e| e.line == Some(line) && words.iter().all(|w| e.message.contains(w)));
    assert!(
        found,
        "no error on line {line} mentioning {words:?}; got: {errs:#?}"
    );
}

#[test]
fn the_example_config_parses_with_zero_errors() {
    let config = parse_with(EXAMPLE, &no_env).unwrap_or_else(|e| panic!("{e}"));
    let org = &config.org;
    assert_eq!(org.people.len(), 5);
    assert!(org.members("cab").len() >= 2);
    assert!(org.group_names().contains(&"emergency"));
    let payments = org.service("payments-api").expect("payments-api");
    assert_eq!(payments.timezone, chrono_tz::Europe::Berlin);
    assert_eq!(payments.environments, ["staging", "production"]);
    assert!(
        payments.deploy.values().all(|t| t.url.is_none()),
        "all dry runs"
    );
    assert_eq!(
        org.service_for_repo("acme/search").map(|s| s.name.as_str()),
        Some("search-api")
    );
    let names: Vec<&str> = org.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["emergency", "standard", "normal-high", "normal"]);
    assert!(org.policies.iter().all(|p| p.reset_on_push));
    assert!(org.windows.contains_key("weeknights"));
    assert!(matches!(org.freezes[0].span, FreezeSpan::OneOff(_)));
    assert!(matches!(org.freezes[1].span, FreezeSpan::Recurring(_)));
    assert_eq!(config.announcements[0].what, AnnouncementKind::Next24h);
    assert_eq!(config.console.person.as_deref(), Some("alice"));
    assert_eq!(config.server.bind, "127.0.0.1:8080");
    assert_eq!(config.database.url, "sqlite://data/changebot.db");
    assert_eq!(config.discord.as_ref().map(|d| d.channels.len()), Some(2));
}

#[test]
fn the_example_config_file_loads_from_disk() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(FILE);
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.path, path);
    assert_eq!(config.org.services.len(), 2);
}

#[test]
fn an_empty_file_is_a_valid_config_with_defaults() {
    let config = parse_with("", &no_env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.server.public_url, "http://127.0.0.1:8080");
    assert!(config.github.is_none() && config.discord.is_none());
    assert!(config.org.people.is_empty());
}

#[test]
fn an_unknown_key_is_reported_on_its_line() {
    let text = BASE.replace(
        "github = \"alice-gh\"",
        "github = \"alice-gh\"\nslack = \"U123\"",
    );
    assert_one(&text, "slack", &["person alice", "unknown field `slack`"]);
}

#[test]
fn an_unknown_section_is_reported_on_its_line() {
    let text = format!("{BASE}\n[[services]]\nname = \"x\"\n");
    assert_one(
        &text,
        "[[services]]",
        &["unknown key `services`", "did you mean `service`"],
    );
}

#[test]
fn a_value_of_the_wrong_type_is_reported_on_its_line() {
    let text = BASE.replace("duration = \"3h\"", "duration = 3");
    assert_one(
        &text,
        "duration = 3",
        &[
            "window nightly",
            "`duration` must be a string, not integer `3`",
        ],
    );
}

#[test]
fn a_toml_syntax_error_is_reported_on_its_line() {
    let text = BASE.replace("name = \"bob\"", "name = \"bob");
    let errs = errors(&text);
    assert_reported(&errs, &text, "name = \"bob", &["TOML syntax"]);
}

#[test]
fn a_bad_cron_names_the_window_and_its_line() {
    let text = BASE.replace("0 22 * * *", "0 25 * * *");
    assert_one(
        &text,
        "0 25 * * *",
        &["window nightly", "bad cron `0 25 * * *`"],
    );
}

#[test]
fn an_unknown_time_zone_names_the_window_and_its_line() {
    let text = BASE.replace("Europe/Berlin", "Europe/Berln");
    assert_one(
        &text,
        "Europe/Berln",
        &["window nightly", "unknown time zone `Europe/Berln`"],
    );
}

#[test]
fn a_bad_duration_is_reported_on_its_line() {
    let text = BASE.replace("duration = \"3h\"", "duration = \"3 hours\"");
    assert_one(&text, "3 hours", &["window nightly", "duration"]);
}

#[test]
fn a_dangling_owner_group_is_reported() {
    let text = BASE.replace("owners = \"ops\"", "owners = \"opps\"");
    assert_one(
        &text,
        "owners = \"opps\"",
        &["service api", "`opps`", "dangling"],
    );
}

#[test]
fn a_dangling_policy_group_is_reported() {
    let text = BASE.replace("group = \"cab\"", "group = \"board\"");
    assert_one(
        &text,
        "group = \"board\"",
        &["policy normal", "`board`", "dangling"],
    );
}

#[test]
fn a_group_with_only_a_description_exists_but_cannot_fill_seats() {
    let text = format!("{BASE}\n[[group]]\nname = \"board\"\n")
        .replace("group = \"cab\"", "group = \"board\"");
    assert_one(
        &text,
        "group = \"board\"",
        &["board needs 2 approvals but has 0 members"],
    );
}

#[test]
fn a_group_with_fewer_members_than_the_count_is_reported() {
    let text = BASE.replace("groups = [\"cab\"]", "groups = []");
    assert_one(
        &text,
        "group = \"cab\"",
        &["cab needs 2 approvals but has 1 member"],
    );
}

#[test]
fn a_dangling_window_name_is_reported() {
    let text = BASE.replace("windows = [\"nightly\"]", "windows = [\"weekly\"]");
    assert_one(
        &text,
        "windows = [\"weekly\"]",
        &["service api", "window `weekly`"],
    );
}

#[test]
fn dangling_service_and_environment_names_in_a_policy_are_reported() {
    let text = BASE.replace(
        "when = { type = \"normal\" }",
        "when = { type = \"normal\", service = \"apl\", environment = [\"prod\"] }",
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_reported(
        &errs,
        &text,
        "when = {",
        &["policy normal", "when.service `apl`"],
    );
    assert_reported(&errs, &text, "when = {", &["when.environment `prod`"]);
}

#[test]
fn a_bad_change_type_in_a_policy_is_reported() {
    let text = BASE.replace("type = \"normal\"", "type = \"nromal\"");
    assert_one(
        &text,
        "type = \"nromal\"",
        &["policy normal", "`nromal` is not a change type"],
    );
}

#[test]
fn a_freeze_naming_an_unknown_service_is_reported() {
    let text = format!(
        "{BASE}\n[[freeze]]\nname = \"lock\"\nstart = \"2026-01-01T00:00:00Z\"\n\
         end = \"2026-01-02T00:00:00Z\"\nservices = [\"web\"]\n"
    );
    assert_one(&text, "[\"web\"]", &["freeze lock", "service `web`"]);
}

#[test]
fn a_freeze_must_be_one_off_or_recurring_and_end_after_start() {
    let text = format!(
        "{BASE}\n[[freeze]]\nname = \"both\"\nstart = 2026-01-01T00:00:00Z\n\
         end = 2026-01-02T00:00:00Z\ncron = \"0 15 * * Fri\"\nduration = \"1h\"\n\n\
         [[freeze]]\nname = \"backwards\"\nstart = \"2026-01-02T00:00:00Z\"\n\
         end = \"2026-01-01T00:00:00Z\"\n"
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_reported(
        &errs,
        &text,
        "name = \"both\"",
        &["freeze both", "not both"],
    );
    assert_reported(
        &errs,
        &text,
        "end = \"2026-01-01",
        &["freeze backwards", "not after start"],
    );
}

#[test]
fn a_deploy_target_with_a_url_needs_its_secret_env_var_set() {
    let text = format!(
        "{BASE}\n[service.deploy.production]\nurl = \"https://deploy.example/hook\"\n\
         secret_env = \"API_DEPLOY_SECRET\"\n"
    );
    let text = reorder_deploy_after_service(&text);
    assert_one(
        &text,
        "secret_env = \"API_DEPLOY_SECRET\"",
        &[
            "service api",
            "deploy.production",
            "API_DEPLOY_SECRET is not set",
        ],
    );
    let env = |name: &str| (name == "API_DEPLOY_SECRET").then(|| "s3cret".to_string());
    let config = parse_with(&text, &env).unwrap_or_else(|e| panic!("{e}"));
    let target = &config.org.services["api"].deploy["production"];
    assert_eq!(target.url.as_deref(), Some("https://deploy.example/hook"));
    assert_eq!(target.secret_env.as_deref(), Some("API_DEPLOY_SECRET"));
}

#[test]
fn a_deploy_target_with_a_url_but_no_secret_env_is_reported() {
    let text = reorder_deploy_after_service(&format!(
        "{BASE}\n[service.deploy.production]\nurl = \"https://deploy.example/hook\"\n"
    ));
    assert_one(
        &text,
        "url = \"https://deploy",
        &["deploy.production", "no secret_env"],
    );
}

#[test]
fn a_deploy_target_for_an_undeclared_environment_is_reported() {
    let text = reorder_deploy_after_service(&format!("{BASE}\n[service.deploy.prod]\n"));
    assert_one(
        &text,
        "[service.deploy.prod]",
        &["deploy.prod", "not one of its environments"],
    );
}

#[test]
fn environments_without_a_deploy_target_are_dry_runs() {
    let config = parse_with(BASE, &no_env).unwrap_or_else(|e| panic!("{e}"));
    let api = &config.org.services["api"];
    assert_eq!(api.deploy.len(), 2);
    assert!(
        api.deploy
            .values()
            .all(|t| t.url.is_none() && t.timeout.num_minutes() == 15)
    );
    assert_eq!(api.change_duration.num_minutes(), 30);
    assert_eq!(api.timezone, chrono_tz::UTC);
}

#[test]
fn several_errors_are_reported_at_once_in_file_order() {
    let text = BASE
        .replace(
            "groups = [\"cab\"]",
            "groups = [\"cab\"]\nemail = \"bob@example.com\"",
        )
        .replace("owners = \"ops\"", "owners = \"opps\"")
        .replace("0 22 * * *", "every night");
    let errs = errors(&text);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert_reported(
        &errs,
        &text,
        "email",
        &["person bob", "unknown field `email`"],
    );
    assert_reported(&errs, &text, "owners = \"opps\"", &["dangling"]);
    assert_reported(&errs, &text, "every night", &["window nightly", "bad cron"]);
    let lines: Vec<usize> = errs.iter().filter_map(|e| e.line).collect();
    assert!(
        lines.windows(2).all(|w| w[0] <= w[1]),
        "sorted by line: {lines:?}"
    );
    let shown = ConfigErrors(errs).to_string();
    assert_eq!(shown.lines().count(), 3);
    assert!(shown.starts_with(&format!("{FILE}:{}: person bob", line_of(&text, "email"))));
}

#[test]
fn a_missing_discord_token_is_a_warning_not_an_error() {
    let config = parse_with(BASE, &no_env).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w == "discord: DISCORD_TOKEN is not set; Discord is disabled"),
        "{:?}",
        config.warnings
    );
    let env = |name: &str| (name == "DISCORD_TOKEN").then(|| "token".to_string());
    let config = parse_with(BASE, &env).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !config
            .warnings
            .iter()
            .any(|w| w.contains("Discord is disabled")),
        "{:?}",
        config.warnings
    );
    // Without a `cab` channel the board's alerts would only be logged: said once.
    let cab: Vec<_> = config
        .warnings
        .iter()
        .filter(|w| w.contains("no `cab`"))
        .collect();
    assert_eq!(cab.len(), 1, "{:?}", config.warnings);
}

#[test]
fn a_channel_missing_from_discord_channels_is_reported() {
    let text = BASE.replace("channel = \"releases\"", "channel = \"deploys\"");
    assert_one(
        &text,
        "channel = \"deploys\"",
        &["service api", "channel `deploys`"],
    );
}

#[test]
fn duplicate_names_and_identities_are_reported() {
    let text = format!(
        "{}\n[[window]]\nname = \"nightly\"\ncron = \"0 1 * * *\"\nduration = \"1h\"\n",
        BASE.replace("name = \"bob\"", "name = \"bob\"\ngithub = \"Alice-GH\"")
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_reported(
        &errs,
        &text,
        "Alice-GH",
        &["person bob", "already mapped to alice"],
    );
    let second = text.rfind("name = \"nightly\"").expect("second window");
    let line = text[..second].matches('\n').count() + 1;
    let first = line_of(&text, "name = \"nightly\"");
    let dup = errs
        .iter()
        .find(|e| e.line == Some(line))
        .expect("duplicate window reported");
    assert_eq!(
        dup.message,
        format!("window nightly is defined twice (first on line {first})")
    );
}

#[test]
fn the_console_person_must_be_a_person() {
    let text = format!("[console]\nperson = \"zoe\"\n{BASE}");
    assert_one(&text, "person = \"zoe\"", &["console", "`zoe`"]);
}

#[test]
fn a_secret_pasted_into_an_env_key_is_refused_without_echoing_it() {
    let text = format!("[api]\ntoken_env = \"ghp_abc123-secret!\"\n{BASE}");
    let errs = errors(&text);
    assert_reported(
        &errs,
        &text,
        "token_env",
        &["api: token_env", "NAME of an environment variable"],
    );
    assert!(!errs[0].message.contains("ghp_abc123"));
}

#[test]
fn the_owners_requirement_is_checked_against_each_service_owner_group() {
    let text = BASE.replace("count = 1 }", "count = 3 }");
    assert_one(
        &text,
        "group = \"owners\"",
        &[OWNERS, "api (ops) needs 3 approvals but has 2 members"],
    );
}

#[test]
fn config_path_comes_from_the_flag_first() {
    assert_eq!(
        Config::resolve_path(Some(Path::new("x.toml"))),
        PathBuf::from("x.toml")
    );
}

/// `[service.deploy.X]` tables appended at the end would belong to the last `[[window]]`;
/// this moves everything from `[[policy]]` on to the end so they follow the service.
fn reorder_deploy_after_service(text: &str) -> String {
    let at = text.find("[[policy]]").expect("policy");
    let end = text.find("\n[service.deploy").expect("deploy table");
    format!("{}{}\n{}", &text[..at], &text[end + 1..], &text[at..end])
}

#[test]
fn a_lease_that_cannot_outlive_a_renewal_and_one_attempt_is_refused() {
    let text = format!("{EXAMPLE}\n[scheduler]\nlease = \"4s\"\nrenew = \"2s\"\n");
    assert_one(
        &text,
        "lease = \"4s\"",
        &["lease `4s`", "cannot outlive", "renew"],
    );
    // A short lease is fine when renewals come often enough (by default a third of it).
    for ok in [
        format!("{EXAMPLE}\n[scheduler]\nlease = \"3s\"\n"),
        format!("{EXAMPLE}\n[scheduler]\nlease = \"10s\"\nrenew = \"2s\"\n"),
    ] {
        if let Err(e) = parse_with(&ok, &no_env) {
            panic!("{e}");
        }
    }
}

#[test]
fn server_limits_default_for_production_and_are_read_from_server() {
    use changebot::http_server::Limits;
    use std::time::Duration;
    let defaults = parse_with("", &no_env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        defaults.server.limits,
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    );
    let text = "[server]\nheader_timeout = \"5s\"\nbody_timeout = \"2m\"\n\
                idle_timeout = \"90s\"\nmax_connections = 200\n";
    let config = parse_with(text, &no_env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.server.limits,
        Limits {
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(90),
            max_connections: 200,
        }
    );

    let bad = "[server]\nheader_timeout = \"soon\"\nmax_connections = 0\n";
    let errs = errors(bad);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_reported(
        &errs,
        bad,
        "header_timeout",
        &["header_timeout", "not a duration"],
    );
    assert_reported(
        &errs,
        bad,
        "max_connections",
        &["max_connections", "between 1 and"],
    );
    let unknown = "[server]\nkeepalive_timeout = \"5s\"\n";
    assert_one(
        unknown,
        "keepalive_timeout",
        &["unknown field `keepalive_timeout`"],
    );
}

#[test]
fn policy_checks_are_read_and_bad_check_names_are_reported_on_their_line() {
    let good = BASE.replace(
        "require = [",
        "checks = [\"build\", \"test / unit\"]\nrequire = [",
    );
    let config = parse_with(&good, &no_env).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        config
            .org
            .policies
            .iter()
            .any(|p| p.checks == ["build", "test / unit"]),
        "{:#?}",
        config.org.policies
    );
    let twice = BASE.replace(
        "require = [",
        "checks = [\"build\", \"build\"]\nrequire = [",
    );
    assert_one(
        &twice,
        "checks = [\"build\", \"build\"]",
        &["`build` is listed twice"],
    );
    let empty = BASE.replace("require = [", "checks = [\"  \"]\nrequire = [");
    assert_one(&empty, "checks = [\"  \"]", &["is not a check name"]);
}

#[test]
fn a_policy_nobody_could_ever_satisfy_is_an_error_on_its_line() {
    // Without carol: cab 2 + owners 1 needs three people, and only alice and bob exist.
    let text = BASE.replace("[[person]]\nname = \"carol\"\ngroups = [\"ops\"]\n", "");
    assert_one(
        &text,
        "name = \"normal\"",
        &[
            "policy normal",
            "can never be approved",
            "3 approvals from different people",
            "only 2",
        ],
    );
}

#[test]
fn a_policy_some_requesters_could_never_satisfy_is_flagged() {
    let config = parse_with(BASE, &no_env).unwrap_or_else(|e| panic!("{e}"));
    let flagged: Vec<&String> = config
        .warnings
        .iter()
        .filter(|w| w.contains("can never be approved"))
        .collect();
    // The cab is alice and bob, the owners alice and carol: whoever of them asks, two people
    // remain for three seats.
    assert_eq!(flagged.len(), 1, "{:#?}", config.warnings);
    assert!(
        flagged[0].contains("policy normal: a change to api requested by alice or bob or carol"),
        "{}",
        flagged[0]
    );
}

#[test]
fn the_example_has_no_policy_that_someone_could_never_get_approved() {
    let config = parse_with(EXAMPLE, &no_env).unwrap_or_else(|e| panic!("{e}"));
    let flagged: Vec<&String> = config
        .warnings
        .iter()
        .filter(|w| w.contains("can never be approved"))
        .collect();
    assert!(flagged.is_empty(), "{flagged:#?}");
}

#[test]
fn a_bad_cron_or_time_names_the_field_and_what_it_takes_not_the_parsers_words() {
    let cron = EXAMPLE.replacen("0 22 * * Mon-Thu", "0 22 * * Mon-Thx", 1);
    let errs = errors(&cron);
    assert_reported(
        &errs,
        &cron,
        "Mon-Thx",
        &["the day-of-week field `Mon-Thx` is not valid", "Sun-Sat"],
    );
    let time = EXAMPLE.replacen("2026-12-18T00:00:00+01:00", "2026-12-18 midnight", 1);
    let errs = errors(&time);
    assert_reported(
        &errs,
        &time,
        "2026-12-18 midnight",
        &["is not an RFC 3339 time with an offset (e.g. 2026-12-18T00:00:00+01:00)"],
    );
    for e in errs.iter().chain(errors(&cron).iter()) {
        for raw in [
            "illegal",
            "invalid digit",
            "input contains",
            "premature end",
        ] {
            assert!(!e.message.contains(raw), "raw library text: {}", e.message);
        }
    }
}

#[test]
fn a_value_of_the_wrong_type_names_its_key() {
    let text = EXAMPLE
        .replacen("guild_id = \"123456789012345678\"", "guild_id = 123", 1)
        .replacen("duration = \"3h\"", "duration = 3", 1);
    let errs = errors(&text);
    assert_reported(
        &errs,
        &text,
        "guild_id = 123",
        &["[discord]: `guild_id` must be a string, not integer `123` (write it in double quotes)"],
    );
    assert_reported(
        &errs,
        &text,
        "duration = 3",
        &["`duration` must be a string, not integer `3`"],
    );
}

#[test]
fn a_nested_value_of_the_wrong_type_names_its_whole_path() {
    let text = EXAMPLE.replacen("timeout = \"10m\"", "timeout = 10", 1);
    let errs = errors(&text);
    assert_reported(
        &errs,
        &text,
        "timeout = 10",
        &["`deploy.staging.timeout` must be a string, not integer `10`"],
    );
}
