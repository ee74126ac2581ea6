//! From TOML text to the raw sections, collecting every syntax and shape error on the way.
//!
//! The document is parsed once into a spanned tree; each section, and each entry of an array of
//! tables, is deserialized on its own, so one bad `[[person]]` does not hide a bad `[[window]]`.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::raw::*;
use super::report::Ctx;

/// One `[[array]]` section: the entries that deserialized, and what could still be read of
/// those that did not (already reported), so references to them are not reported as dangling.
#[derive(Debug)]
pub struct Section<T> {
    pub entries: Vec<T>,
    pub broken: Vec<Broken>,
}

impl<T> Default for Section<T> {
    fn default() -> Self {
        Section {
            entries: Vec::new(),
            broken: Vec::new(),
        }
    }
}

impl<T> Section<T> {
    /// Whether every entry's name is known; when not, checks that refer *into* this section
    /// stay quiet rather than report names that only look missing.
    pub fn complete(&self) -> bool {
        self.broken.iter().all(|b| b.name.is_some())
    }

    pub fn broken_names(&self) -> impl Iterator<Item = &str> {
        self.broken.iter().filter_map(|b| b.name.as_deref())
    }
}

/// An entry that did not deserialize: its name and its string (or string list) values.
#[derive(Debug, Default)]
pub struct Broken {
    pub name: Option<String>,
    pub strings: BTreeMap<String, Vec<String>>,
}

impl Broken {
    fn of(item: &Spanned<DeValue<'_>>) -> Self {
        let mut out = Broken::default();
        let Some(table) = item.get_ref().as_table() else {
            return out;
        };
        for (k, v) in table.iter() {
            let values: Vec<String> = match v.get_ref() {
                DeValue::String(s) => vec![s.to_string()],
                DeValue::Array(a) => a
                    .iter()
                    .filter_map(|x| x.get_ref().as_str().map(str::to_string))
                    .collect(),
                _ => continue,
            };
            out.strings.insert(k.get_ref().to_string(), values);
        }
        out.name = match out.strings.get("name").map(Vec::as_slice) {
            Some([name]) => Some(name.clone()),
            _ => None,
        };
        out
    }

    /// The values of `key` (empty when absent).
    pub fn list(&self, key: &str) -> &[String] {
        self.strings.get(key).map_or(&[], Vec::as_slice)
    }
}

#[derive(Debug, Default)]
pub struct RawDoc {
    pub server: RawServer,
    pub database: RawDatabase,
    pub api: RawApi,
    pub github: Option<RawGithub>,
    pub discord: Option<RawDiscord>,
    /// Set when `[discord]` was written but could not be read.
    pub discord_broken: bool,
    pub console: RawConsole,
    pub scheduler: RawScheduler,
    pub persons: Section<RawPerson>,
    pub groups: Section<RawGroup>,
    pub services: Section<RawService>,
    pub policies: Section<RawPolicy>,
    pub windows: Section<RawWindow>,
    pub freezes: Section<RawFreeze>,
    pub announcements: Section<RawAnnouncement>,
}

const TABLES: &[&str] = &[
    "server",
    "database",
    "api",
    "github",
    "discord",
    "console",
    "scheduler",
];
const ARRAYS: &[&str] = &[
    "person",
    "group",
    "service",
    "policy",
    "window",
    "freeze",
    "announcement",
];

