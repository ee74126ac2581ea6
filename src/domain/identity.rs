//! Who is acting. An identity is how someone reached changebot (a configured person's name on
//! the console, a GitHub login, a Discord user id, or changebot itself); an actor is that
//! identity, the configured person it maps to (if any) and the surface it came through.
//!
//! Only `[[person]]` mappings turn an outside identity into a person: a GitHub login that
//! happens to equal a person's *name* is not that person. Approvals need a person.

use std::fmt;

use serde::Serialize;

use super::organisation::Organisation;

/// How someone reached changebot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A configured person, named directly by whoever runs the process (console, `changebot
    /// chat --as NAME`).
    Person(String),
    /// A GitHub login.
    Github(String),
    /// A Discord user id (a snowflake).
    Discord(String),
    /// changebot itself: the scheduler and its background work.
    Changebot,
    /// A service's deployment target, reporting through its signed callback.
    DeployTarget {
        service: String,
        environment: String,
    },
}

impl Identity {
    /// Reads `--as`: `github:LOGIN`, `discord:ID`, or a person's name.
    pub fn parse(text: &str) -> Result<Identity, String> {
        let text = text.trim();
        let (kind, rest) = match text.split_once(':') {
            Some((kind, rest)) => (Some(kind), rest),
            None => (None, text),
        };
        let valid = !rest.is_empty()
            && rest.len() <= 100
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(format!(
                "`{}` is not an identity: use a person's name, github:LOGIN or discord:ID",
                text.escape_debug()
            ));
        }
        match kind {
            None => Ok(Identity::Person(rest.to_string())),
            Some("github") => Ok(Identity::Github(rest.to_string())),
            Some("discord") if rest.chars().all(|c| c.is_ascii_digit()) => {
                Ok(Identity::Discord(rest.to_string()))
            }
            Some("discord") => Err(format!(
                "discord:{rest}: a Discord identity is the user's numeric id"
            )),
            Some(other) => Err(format!(
                "`{other}:` is not a kind of identity: use github:LOGIN or discord:ID"
            )),
        }
    }

    /// Whether this identity is outside changebot's own config (GitHub, Discord).
    pub fn is_external(&self) -> bool {
        matches!(self, Identity::Github(_) | Identity::Discord(_))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Person(name) => f.write_str(name),
            Identity::Github(login) => write!(f, "github:{login}"),
            Identity::Discord(id) => write!(f, "discord:{id}"),
            Identity::Changebot => f.write_str("changebot"),
            Identity::DeployTarget {
                service,
                environment,
            } => write!(f, "deploy-target:{service}/{environment}"),
        }
    }
}

/// The surface an action arrived through; recorded in the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Surface {
    Console,
    Cli,
    Discord,
    Github,
    Scheduler,
    Api,
    /// A deployment target's signed callback.
    Webhook,
}

impl fmt::Display for Surface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Surface::Console => "console",
            Surface::Cli => "cli",
            Surface::Discord => "discord",
            Surface::Github => "github",
            Surface::Scheduler => "scheduler",
            Surface::Api => "api",
            Surface::Webhook => "webhook",
        };
        f.write_str(s)
    }
}

/// Who acts: the identity used, the person it maps to, and the surface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    identity: Identity,
    person: Option<String>,
    surface: Surface,
}

impl Actor {
    /// Resolves `identity` to a person through the organisation's `[[person]]` mappings.
    pub fn resolve(org: &Organisation, identity: Identity, surface: Surface) -> Actor {
        let person = match &identity {
            Identity::Person(name) => org.person(name).map(|p| p.name.clone()),
            Identity::Github(login) => org.person_by_github(login).map(|p| p.name.clone()),
            Identity::Discord(id) => org.person_by_discord(id).map(|p| p.name.clone()),
            Identity::Changebot | Identity::DeployTarget { .. } => None,
        };
        Actor {
            identity,
            person,
            surface,
        }
    }

    /// The actor `--as TEXT` names: a configured person's name, or an outside identity
    /// (`github:LOGIN`, `discord:ID`) that is resolved through the mappings like any other.
    pub fn acting_as(org: &Organisation, text: &str, surface: Surface) -> Result<Actor, String> {
        if let Some(person) = org.person(text) {
            return Ok(Actor::resolve(
                org,
                Identity::Person(person.name.clone()),
                surface,
            ));
        }
        let identity = Identity::parse(text)?;
        let actor = Actor::resolve(org, identity, surface);
        if let (Identity::Person(name), None) = (&actor.identity, &actor.person) {
            return Err(format!(
                "--as {name}: no [[person]] with that name in config (an outside identity is \
                 written github:LOGIN or discord:ID)"
            ));
        }
        Ok(actor)
    }

    /// changebot itself, acting on a timer.
    pub fn changebot() -> Actor {
        Actor {
            identity: Identity::Changebot,
            person: None,
            surface: Surface::Scheduler,
        }
    }

    /// A deployment target reporting through its signed callback.
    pub fn deploy_target(service: &str, environment: &str) -> Actor {
        Actor {
            identity: Identity::DeployTarget {
                service: service.to_string(),
                environment: environment.to_string(),
            },
            person: None,
            surface: Surface::Webhook,
        }
    }

    /// The configured person acting, if the identity maps to one.
    pub fn person(&self) -> Option<&str> {
        self.person.as_deref()
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn surface(&self) -> Surface {
        self.surface
    }

    /// The name a record keeps for this actor (a requester, who started a freeze): the person,
    /// or the identity itself when it maps to nobody (`github:login`).
    pub fn name(&self) -> String {
        self.person
            .clone()
            .unwrap_or_else(|| self.identity.to_string())
    }

    /// Whether this actor is `name` (a person's name or an unmapped identity, as [`Actor::name`]
    /// writes it).
    pub fn is(&self, name: &str) -> bool {
        match &self.person {
            Some(p) => p == name,
            None => self.identity.to_string() == name,
        }
    }

    /// The name the actor is addressed by where they came from: a GitHub login for
    /// `github:LOGIN` (to mention them), otherwise [`Actor::name`].
    pub fn identity_name(&self) -> String {
        match &self.identity {
            Identity::Github(login) => login.clone(),
            _ => self.name(),
        }
    }

    /// How the audit trail names the actor: `carol`, `carol via github:carol-gh`,
    /// `github:someone` (unmapped), `changebot`.
    pub fn audit_name(&self) -> String {
        match (&self.person, self.identity.is_external()) {
            (Some(person), true) => format!("{person} via {}", self.identity),
            (Some(person), false) => person.clone(),
            (None, _) => self.identity.to_string(),
        }
    }
}
