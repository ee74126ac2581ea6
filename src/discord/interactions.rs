//! Interactions: slash commands, button clicks, the reject modal and autocomplete, each run
//! through the same workflow as every other surface, as the Discord user (`discord:ID`, a
//! person only through `[[person]].discord`).
//!
//! Each interaction runs once: its effects commit together with a mark of its id
//! (`store::applying`), and an interaction found marked is not run again (a replica that took
//! the gateway over, a redelivered event). A command that does not finish within two seconds
//! is deferred (Discord allows three), then its reply replaces the "thinking…" message.
//! Refusals and errors are ephemeral: only the person who asked sees them.

use std::sync::Arc;
use std::time::Duration;

use serenity::all::{
    ActionRowComponent, AutocompleteChoice, CommandDataOption, CommandDataOptionValue,
    CommandInteraction, ComponentInteraction, Context, CreateActionRow, CreateAutocompleteResponse,
    CreateInputText, CreateInteractionResponse, CreateInteractionResponseFollowup,
    CreateInteractionResponseMessage, CreateModal, EditInteractionResponse, InputTextStyle,
    Interaction, ModalInteraction,
};

use super::card::{parse_custom_id, reject_id};
use crate::chat::render::render;
use crate::chat::{self, Command};
use crate::clock::Clock;
use crate::store::ChangeFilter;
use crate::workflow::{Actor, Identity, Surface, Workflow, WorkflowError};

/// How long a command may run before its reply is deferred.
const DEFER_AFTER: Duration = Duration::from_secs(2);
/// Discord's limit on a message's content.
const CONTENT_MAX: usize = 2000;

/// What the handler needs.
#[derive(Clone)]
pub struct Shared {
    pub workflow: Workflow,
    pub clock: Arc<dyn Clock>,
}

/// A reply: its text, and whether only the asker sees it.
struct Reply {
    text: String,
    ephemeral: bool,
}

fn fenced(text: &str) -> String {
    let body: String = text.chars().take(CONTENT_MAX - 10).collect();
    format!("```\n{}\n```", body.replace("```", "'''"))
}

impl Shared {
    fn actor(&self, user: &serenity::all::User) -> Actor {
        Actor::resolve(
            &self.workflow.config().org,
            Identity::Discord(user.id.get().to_string()),
            Surface::Discord,
        )
    }

