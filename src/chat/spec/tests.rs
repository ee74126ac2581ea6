//! The definitions against the parser, help and Discord's limits.

use super::*;
use crate::chat::help::help_text;
use crate::chat::{Command, TimeSpec, parse, parse_words};
use crate::domain::ChangeId as Id;

/// A valid value for an argument, as a person or Discord would give it.
fn sample(a: &ArgDef) -> String {
    match a.kind {
        ChangeId => "CHG-1".into(),
        Service => "payments-api".into(),
        Environment => "production".into(),
        // The one word argument with a form of its own.
        Word if a.name == "duration" => "90m".into(),
        Word => "word".into(),
        Text => "some text".into(),
        Time => "2026-12-01T22:00:00+01:00".into(),
        Switch => "true".into(),
        Integer { min, max } => 3.clamp(min, max).to_string(),
        Choice(words) => words[0].into(),
    }
}

fn values<'a>(args: impl Iterator<Item = &'a ArgDef>) -> Vec<(&'a str, String)> {
    args.map(|a| (a.name, sample(a))).collect()
}

/// The words as a person would type them, quoting what has spaces.
fn typed(words: &[String]) -> String {
    let quoted = words.iter().map(|w| match w.contains(' ') {
        true => format!("\"{w}\""),
        false => w.clone(),
    });
    quoted.collect::<Vec<_>>().join(" ")
}

fn parse_both(def: &CommandDef, values: &[(&str, String)]) -> Command {
    let words = words_from_options(def, values).expect("known options");
    let cmd = parse_words(&words).unwrap_or_else(|e| panic!("{words:?}: {e}"));
    let line = typed(&words);
    assert_eq!(parse(&line).as_ref(), Ok(&cmd), "typed as `{line}`");
    assert_eq!(cmd.topic(), def.topic, "{words:?}");
    cmd
}

#[test]
fn every_topic_has_exactly_one_def_in_help_order() {
    for topic in Topic::ALL {
        let defs = commands().iter().filter(|d| d.topic == *topic).count();
        assert_eq!(defs, 1, "{topic:?}");
        assert_eq!(def(*topic).topic, *topic);
    }
    let order: Vec<Topic> = commands().iter().map(|d| d.topic).collect();
    assert_eq!(order, Topic::ALL, "commands() is in help order");
}

