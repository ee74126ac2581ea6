//! A change card as Discord shows it: an embed (id, title, service and environment, type, risk,
//! state, approvals against the policy, required checks, booked slot, links) with Approve and
//! Reject buttons while votes are taken.

use serenity::all::{ButtonStyle, Colour, CreateActionRow, CreateButton, CreateEmbed};

use crate::domain::ChangeId;
use crate::domain::effect::{Card, GateState};

/// The custom id of a card's Approve button.
pub fn approve_id(change: ChangeId) -> String {
    format!("approve:{change}")
}

/// The custom id of a card's Reject button (and of the reason modal it opens).
pub fn reject_id(change: ChangeId) -> String {
    format!("reject:{change}")
}

/// Reads a button's or modal's custom id: (`approve` | `reject`, change).
pub fn parse_custom_id(id: &str) -> Option<(&str, ChangeId)> {
    let (action, change) = id.split_once(':')?;
    if !matches!(action, "approve" | "reject") {
        return None;
    }
    Some((action, change.parse().ok()?))
}

/// Discord caps field values at 1,024 characters and titles at 256.
fn cap(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

pub fn embed(card: &Card) -> CreateEmbed {
    let colour = match card.gate.state {
        GateState::Success => Colour::from_rgb(46, 160, 67),
        GateState::Failure => Colour::from_rgb(207, 34, 46),
        GateState::Pending => Colour::from_rgb(191, 135, 0),
    };
    let mut embed = CreateEmbed::new()
        .title(cap(&format!("{} · {}", card.change, card.title), 256))
        .url(card.record_url.clone())
        .colour(colour)
        .field(
            "Service",
            cap(&format!("{}/{}", card.service, card.environment), 1024),
            true,
        )
        .field(
            "Type · risk",
            format!("{} · {}", card.change_type, card.risk),
            true,
        )
        .field("State", card.state.to_string(), true)
        .field("Requested by", cap(&card.requester, 1024), true);
    if let Some(policy) = &card.policy {
        let mut lines: Vec<String> = card.seats.iter().map(|s| s.tally()).collect();
        lines.extend(
            card.checks
                .iter()
                .map(|c| format!("check {}", c.describe())),
        );
        lines.extend(
            card.rejections
                .iter()
                .map(|r| format!("rejected by {}: {}", r.person, r.reason)),
        );
        if lines.is_empty() {
            lines.push("no approval needed".to_string());
        }
        embed = embed.field(
            format!("Policy {policy}"),
            cap(&lines.join("\n"), 1024),
            false,
        );
    }
    if let Some(slot) = &card.slot {
        embed = embed.field("Booked", cap(slot, 1024), false);
    }
    let mut links = vec![format!("[record]({})", card.record_url)];
    if let Some(pr) = &card.pull_request {
        links.push(format!("[pull request]({pr})"));
    }
    embed
        .field("Status", cap(&card.gate.reason, 1024), false)
        .field("Links", links.join(" · "), false)
}

/// The Approve and Reject buttons while votes are taken; none once the change is judged.
pub fn buttons(card: &Card) -> Vec<CreateActionRow> {
    if !card.votes_open {
        return Vec::new();
    }
    vec![CreateActionRow::Buttons(vec![
        CreateButton::new(approve_id(card.change))
            .label("Approve")
            .style(ButtonStyle::Success),
        CreateButton::new(reject_id(card.change))
            .label("Reject")
            .style(ButtonStyle::Danger),
    ])]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_ids_round_trip_and_strangers_are_ignored() {
        let id = ChangeId(12);
        assert_eq!(parse_custom_id(&approve_id(id)), Some(("approve", id)));
        assert_eq!(parse_custom_id(&reject_id(id)), Some(("reject", id)));
        assert_eq!(parse_custom_id("delete:CHG-12"), None);
        assert_eq!(parse_custom_id("approve:nonsense"), None);
        assert_eq!(parse_custom_id("approve"), None);
    }
}