    /// Runs `command` once for interaction `key`: `None` when it already ran.
    async fn run_once(&self, key: String, actor: &Actor, command: Command) -> Option<Reply> {
        match self.workflow.store().delivery_applied(&key).await {
            Ok(true) => return None,
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "discord: cannot check an interaction");
                return Some(Reply {
                    text: "changebot could not read its records; try again in a moment".into(),
                    ephemeral: true,
                });
            }
        }
        let now = self.clock.now();
        let result = crate::store::applying(key, self.workflow.execute(actor, command, now)).await;
        Some(match result {
            Ok(outcome) => Reply {
                text: fenced(&render(&outcome, &self.workflow.config().org)),
                ephemeral: false,
            },
            Err(e) if e.is_already_applied() => return None,
            Err(e @ WorkflowError::Internal(_)) => {
                tracing::error!(error = %e, "discord: a command failed");
                Reply {
                    text: "changebot hit an internal error; the details are in its log".into(),
                    ephemeral: true,
                }
            }
            Err(e) => Reply {
                text: e.to_string(),
                ephemeral: true,
            },
        })
    }

    pub async fn handle(&self, ctx: &Context, interaction: Interaction) {
        let result = match interaction {
            Interaction::Command(c) => self.command(ctx, &c).await,
            Interaction::Component(c) => self.button(ctx, &c).await,
            Interaction::Modal(m) => self.modal(ctx, &m).await,
            Interaction::Autocomplete(a) => self.autocomplete(ctx, &a).await,
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(
                error = %super::sink::describe(&e),
                "discord: could not answer an interaction"
            );
        }
    }

    async fn command(&self, ctx: &Context, c: &CommandInteraction) -> serenity::Result<()> {
        let key = format!("discord:{}", c.id.get());
        let parsed = parse(c);
        let command = match parsed {
            Ok(command) => command,
            Err(why) => {
                return respond(
                    ctx,
                    c,
                    &Reply {
                        text: why,
                        ephemeral: true,
                    },
                )
                .await;
            }
        };
        let actor = self.actor(&c.user);
        let read_only = command.is_read_only();
        let work = {
            let this = self.clone();
            tokio::spawn(async move { this.run_once(key, &actor, command).await })
        };
        tokio::pin!(work);
        if !read_only {
            // A change may wait on the database's writer: acknowledge at once (Discord allows
            // three seconds), then replace "thinking…" with the outcome.
            c.defer(&ctx.http).await?;
            let reply = finished(work.await);
            return finish_deferred(ctx, c, reply).await;
        }
        tokio::select! {
            done = &mut work => match finished(done) {
                Some(reply) => respond(ctx, c, &reply).await,
                None => Ok(()), // handled before (another replica, a redelivery)
            },
            () = tokio::time::sleep(DEFER_AFTER) => {
                c.defer(&ctx.http).await?;
                let reply = finished(work.await);
                finish_deferred(ctx, c, reply).await
            }
        }
    }

    async fn button(&self, ctx: &Context, c: &ComponentInteraction) -> serenity::Result<()> {
        let Some((action, id)) = parse_custom_id(&c.data.custom_id) else {
            return Ok(());
        };
        if action == "reject" {
            // Ask for the reason first; the modal's submit carries the same custom id.
            let input = CreateInputText::new(InputTextStyle::Paragraph, "Reason", "reason")
                .placeholder("What must change before this can go ahead?")
                .max_length(1000)
                .required(true);
            let modal = CreateModal::new(reject_id(id), format!("Reject {id}"))
                .components(vec![CreateActionRow::InputText(input)]);
            return c
                .create_response(&ctx.http, CreateInteractionResponse::Modal(modal))
                .await;
        }
        let key = format!("discord:{}", c.id.get());
        let command = Command::Approve {
            id,
            comment: String::new(),
        };
        // Acknowledged at once, privately; the card itself shows the approval when it is
        // edited.
        c.defer_ephemeral(&ctx.http).await?;
        match self.run_once(key, &self.actor(&c.user), command).await {
            Some(reply) => {
                let edit = EditInteractionResponse::new().content(reply.text);
                c.edit_response(&ctx.http, edit).await.map(|_| ())
            }
            None => c.delete_response(&ctx.http).await,
        }
    }

    async fn modal(&self, ctx: &Context, m: &ModalInteraction) -> serenity::Result<()> {
        let Some(("reject", id)) = parse_custom_id(&m.data.custom_id) else {
            return Ok(());
        };
        let reason = m
            .data
            .components
            .iter()
            .flat_map(|row| row.components.iter())
            .find_map(|c| match c {
                ActionRowComponent::InputText(t) if t.custom_id == "reason" => t.value.clone(),
                _ => None,
            })
            .unwrap_or_default();
        let key = format!("discord:{}", m.id.get());
        m.defer_ephemeral(&ctx.http).await?;
        let reply = match chat::grammar::parse_words(&[
            "change".to_string(),
            "reject".to_string(),
            id.to_string(),
            reason,
        ]) {
            Ok(command) => self.run_once(key, &self.actor(&m.user), command).await,
            Err(e) => Some(Reply {
                text: e.to_string(),
                ephemeral: true,
            }),
        };
        match reply {
            Some(reply) => {
                let edit = EditInteractionResponse::new().content(reply.text);
                m.edit_response(&ctx.http, edit).await.map(|_| ())
            }
            None => m.delete_response(&ctx.http).await,
        }
    }

    /// Open changes whose id or title contains what was typed so far.
    async fn autocomplete(&self, ctx: &Context, a: &CommandInteraction) -> serenity::Result<()> {
        let typed = focused(&a.data.options).unwrap_or_default().to_lowercase();
        let filter = ChangeFilter {
            limit: 100,
            ..ChangeFilter::default()
        };
        let changes = self
            .workflow
            .store()
            .list_changes(&filter)
            .await
            .unwrap_or_default();
        // A typed id finds its change however old it is.
        let exact = match typed.parse::<crate::domain::ChangeId>() {
            Ok(id) => self.workflow.store().change(id).await.ok().flatten(),
            Err(_) => None,
        };
        let choices: Vec<AutocompleteChoice> = exact
            .iter()
            .chain(
                changes
                    .iter()
                    .filter(|c| Some(c.id) != exact.as_ref().map(|e| e.id)),
            )
            .filter(|c| !c.state.is_terminal())
            .filter(|c| {
                typed.is_empty()
                    || c.id.to_string().to_lowercase().contains(&typed)
                    || c.title.to_lowercase().contains(&typed)
            })
            .take(25)
            .map(|c| {
                let name: String = format!("{} · {} · {}", c.id, c.state, c.title)
                    .chars()
                    .take(100)
                    .collect();
                AutocompleteChoice::new(name, c.id.to_string())
            })
            .collect();
        let response = CreateAutocompleteResponse::new().set_choices(choices);
        a.create_response(&ctx.http, CreateInteractionResponse::Autocomplete(response))
            .await
    }
}

/// The reply of spawned work (a panic in it is an internal error, never silence).
fn finished(done: Result<Option<Reply>, tokio::task::JoinError>) -> Option<Reply> {
    match done {
        Ok(reply) => reply,
        Err(e) => {
            tracing::error!(error = %e, "discord: a command's task failed");
            Some(Reply {
                text: "changebot hit an internal error; the details are in its log".into(),
                ephemeral: true,
            })
        }
    }
}