#[test]
fn names_and_descriptions_fit_discords_limits() {
    let name_ok = |n: &str| {
        (1..=32).contains(&n.len())
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    let text_ok = |t: &str| (1..=100).contains(&t.chars().count());
    for d in commands() {
        assert!(!d.words.is_empty() && d.words.len() <= 2, "{:?}", d.topic);
        assert!(d.words.iter().all(|w| name_ok(w)), "{:?}", d.words);
        assert!(text_ok(d.summary), "{:?}: {}", d.topic, d.summary);
        assert!(d.args.len() <= 25, "{:?}", d.topic);
        for (i, a) in d.args.iter().enumerate() {
            assert!(name_ok(a.name), "{:?}: `{}`", d.topic, a.name);
            assert!(text_ok(a.help), "{:?} {}: {}", d.topic, a.name, a.help);
            let twice = d.args[..i].iter().any(|b| b.name == a.name);
            assert!(!twice, "{:?}: `{}` twice", d.topic, a.name);
            match a.kind {
                Choice(words) => {
                    assert!((1..=25).contains(&words.len()), "{}", a.name);
                    assert!(words.iter().all(|w| text_ok(w)), "{words:?}");
                }
                Integer { min, max } => assert!(min <= max, "{}", a.name),
                Switch => assert_eq!(a.place, Place::Flag, "a switch is a flag"),
                _ => {}
            }
        }
    }
}

#[test]
fn required_args_come_first_and_only_the_last_positional_is_text() {
    for d in commands() {
        let first_optional = d.args.iter().position(|a| !a.required);
        if let Some(i) = first_optional {
            let late = d.args[i..].iter().find(|a| a.required);
            assert!(
                late.is_none(),
                "{:?}: Discord wants required first",
                d.topic
            );
        }
        let positional: Vec<&ArgDef> = d.args_in(Place::Positional).collect();
        for a in positional.iter().rev().skip(1) {
            assert_ne!(a.kind, Text, "{:?}: TEXT takes the rest", d.topic);
        }
    }
}

#[test]
fn a_sample_line_with_the_required_args_and_with_all_args_parses_to_its_topic() {
    for d in commands() {
        parse_both(d, &values(d.args.iter().filter(|a| a.required)));
        let cmd = parse_both(d, &values(d.args.iter()));
        // Every argument reaches the command: no field is left empty.
        let json = serde_json::to_value(&cmd).expect("json");
        let fields = json.as_object().expect("object");
        for (field, value) in fields {
            let empty = value.is_null() || *value == false || *value == "";
            assert!(!empty, "{:?}: `{field}` not filled by all args", d.topic);
        }
        assert_eq!(fields.len() - 1, d.args.len(), "{:?}: {json}", d.topic);
    }
}

#[test]
fn every_choice_parses() {
    for d in commands() {
        for a in d.args.iter() {
            let Choice(words) = a.kind else { continue };
            for word in words {
                let mut v = values(d.args.iter().filter(|a| a.required));
                v.push((a.name, word.to_string()));
                parse_both(d, &v);
            }
        }
    }
}

#[test]
fn the_parser_knows_exactly_the_flags_of_the_def() {
    for d in commands() {
        let mut words: Vec<String> = d.words.iter().map(|w| w.to_string()).collect();
        words.extend(["--no-such-flag".to_string(), "x".to_string()]);
        let err = parse_words(&words).expect_err("unknown flag");
        let flags: Vec<String> = d
            .args_in(Place::Flag)
            .map(|a| format!("--{}", a.name))
            .collect();
        let hint = match flags.is_empty() {
            true => "it takes no flags".to_string(),
            false => format!("known: {}", flags.join(", ")),
        };
        let expected = format!("unknown flag `--no-such-flag` ({hint})");
        assert_eq!(err.message, expected, "{:?}", d.topic);
        assert_eq!(err.usage, Some(usage_line(d.topic)));
    }
}

#[test]
fn leaving_out_a_required_arg_is_refused_with_the_usage_line() {
    for d in commands() {
        for left_out in d.args.iter().filter(|a| a.required) {
            let rest = d
                .args
                .iter()
                .filter(|a| a.required && a.name != left_out.name);
            // A positional after the missing one: refused before the parser sees it.
            let Ok(words) = words_from_options(d, &values(rest)) else {
                continue;
            };
            let err = parse_words(&words).expect_err("missing");
            assert_eq!(err.usage, Some(usage_line(d.topic)), "{words:?}");
        }
    }
}

#[test]
fn usage_lines_are_derived_from_the_definitions() {
    let lines = [
        (Topic::Help, "help [TOPIC…]"),
        (
            Topic::ChangeOpen,
            "change open SERVICE TITLE… [--env ENV] [--type TYPE] [--risk RISK] [--duration DURATION]",
        ),
        (
            Topic::ChangeList,
            "change list [--state STATE] [--service SERVICE] [--mine]",
        ),
        (Topic::ChangeApprove, "change approve CHG-N [COMMENT…]"),
        (Topic::ChangeReject, "change reject CHG-N REASON…"),
        (Topic::ChangeClose, "change close CHG-N --review TEXT…"),
        (Topic::Calendar, "calendar [--days N] [--service SERVICE]"),
        (
            Topic::FreezeStart,
            "freeze start NAME --until TIME --reason TEXT… [--service SERVICE]",
        ),
        (Topic::FreezeList, "freeze list"),
    ];
    for (topic, line) in lines {
        assert_eq!(usage(def(topic)), line);
        assert_eq!(topic.usage(), line);
    }
}

#[test]
fn help_takes_words_usage_and_summary_from_the_definitions() {
    let all = help_text(None).expect("help");
    for d in commands() {
        assert!(all.contains(&usage(d)), "{all}");
        assert!(all.contains(d.summary), "{all}");
    }
    let change = help_text(Some("change")).expect("help change");
    assert!(change.contains("change approve CHG-N") && !change.contains("freeze"));
    let open = help_text(Some("change open")).expect("help change open");
    assert!(open.contains("--type TYPE: how it is authorized"), "{open}");
    assert!(
        open.contains("(default: normal); one of: standard, normal, emergency"),
        "{open}"
    );
    let approve = help_text(Some("change approve")).expect("help change approve");
    assert!(
        approve.contains("COMMENT…: a comment for the record"),
        "{approve}"
    );
    assert!(help_text(Some("deploy")).is_err());
}

#[test]
fn words_from_options_keeps_values_with_spaces_and_quotes_whole() {
    let title = r#"Fix "the" ledger's  double  spaces"#;
    let v = vec![
        ("service", "payments-api".to_string()),
        ("title", title.to_string()),
        ("duration", "2h".to_string()),
    ];
    let words = words_from_options(def(Topic::ChangeOpen), &v).expect("words");
    assert_eq!(words.len(), 6, "{words:?}");
    match parse_words(&words).expect("parses") {
        Command::Open { title: t, .. } => assert_eq!(t, title),
        other => panic!("{other:?}"),
    }

    let reason = "it's \"urgent\" --really\nsee the ticket";
    let v = vec![
        ("reason", reason.to_string()),
        ("until", "2026-12-01 22:00".to_string()),
        ("name", "year end".to_string()),
    ];
    let words = words_from_options(def(Topic::FreezeStart), &v).expect("words");
    assert_eq!(
        parse_words(&words),
        Ok(Command::FreezeStart {
            name: "year end".into(),
            until: TimeSpec::parse("2026-12-01 22:00").expect("time"),
            service: None,
            reason: reason.into(),
        })
    );

    let v = vec![("id", "12".to_string()), ("comment", "'lgtm'".to_string())];
    let words = words_from_options(def(Topic::ChangeApprove), &v).expect("words");
    assert_eq!(
        parse_words(&words),
        Ok(Command::Approve {
            id: Id(12),
            comment: "'lgtm'".into()
        })
    );

    let v = vec![("mine", "false".to_string()), ("state", String::new())];
    let words = words_from_options(def(Topic::ChangeList), &v).expect("words");
    assert_eq!(words, ["change", "list"], "false and empty are not given");
}

#[test]
fn words_from_options_refuses_what_it_cannot_say() {
    let approve = def(Topic::ChangeApprove);
    let err = words_from_options(approve, &[("colour", "red".into())]).expect_err("unknown");
    assert_eq!(
        err,
        "`change approve` has no option `colour` (options: id, comment)"
    );
    let list = def(Topic::FreezeList);
    let err = words_from_options(list, &[("id", "1".into())]).expect_err("none");
    assert!(err.contains("takes no options"), "{err}");
    let twice = [("id", "1".to_string()), ("id", "2".to_string())];
    assert!(words_from_options(approve, &twice).is_err());
    let dashes = [("id", "1".to_string()), ("comment", "--mine".to_string())];
    let err = words_from_options(approve, &dashes).expect_err("dashes");
    assert!(err.contains("may not start with `--`"), "{err}");
    let shifted = [("comment", "looks good".to_string())];
    let err = words_from_options(approve, &shifted).expect_err("no id");
    assert!(err.contains("needs `id` first"), "{err}");
    let mine = [("mine", "maybe".to_string())];
    assert!(words_from_options(def(Topic::ChangeList), &mine).is_err());
}
