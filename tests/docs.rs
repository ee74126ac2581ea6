//! The user-facing docs (README.md and docs/) against the code they describe:
//!
//! - every key of the config structs (`src/config/raw.rs`) is documented in its section of
//!   docs/configuration.md, and no documented key is made up;
//! - the complete example there is a valid config, and every TOML snippet in the docs uses
//!   only real keys;
//! - docs/chat.md's command reference is what `chat::help::markdown_reference` generates
//!   (`CHANGEBOT_BLESS=1 cargo test --test docs` rewrites it);
//! - every command shown in a code block parses: console lines (`> …`) with the chat parser,
//!   `changebot …` and `cargo run … -- …` lines with the real command line (and `changebot
//!   chat`'s words with the chat parser). A block after `<!-- bad-input -->` shows input that
//!   must be refused;
//! - the webhook and HTTP docs name the real headers, routes and metric families, and the
//!   signature example is what changebot computes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use changebot::chat;
use changebot::cli::{Cli, Cmd};
use changebot::config::Config;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(rel: &str) -> String {
    let path = Path::new(ROOT).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// README.md and every docs/*.md, by path relative to the repository.
fn markdown_files() -> Vec<(String, String)> {
    let mut names: Vec<String> = std::fs::read_dir(Path::new(ROOT).join("docs"))
        .expect("docs/ exists")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    names.sort();
    names.insert(0, "README.md".to_string());
    names.into_iter().map(|n| (n.clone(), read(&n))).collect()
}

/// A fenced code block: its language, the line its first content line is on, its lines, and
/// whether `<!-- bad-input -->` stands on the line before its fence.
struct Block {
    lang: String,
    line: usize,
    lines: Vec<String>,
    bad_input: bool,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    let mut previous = "";
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(lang)) => {
                open = Some(Block {
                    lang: lang.trim().to_string(),
                    line: n + 2,
                    lines: Vec::new(),
                    bad_input: previous.trim() == "<!-- bad-input -->",
                });
            }
            (Some(_), Some(_)) => out.extend(open.take()),
            (Some(b), None) => b.lines.push(line.to_string()),
            (None, None) => {}
        }
        previous = line;
    }
    out
}

/// `(level, text, line index)` of every heading outside code blocks.
fn headings(text: &str) -> Vec<(usize, String, usize)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            let level = line.chars().take_while(|c| *c == '#').count();
            out.push((level, line[level..].trim().to_string(), n));
        }
    }
    out
}

// ------------------------------------------------------------------------------------------
// Configuration

/// The serde structs of `src/config/raw.rs`: struct name → its TOML keys (serde renames
/// applied), read from the source text.
fn raw_structs() -> BTreeMap<String, Vec<String>> {
    let source = read("src/config/raw.rs");
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut rename: Option<String> = None;
    for line in source.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("pub struct ") {
            current = rest.strip_suffix(" {").map(str::to_string);
            if let Some(name) = &current {
                out.insert(name.clone(), Vec::new());
            }
            continue;
        }
        let Some(name) = &current else { continue };
        if line == "}" {
            current = None;
        } else if let Some(at) = line.find("rename = \"") {
            let rest = &line[at + "rename = \"".len()..];
            rename = rest.split('"').next().map(str::to_string);
        } else if let Some((field, _)) = line.strip_prefix("pub ").and_then(|l| l.split_once(':')) {
            let key = rename.take().unwrap_or_else(|| field.trim().to_string());
            out.get_mut(name).expect("inserted").push(key);
        }
    }
    out
}

/// Where each struct is documented in docs/configuration.md: the heading that names it.
const SECTIONS: &[(&str, &str)] = &[
    ("RawServer", "`[server]`"),
    ("RawDatabase", "`[database]`"),
    ("RawApi", "`[api]`"),
    ("RawGithub", "`[github]`"),
    ("RawDiscord", "`[discord]`"),
    ("RawConsole", "`[console]`"),
    ("RawScheduler", "`[scheduler]`"),
    ("RawPerson", "`[[person]]`"),
    ("RawGroup", "`[[group]]`"),
    ("RawService", "`[[service]]`"),
    ("RawDeploy", "`[service.deploy.ENV]`"),
    ("RawPolicy", "`[[policy]]`"),
    ("RawWhen", "`when = { … }`"),
    ("RawRequirement", "`require = [{ … }]`"),
    ("RawWindow", "`[[window]]`"),
    ("RawFreeze", "`[[freeze]]`"),
    ("RawAnnouncement", "`[[announcement]]`"),
];

