//! Who is who and what may deploy where: the validated organisation that config describes.
//! Pure data; `config` builds it, the rules in this module tree read it.

use std::collections::BTreeMap;

use chrono::Duration;
use chrono_tz::Tz;

use super::calendar::{Freeze, Window};
use super::policy::Policy;

/// One human, known by name, mapped to chat/Git identities and groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub github: Option<String>,
    pub discord: Option<String>,
    pub groups: Vec<String>,
}

/// Where a service's deployment webhook lives for one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployTarget {
    /// `None` is a dry run: recorded and announced, nothing called.
    pub url: Option<String>,
    pub secret_env: Option<String>,
    pub timeout: Duration,
    /// A GitHub Actions workflow deploys, gated by changebot's deployment protection rule:
    /// the release start opens the gate and waits for the workflow's `deployment_status`.
    pub github_actions: bool,
}

/// A deployable service.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub repos: Vec<String>,
    /// The group that `owners` in a policy stands for.
    pub owners: String,
    pub environments: Vec<String>,
    /// Names of the windows this service may deploy in.
    pub windows: Vec<String>,
    pub channel: Option<String>,
    pub timezone: Tz,
    pub change_duration: Duration,
    pub deploy: BTreeMap<String, DeployTarget>,
}

/// The validated organisation: people, services, policies, windows and configured freezes.
#[derive(Debug, Clone, Default)]
pub struct Organisation {
    pub people: BTreeMap<String, Person>,
    pub group_descriptions: BTreeMap<String, String>,
    pub services: BTreeMap<String, Service>,
    pub policies: Vec<Policy>,
    pub windows: BTreeMap<String, Window>,
    pub freezes: Vec<Freeze>,
}

impl Organisation {
    pub fn person(&self, name: &str) -> Option<&Person> {
        self.people.get(name)
    }

    pub fn person_by_github(&self, login: &str) -> Option<&Person> {
        self.people.values().find(|p| {
            p.github
                .as_deref()
                .is_some_and(|g| g.eq_ignore_ascii_case(login))
        })
    }

    pub fn person_by_discord(&self, id: &str) -> Option<&Person> {
        self.people
            .values()
            .find(|p| p.discord.as_deref() == Some(id))
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.get(name)
    }

    pub fn service_for_repo(&self, repo: &str) -> Option<&Service> {
        self.services
            .values()
            .find(|s| s.repos.iter().any(|r| r.eq_ignore_ascii_case(repo)))
    }

    /// Whether `person` belongs to `group` (groups exist implicitly through membership).
    pub fn is_member(&self, person: &str, group: &str) -> bool {
        self.people
            .get(person)
            .is_some_and(|p| p.groups.iter().any(|g| g == group))
    }

    /// Everyone in `group`, by name.
    pub fn members(&self, group: &str) -> Vec<&str> {
        self.people
            .values()
            .filter(|p| p.groups.iter().any(|g| g == group))
            .map(|p| p.name.as_str())
            .collect()
    }

    /// Every group name that exists: from memberships and `[[group]]` entries.
    pub fn group_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .people
            .values()
            .flat_map(|p| p.groups.iter().map(String::as_str))
            .chain(self.group_descriptions.keys().map(String::as_str))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The windows a service may deploy in.
    pub fn windows_for(&self, service: &Service) -> Vec<Window> {
        service
            .windows
            .iter()
            .filter_map(|w| self.windows.get(w).cloned())
            .collect()
    }
}
