//! The bot side of the tests: a real serenity `Client` on the fake, whose event handler
//! reports what it saw and answers interactions the way a bot would.

use std::sync::Arc;

use serenity::all::{
    ClientBuilder, Context, CreateActionRow, CreateButton, CreateEmbed, CreateInteractionResponse,
    CreateInteractionResponseFollowup, CreateInteractionResponseMessage, EditInteractionResponse,
    EventHandler, GatewayIntents, Interaction, Ready, ResumedEvent,
};
use serenity::http::Http;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::support::discord::{FakeDiscord, WAIT};

pub const TOKEN: &str = "test-token";

/// What the bot's event handler saw.
#[derive(Debug)]
pub enum Seen {
    Ready(Box<Ready>),
    Resumed,
    Interaction(Box<Interaction>),
    HandlerError(String),
}

/// Forwards events to the test and answers interactions the way a bot would: a command gets a
/// message with an embed and a button, a button click updates that message, a modal submit is
/// deferred, then its response edited, then followed up.
struct Recorder {
    tx: UnboundedSender<Seen>,
}

#[serenity::async_trait]
impl EventHandler for Recorder {
    async fn ready(&self, _ctx: Context, ready: Ready) {
        let _ = self.tx.send(Seen::Ready(Box::new(ready)));
    }

    async fn resume(&self, _ctx: Context, _event: ResumedEvent) {
        let _ = self.tx.send(Seen::Resumed);
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        if let Err(e) = answer(&ctx, &interaction).await {
            let _ = self.tx.send(Seen::HandlerError(format!("{e:?}")));
        }
        let _ = self.tx.send(Seen::Interaction(Box::new(interaction)));
    }
}

async fn answer(ctx: &Context, interaction: &Interaction) -> serenity::Result<()> {
    match interaction {
        Interaction::Command(command) => {
            let message = CreateInteractionResponseMessage::new()
                .content(format!("{} received", command.data.name))
                .embed(
                    CreateEmbed::new()
                        .title("CHG-1")
                        .description("payments-api"),
                )
                .components(vec![CreateActionRow::Buttons(vec![
                    CreateButton::new("approve:CHG-1").label("Approve"),
                ])]);
            let response = CreateInteractionResponse::Message(message);
            command.create_response(&ctx.http, response).await
        }
        Interaction::Component(click) => {
            let update = CreateInteractionResponseMessage::new()
                .content(format!("{} by {}", click.data.custom_id, click.user.name))
                .components(vec![]);
            let response = CreateInteractionResponse::UpdateMessage(update);
            click.create_response(&ctx.http, response).await
        }
        Interaction::Modal(modal) => {
            modal.defer_ephemeral(&ctx.http).await?;
            let edit = EditInteractionResponse::new().content("reason noted");
            modal.edit_response(&ctx.http, edit).await?;
            let followup = CreateInteractionResponseFollowup::new().content("follow-up");
            modal.create_followup(&ctx.http, followup).await.map(|_| ())
        }
        _ => Ok(()),
    }
}

/// A running serenity client connected to `fake`.
pub struct Bot {
    pub events: UnboundedReceiver<Seen>,
    pub http: Arc<Http>,
}

impl Bot {
    pub async fn connect(fake: &FakeDiscord) -> Bot {
        let (tx, events) = unbounded_channel();
        let http = fake.http(TOKEN);
        let mut client = ClientBuilder::new_with_http(http, GatewayIntents::GUILDS)
            .event_handler(Recorder { tx })
            .await
            .expect("serenity client builds");
        let http = client.http.clone();
        tokio::spawn(async move {
            if let Err(e) = client.start().await {
                eprintln!("serenity client stopped: {e:?}");
            }
        });
        Bot { events, http }
    }

    pub async fn next(&mut self) -> Seen {
        let seen = tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("timed out waiting for serenity's event handler")
            .expect("event handler channel closed");
        if let Seen::HandlerError(e) = &seen {
            panic!("the handler's reply failed: {e}");
        }
        seen
    }

    pub async fn ready(&mut self) -> Ready {
        match self.next().await {
            Seen::Ready(ready) => *ready,
            other => panic!("expected READY, got {other:?}"),
        }
    }

    pub async fn interaction(&mut self) -> Interaction {
        match self.next().await {
            Seen::Interaction(interaction) => *interaction,
            other => panic!("expected an interaction, got {other:?}"),
        }
    }
}