/// Reads the document. `None` when the TOML itself does not parse (every syntax error reported).
pub fn read(ctx: &mut Ctx<'_>) -> Option<RawDoc> {
    let text = ctx.text;
    let (root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        for e in syntax {
            ctx.error(e.span(), format!("TOML syntax: {}", e.message().trim()));
        }
        return None;
    }
    let mut doc = RawDoc::default();
    for (key, value) in root.into_inner() {
        let name: &str = key.get_ref();
        match name {
            "server" => doc.server = table(ctx, name, value).unwrap_or_default(),
            "database" => doc.database = table(ctx, name, value).unwrap_or_default(),
            "api" => doc.api = table(ctx, name, value).unwrap_or_default(),
            "github" => doc.github = table(ctx, name, value),
            "discord" => {
                doc.discord = table(ctx, name, value);
                doc.discord_broken = doc.discord.is_none();
            }
            "console" => doc.console = table(ctx, name, value).unwrap_or_default(),
            "scheduler" => doc.scheduler = table(ctx, name, value).unwrap_or_default(),
            "person" => doc.persons = array(ctx, name, value),
            "group" => doc.groups = array(ctx, name, value),
            "service" => doc.services = array(ctx, name, value),
            "policy" => doc.policies = array(ctx, name, value),
            "window" => doc.windows = array(ctx, name, value),
            "freeze" => doc.freezes = array(ctx, name, value),
            "announcement" => doc.announcements = array(ctx, name, value),
            other => {
                let hint = if TABLES.contains(&other.trim_end_matches('s'))
                    || ARRAYS.contains(&other.trim_end_matches('s'))
                {
                    format!(" (did you mean `{}`?)", other.trim_end_matches('s'))
                } else {
                    String::new()
                };
                ctx.error(
                    Some(key.span()),
                    format!(
                        "unknown key `{other}`{hint}; known sections: [{}] and [[{}]]",
                        TABLES.join("], ["),
                        ARRAYS.join("]], [[")
                    ),
                );
            }
        }
    }
    Some(doc)
}

/// A `[name]` section.
fn table<T: DeserializeOwned>(
    ctx: &mut Ctx<'_>,
    name: &str,
    value: Spanned<DeValue<'_>>,
) -> Option<T> {
    if !value.get_ref().is_table() {
        ctx.error(
            Some(value.span()),
            format!("`{name}` must be a table ([{name}])"),
        );
        return None;
    }
    let keys = keys_of(&value);
    match T::deserialize(ValueDeserializer::from(value)) {
        Ok(v) => Some(v),
        Err(e) => {
            ctx.error(e.span(), format!("[{name}]: {}", explain(&e, &keys)));
            None
        }
    }
}

/// A `[[name]]` array of tables, entry by entry.
fn array<T: DeserializeOwned>(
    ctx: &mut Ctx<'_>,
    name: &str,
    value: Spanned<DeValue<'_>>,
) -> Section<T> {
    let mut section = Section::default();
    let span = value.span();
    let DeValue::Array(items) = value.into_inner() else {
        ctx.error(
            Some(span),
            format!("`{name}` must be an array of tables: write each entry as [[{name}]]"),
        );
        section.broken.push(Broken::default());
        return section;
    };
    for (i, item) in items.into_iter().enumerate() {
        let label = entry_label(name, i, &item);
        if !item.get_ref().is_table() {
            ctx.error(Some(item.span()), format!("{label}: must be a table"));
            section.broken.push(Broken::default());
            continue;
        }
        let broken = Broken::of(&item);
        let keys = keys_of(&item);
        match T::deserialize(ValueDeserializer::from(item)) {
            Ok(v) => section.entries.push(v),
            Err(e) => {
                ctx.error(e.span(), format!("{label}: {}", explain(&e, &keys)));
                section.broken.push(broken);
            }
        }
    }
    section
}

/// The keys of a table, nested ones as dotted paths (`deploy.production.timeout`), and where
/// their values are written.
fn keys_of(value: &Spanned<DeValue<'_>>) -> Vec<(String, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    collect_keys(value, "", &mut out);
    out
}

fn collect_keys(
    value: &Spanned<DeValue<'_>>,
    prefix: &str,
    out: &mut Vec<(String, std::ops::Range<usize>)>,
) {
    let Some(table) = value.get_ref().as_table() else {
        return;
    };
    for (k, v) in table.iter() {
        let path = format!("{prefix}{}", k.get_ref());
        out.push((path.clone(), v.span()));
        collect_keys(v, &format!("{path}."), out);
    }
}

/// A deserialization error as a sentence that names the key whose value is wrong: serde's
/// `invalid type: integer `3`, expected a string` becomes `` `duration` must be a string, not
/// integer `3` ``.
fn explain(e: &toml::de::Error, keys: &[(String, std::ops::Range<usize>)]) -> String {
    let message = e.message().trim();
    // The innermost key whose value holds the error.
    let key = e.span().and_then(|at| {
        keys.iter()
            .filter(|(_, value)| value.start <= at.start && at.end <= value.end)
            .min_by_key(|(_, value)| value.len())
            .map(|(k, _)| k.as_str())
    });
    let wrong_type = message
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.split_once(", expected "));
    match (key, wrong_type) {
        (Some(key), Some((found, expected))) => {
            let quote = if expected.contains("string") && !found.starts_with("string") {
                " (write it in double quotes)"
            } else {
                ""
            };
            format!("`{key}` must be {expected}, not {found}{quote}")
        }
        (Some(key), None) if !message.contains(&format!("`{key}`")) => {
            format!("`{key}`: {message}")
        }
        _ => message.to_string(),
    }
}

