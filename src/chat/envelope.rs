//! The JSON form of a reply, as `changebot chat --json` and the console's `--json` print it:
//! `{"ok": true, "outcome": …, "text": "…"}` or `{"ok": false, "error": {"kind", "message"}}`;
//! between replies the console may print `{"notice": "…"}` (a release announcement).

use serde_json::{Value, json};

use crate::workflow::{ErrorKind, Outcome};

/// A command that worked: its outcome and the reply text a person would read.
pub fn ok(outcome: &Outcome, text: &str) -> Value {
    json!({ "ok": true, "outcome": outcome, "text": text })
}

/// A command that did not: the kind (`usage`, `not_found`, …) and a sentence.
pub fn failed(kind: ErrorKind, message: &str) -> Value {
    json!({ "ok": false, "error": { "kind": kind, "message": message } })
}

/// Something said in the channel the console shows (an announcement), not a reply.
pub fn notice(text: &str) -> Value {
    json!({ "notice": text })
}