/// The keys in the first column of the tables under `heading` (up to the next heading).
fn documented_keys(doc: &str, heading: &str) -> Option<Vec<String>> {
    let all = headings(doc);
    let at = all.iter().position(|(_, text, _)| text == heading)?;
    let from = all[at].2 + 1;
    let to = all.get(at + 1).map_or(usize::MAX, |h| h.2);
    let keys = doc
        .lines()
        .enumerate()
        .filter(|(n, _)| (from..to).contains(n));
    let keys = keys.filter_map(|(_, line)| line.strip_prefix("| `")?.split_once("` |"));
    Some(keys.map(|(key, _)| key.to_string()).collect())
}

#[test]
fn every_config_key_is_documented_in_its_section_and_no_other_key_is() {
    let doc = read("docs/configuration.md");
    let structs = raw_structs();
    assert!(structs.len() >= 15, "raw.rs was not read: {structs:?}");
    let mut problems = Vec::new();
    for (name, keys) in &structs {
        let Some((_, heading)) = SECTIONS.iter().find(|(s, _)| s == name) else {
            problems.push(format!(
                "{name} is new: add its heading to SECTIONS and document it"
            ));
            continue;
        };
        let Some(documented) = documented_keys(&doc, heading) else {
            problems.push(format!(
                "no heading `{heading}` in docs/configuration.md ({name})"
            ));
            continue;
        };
        for key in keys.iter().filter(|k| !documented.contains(k)) {
            problems.push(format!("{heading}: key `{key}` is not documented"));
        }
        for key in documented.iter().filter(|k| !keys.contains(k)) {
            problems.push(format!(
                "{heading}: `{key}` is documented but is no key of {name}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn any_secret(_: &str) -> Option<String> {
    Some("dummy-secret".to_string())
}

#[test]
fn the_complete_example_config_is_valid() {
    let doc = read("docs/configuration.md");
    let (_, after) = doc
        .split_once("<!-- complete-example -->")
        .expect("docs/configuration.md marks its complete example");
    let example = blocks(after).into_iter().next().expect("a block follows");
    assert_eq!(example.lang, "toml");
    let text = example.lines.join("\n");
    if let Err(errors) = Config::parse(&text, Path::new("docs/configuration.md"), &any_secret) {
        panic!("the complete example does not parse:\n{errors}");
    }
}

/// Which struct a key of `parent` holds, where that is another struct.
fn nested(parent: &str, key: &str) -> Option<&'static str> {
    Some(match (parent, key) {
        ("RawService", "deploy") => "RawDeploy*",
        ("RawPolicy", "when") => "RawWhen",
        ("RawPolicy", "require") => "RawRequirement",
        _ => return None,
    })
}

/// Checks the keys of `table`, read as `name`, against raw.rs; `RawDeploy*` is a map from
/// environment to a `RawDeploy`.
fn check_keys(
    value: &toml::Value,
    name: &str,
    structs: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    let tables: Vec<&toml::Table> = match value {
        toml::Value::Table(t) => vec![t],
        toml::Value::Array(a) => a.iter().filter_map(toml::Value::as_table).collect(),
        _ => return Vec::new(),
    };
    let mut problems = Vec::new();
    for table in tables {
        if let Some(each) = name.strip_suffix('*') {
            for v in table.values() {
                problems.extend(check_keys(v, each, structs));
            }
            continue;
        }
        let keys = &structs[name];
        for (key, v) in table {
            if !keys.contains(key) {
                problems.push(format!("`{key}` is no key of {name}"));
            } else if let Some(inner) = nested(name, key) {
                problems.extend(check_keys(v, inner, structs));
            }
        }
    }
    problems
}

#[test]
fn every_toml_snippet_in_the_docs_uses_real_keys() {
    let structs = raw_structs();
    let top: BTreeMap<&str, &str> = SECTIONS
        .iter()
        .filter_map(|(s, h)| {
            let inner = h.trim_matches('`').trim_matches(|c| c == '[' || c == ']');
            (!inner.contains(['.', ' '])).then_some((inner, *s))
        })
        .collect();
    let mut problems = Vec::new();
    for (file, text) in markdown_files() {
        for b in blocks(&text).into_iter().filter(|b| b.lang == "toml") {
            let at = format!("{file}:{}", b.line);
            let table: toml::Table = match b.lines.join("\n").parse() {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("{at}: not TOML: {e}"));
                    continue;
                }
            };
            for (key, value) in &table {
                match top.get(key.as_str()) {
                    None => problems.push(format!("{at}: `{key}` is no config section")),
                    Some(s) => problems.extend(
                        check_keys(value, s, &structs)
                            .into_iter()
                            .map(|p| format!("{at}: [{key}] {p}")),
                    ),
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ------------------------------------------------------------------------------------------
// The chat reference

const GENERATED: &str = "<!-- generated: commands -->";
const END_GENERATED: &str = "<!-- end generated -->";

#[test]
fn the_chat_reference_is_generated_from_the_command_definitions() {
    let path = PathBuf::from(ROOT).join("docs/chat.md");
    let doc = read("docs/chat.md");
    let (head, rest) = doc
        .split_once(GENERATED)
        .expect("docs/chat.md has the start marker");
    let (current, tail) = rest.split_once(END_GENERATED).expect("and the end marker");
    let wanted = format!("\n{}\n", chat::help::markdown_reference());
    if current == wanted {
        return;
    }
    if std::env::var("CHANGEBOT_BLESS").is_ok_and(|v| v == "1") {
        let text = format!("{head}{GENERATED}{wanted}{END_GENERATED}{tail}");
        std::fs::write(&path, text).expect("docs/chat.md is writable");
        return;
    }
    panic!(
        "docs/chat.md's command reference is out of date with src/chat/spec.rs; run \
         `CHANGEBOT_BLESS=1 cargo test --test docs` and commit the result"
    );
}

// ------------------------------------------------------------------------------------------
// Commands shown in the docs

/// Splits a shell line into words as sh would for plain commands: quotes, backslashes, and a
/// comment or `|`, `;`, `&&`, `>` ending the command.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                w.extend(chars.by_ref().take_while(|c| *c != '\''));
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => w.extend(chars.next()),
                        c => w.push(c),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            '#' if word.is_none() => break,
            '|' | ';' | '&' | '>' | '<' if word.is_none() => break,
            c if c.is_whitespace() => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// A command found in a code block.
enum Shown {
    /// A console line, as typed after the `> ` prompt.
    Console(String),
    /// The arguments of `changebot` (without the program name).
    Cli(Vec<String>),
}

fn command_of(line: &str) -> Option<Shown> {
    let line = line.trim();
    if let Some(typed) = line.strip_prefix("> ") {
        return Some(Shown::Console(typed.to_string()));
    }
    let line = line.strip_prefix("$ ").unwrap_or(line);
    let words = shell_words(line);
    let mut words = words
        .iter()
        .skip_while(|w| w.contains('=') && !w.starts_with('-'));
    match words.next().map(String::as_str) {
        Some("changebot") => Some(Shown::Cli(words.cloned().collect())),
        Some("cargo") if words.clone().next().is_some_and(|w| w == "run") => {
            let args = words.skip_while(|w| *w != "--").skip(1);
            Some(Shown::Cli(args.cloned().collect()))
        }
        _ => None,
    }
}

/// Whether the command parses; the error when not.
fn parses(shown: &Shown) -> Result<(), String> {
    match shown {
        // As the console reads a line (`console::reply`).
        Shown::Console(typed) => chat::parse(typed.trim().trim_start_matches('/'))
            .map(drop)
            .map_err(|e| e.to_string()),
        Shown::Cli(args) => {
            let argv = std::iter::once("changebot".to_string()).chain(args.iter().cloned());
            let cli = match Cli::read(argv) {
                Ok(cli) => cli,
                Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            };
            match cli.command {
                Cmd::Chat { person: None, .. } => Err("changebot chat needs --as".to_string()),
                Cmd::Chat { words, .. } => chat::parse_words(&words)
                    .map(drop)
                    .map_err(|e| e.to_string()),
                _ => Ok(()),
            }
        }
    }
}

const COMMAND_BLOCKS: &[&str] = &["text", "sh", "shell", "console", "bash"];

#[test]
fn every_command_shown_in_the_docs_parses() {
    let mut problems = Vec::new();
    let mut seen = 0;
    for (file, text) in markdown_files() {
        for b in blocks(&text) {
            if !COMMAND_BLOCKS.contains(&b.lang.as_str()) {
                continue;
            }
            let mut found = 0;
            // A line ending in `\` goes on on the next one.
            let joined = b.lines.join("\n").replace("\\\n", " ");
            // In a transcript only the prompted lines are commands; the rest is output.
            let prompted = |l: &str| l.starts_with("$ ") || l.starts_with("> ");
            let transcript = joined.lines().any(prompted);
            for (n, line) in joined.lines().enumerate() {
                if transcript && !prompted(line.trim_start()) {
                    continue;
                }
                let Some(shown) = command_of(line) else {
                    continue;
                };
                found += 1;
                let at = format!("{file}:{} `{}`", b.line + n, line.trim());
                match (parses(&shown), b.bad_input) {
                    (Ok(()), false) | (Err(_), true) => {}
                    (Err(e), false) => problems.push(format!("{at}: does not parse: {e}")),
                    (Ok(()), true) => problems.push(format!("{at}: marked bad-input but parses")),
                }
            }
            if b.bad_input && found == 0 {
                problems.push(format!(
                    "{file}:{}: a bad-input block without commands",
                    b.line
                ));
            }
            seen += found;
        }
    }
    assert!(
        seen >= 20,
        "only {seen} commands found; is the block detection broken?"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_command_finder_reads_shell_and_console_lines() {
    let cli = |line: &str| match command_of(line) {
        Some(Shown::Cli(args)) => args,
        _ => panic!("{line}: not a changebot command"),
    };
    assert_eq!(
        cli("$ changebot chat --as bob change reject CHG-1 \"not tonight\"  # a comment"),
        [
            "chat",
            "--as",
            "bob",
            "change",
            "reject",
            "CHG-1",
            "not tonight"
        ]
    );
    assert_eq!(
        cli("cargo run --release -- serve --console"),
        ["serve", "--console"]
    );
    assert_eq!(
        cli("CHANGEBOT_LOG=debug changebot migrate | tee log"),
        ["migrate"]
    );
    assert!(command_of("cargo test").is_none());
    assert!(matches!(
        command_of("> change show CHG-1"),
        Some(Shown::Console(_))
    ));
    assert!(parses(&Shown::Cli(vec!["serve".into(), "--nope".into()])).is_err());
    assert!(
        parses(&Shown::Cli(vec![
            "chat".into(),
            "change".into(),
            "show".into()
        ]))
        .is_err()
    );
    assert!(parses(&Shown::Console("change reject CHG-1".into())).is_err());
}

// ------------------------------------------------------------------------------------------
// Webhooks and HTTP

#[test]
fn the_webhook_doc_names_the_real_headers_and_its_signature_example_is_right() {
    use changebot::deploy;
    let doc = read("docs/deployment-webhook.md");
    for header in [
        deploy::HEADER_EVENT,
        deploy::HEADER_DELIVERY,
        deploy::HEADER_IDEMPOTENCY_KEY,
        deploy::HEADER_SIGNATURE,
    ] {
        assert!(
            doc.contains(&format!("`{header}`")),
            "{header} is not documented"
        );
    }
    // The worked example: this secret and body give this header value.
    let secret = "example-secret";
    let body = r#"{"deployment_id":"DEP-7","status":"succeeded"}"#;
    assert!(
        doc.contains(secret) && doc.contains(body),
        "the example's inputs moved"
    );
    let signature = deploy::sign(secret.as_bytes(), body.as_bytes());
    assert!(
        doc.contains(&signature),
        "the example should show {signature}"
    );
}

/// The paths routed in `file`, as written there (`.route("/path", …)`).
fn routes(file: &str) -> Vec<String> {
    let source = read(file);
    let paths = source.split(".route(\"").skip(1);
    paths
        .filter_map(|r| r.split('"').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_http_doc_covers_every_route_and_metric_family() {
    let doc = read("docs/http-api.md");
    let mut missing = Vec::new();
    for path in routes("src/http.rs")
        .into_iter()
        .chain(routes("src/web/mod.rs"))
    {
        if !doc.contains(&format!("`{path}`")) && !doc.contains(&format!(" {path}`")) {
            missing.push(path);
        }
    }
    let metrics = read("src/metrics.rs");
    for family in metrics.split("registry.register(").skip(1) {
        let name = family
            .trim_start()
            .trim_start_matches('"')
            .split('"')
            .next()
            .unwrap_or("");
        if !doc.contains(&format!("changebot_{name}")) {
            missing.push(format!("changebot_{name}"));
        }
    }
    assert!(missing.is_empty(), "not documented: {missing:?}");
}