/// Replaces a deferred (public) "thinking…" message: with the outcome; with a private message
/// to the asker for a refusal or error (the public one is deleted); or not at all when the
/// interaction was handled before.
async fn finish_deferred(
    ctx: &Context,
    c: &CommandInteraction,
    reply: Option<Reply>,
) -> serenity::Result<()> {
    match reply {
        Some(reply) if !reply.ephemeral => {
            let edit = EditInteractionResponse::new().content(reply.text);
            c.edit_response(&ctx.http, edit).await.map(|_| ())
        }
        Some(reply) => {
            c.delete_response(&ctx.http).await?;
            let followup = CreateInteractionResponseFollowup::new()
                .content(reply.text)
                .ephemeral(true);
            c.create_followup(&ctx.http, followup).await.map(|_| ())
        }
        None => c.delete_response(&ctx.http).await,
    }
}

async fn respond(ctx: &Context, c: &CommandInteraction, reply: &Reply) -> serenity::Result<()> {
    let message = CreateInteractionResponseMessage::new()
        .content(reply.text.clone())
        .ephemeral(reply.ephemeral);
    c.create_response(&ctx.http, CreateInteractionResponse::Message(message))
        .await
}

/// The value being typed in an autocomplete interaction.
fn focused(options: &[CommandDataOption]) -> Option<String> {
    options.iter().find_map(|o| match &o.value {
        CommandDataOptionValue::Autocomplete { value, .. } => Some(value.clone()),
        CommandDataOptionValue::SubCommand(inner)
        | CommandDataOptionValue::SubCommandGroup(inner) => focused(inner),
        _ => None,
    })
}

/// A slash command as a chat command, through the one command definition.
fn parse(c: &CommandInteraction) -> Result<Command, String> {
    parse_options(&c.data.name, &c.data.options)
}

/// `/NAME [SUBCOMMAND] options…` as a chat command.
fn parse_options(name: &str, options: &[CommandDataOption]) -> Result<Command, String> {
    let (sub, options) = match options.first() {
        Some(CommandDataOption {
            name,
            value: CommandDataOptionValue::SubCommand(inner),
            ..
        }) => (Some(name.as_str()), inner.as_slice()),
        _ => (None, options),
    };
    let def = super::commands::find(name, sub)
        .ok_or_else(|| format!("`/{name}` is not a changebot command; try `/help`"))?;
    let mut values: Vec<(&str, String)> = Vec::new();
    for o in options {
        let value = match &o.value {
            CommandDataOptionValue::String(s) => s.clone(),
            CommandDataOptionValue::Integer(n) => n.to_string(),
            CommandDataOptionValue::Boolean(true) => "true".to_string(),
            CommandDataOptionValue::Boolean(false) => continue,
            other => {
                return Err(format!(
                    "option `{}` has an unexpected kind {:?}",
                    o.name,
                    other.kind()
                ));
            }
        };
        values.push((o.name.as_str(), value));
    }
    let words = crate::chat::spec::words_from_options(def, &values)?;
    chat::parse_words(&words).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::chat::spec::{ArgKind, commands};

    fn sample(kind: ArgKind) -> Value {
        match kind {
            ArgKind::ChangeId => json!({ "type": 3, "value": "CHG-1" }),
            ArgKind::Service => json!({ "type": 3, "value": "payments-api" }),
            ArgKind::Environment => json!({ "type": 3, "value": "production" }),
            ArgKind::Word => json!({ "type": 3, "value": "90m" }),
            ArgKind::Text => json!({ "type": 3, "value": "some words, \"quoted\" too" }),
            ArgKind::Time => json!({ "type": 3, "value": "2026-12-01T22:00:00+01:00" }),
            ArgKind::Switch => json!({ "type": 5, "value": true }),
            ArgKind::Integer { min, .. } => json!({ "type": 4, "value": min }),
            ArgKind::Choice(words) => json!({ "type": 3, "value": words[0] }),
        }
    }

    /// Every command, with every option as Discord delivers it (typed), parses to its own
    /// topic: the registered definitions and the parser accept the same commands.
    #[test]
    fn every_slash_command_with_all_its_options_parses_to_its_command() {
        for def in commands() {
            let mut options: Vec<Value> = def
                .args
                .iter()
                .map(|a| {
                    let mut o = sample(a.kind);
                    o["name"] = json!(a.name);
                    o
                })
                .collect();
            let name = def.words[0];
            if let [_, sub, ..] = def.words {
                options = vec![json!({ "name": sub, "type": 1, "options": options })];
            }
            let options: Vec<CommandDataOption> =
                serde_json::from_value(Value::Array(options)).expect("options");
            let command = parse_options(name, &options)
                .unwrap_or_else(|e| panic!("{}: {e}", def.words.join(" ")));
            assert_eq!(command.topic(), def.topic, "{}", def.words.join(" "));
        }
    }

    #[test]
    fn a_switch_given_true_is_on_and_false_is_off() {
        let opts = |on: bool| -> Vec<CommandDataOption> {
            serde_json::from_value(json!([{ "name": "list", "type": 1, "options": [
                { "name": "mine", "type": 5, "value": on }
            ] }]))
            .expect("options")
        };
        assert!(matches!(
            parse_options("change", &opts(true)),
            Ok(Command::List { mine: true, .. })
        ));
        assert!(matches!(
            parse_options("change", &opts(false)),
            Ok(Command::List { mine: false, .. })
        ));
    }
}