/// `window weeknights` when the entry has a name, else `[[window]] #2`.
fn entry_label(section: &str, index: usize, item: &Spanned<DeValue<'_>>) -> String {
    match item
        .get_ref()
        .as_table()
        .and_then(|t| t.get("name"))
        .and_then(|n| n.get_ref().as_str())
    {
        Some(n) => format!("{section} {n}"),
        None => format!("[[{section}]] #{}", index + 1),
    }
}

/// The names a section declares, valid or not, to check references against.
#[derive(Debug, Default)]
pub struct Declared {
    pub names: std::collections::BTreeSet<String>,
    /// False when some entry's name could not be read.
    pub complete: bool,
}

impl Declared {
    pub fn of<T>(section: &Section<T>, name: impl Fn(&T) -> &str) -> Self {
        let names = section
            .entries
            .iter()
            .map(|e| name(e).to_string())
            .chain(section.broken_names().map(str::to_string))
            .collect();
        Declared {
            names,
            complete: section.complete(),
        }
    }

    /// Whether a reference to `name` resolves (always, when some entry's name is unknown).
    pub fn resolves(&self, name: &str) -> bool {
        !self.complete || self.names.contains(name)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn read_text(text: &str) -> (Option<RawDoc>, Vec<super::super::ConfigError>) {
        let env = |_: &str| None;
        let mut ctx = Ctx::new(Path::new("c.toml"), text, &env);
        let doc = read(&mut ctx);
        (doc, ctx.errors)
    }

    #[test]
    fn one_bad_entry_does_not_hide_the_others_and_keeps_its_name() {
        let text = "[[window]]\nname = \"a\"\ncron = 1\nduration = \"1h\"\n\n\
                    [[window]]\nname = \"b\"\ncron = \"0 1 * * *\"\nduration = \"1h\"\n\n\
                    [[person]]\nname = \"x\"\ngroups = [\"ops\"]\nshoe = 42\n";
        let (doc, errors) = read_text(text);
        let doc = doc.expect("parses");
        assert_eq!(errors.len(), 2, "{errors:?}");
        let mut lines: Vec<_> = errors.iter().filter_map(|e| e.line).collect();
        lines.sort_unstable();
        assert_eq!(lines, [3, 14]);
        assert_eq!(doc.windows.entries.len(), 1);
        assert_eq!(doc.windows.broken_names().collect::<Vec<_>>(), ["a"]);
        assert!(doc.windows.complete());
        assert_eq!(doc.persons.broken[0].list("groups"), ["ops"]);
    }

    #[test]
    fn when_values_take_a_word_or_a_list_and_times_take_strings_or_toml_datetimes() {
        let text = "[[policy]]\nname = \"p\"\nwhen = { type = \"normal\", risk = [\"low\", \"high\"] }\n\
                    require = []\n\n[[freeze]]\nname = \"f\"\nstart = 2026-01-01T00:00:00Z\n\
                    end = \"2026-01-02T00:00:00Z\"\n";
        let (doc, errors) = read_text(text);
        assert!(errors.is_empty(), "{errors:?}");
        let doc = doc.expect("parses");
        let when = &doc.policies.entries[0].when;
        assert_eq!(
            when.kind.as_ref().map(|k| k.get_ref().0.clone()),
            Some(vec!["normal".into()])
        );
        assert_eq!(when.risk.as_ref().map(|k| k.get_ref().0.len()), Some(2));
        let f = &doc.freezes.entries[0];
        assert_eq!(
            f.start.as_ref().map(|s| s.get_ref().0.as_str()),
            Some("2026-01-01T00:00:00Z")
        );
    }

    #[test]
    fn every_syntax_error_is_reported_and_nothing_else_is_checked() {
        let (doc, errors) = read_text("a = \nb = [1,\n");
        assert!(doc.is_none());
        assert!(!errors.is_empty());
        assert!(errors.iter().all(|e| e.message.starts_with("TOML syntax")));
    }
}
