//! Who may report a deployment's result (`POST /webhooks/deployments/{id}`): the secrets of the
//! configured deployment targets, and the target a deployment was made for.
//!
//! The HTTP handler checks a callback's signature against [`Workflow::callback_secrets`] (config
//! and environment only) before anything is looked up in the database, so an unsigned caller
//! cannot probe which deployments exist. Only then does [`Workflow::deployment_target`] say
//! whose secret it must have been.

use std::fmt;

use super::{Workflow, WorkflowError};
use crate::deploy;
use crate::domain::DeploymentId;

/// A deployment target, `[service.deploy.<environment>]`, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetName {
    pub service: String,
    pub environment: String,
}

impl fmt::Display for TargetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.service, self.environment)
    }
}

/// A configured target's callback secret. The secret itself never leaves this type (and is
/// left out of `Debug`), so it cannot end up in a log line.
pub struct TargetSecret {
    pub target: TargetName,
    secret: String,
}

impl TargetSecret {
    /// Whether `signature` (an `X-Changebot-Signature-256` header) is this target's signature
    /// of `body`; compared in constant time.
    pub fn signed(&self, body: &[u8], signature: Option<&str>) -> bool {
        deploy::verify(self.secret.as_bytes(), body, signature)
    }
}

impl fmt::Debug for TargetSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetSecret")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Workflow {
    /// The callback secret of every configured deployment target that has one (its `secret_env`
    /// names a set, non-empty environment variable). Reads config and the environment only,
    /// never the database.
    pub fn callback_secrets(&self) -> Vec<TargetSecret> {
        self.config
            .org
            .services
            .values()
            .flat_map(|service| {
                service.deploy.iter().filter_map(|(environment, target)| {
                    let secret = self.config.secret(target.secret_env.as_deref())?;
                    Some(TargetSecret {
                        target: TargetName {
                            service: service.name.clone(),
                            environment: environment.clone(),
                        },
                        secret,
                    })
                })
            })
            .collect()
    }

    /// The target a deployment was made for: its change's service and environment.
    /// `NotFound` when there is no such deployment.
    pub async fn deployment_target(&self, id: DeploymentId) -> Result<TargetName, WorkflowError> {
        let Some(dep) = self.store.deployment(id).await? else {
            return Err(WorkflowError::NotFound(format!(
                "there is no deployment {id}"
            )));
        };
        let change = self.find_change(dep.change).await?;
        Ok(TargetName {
            service: change.service,
            environment: change.environment,
        })
    }
}
