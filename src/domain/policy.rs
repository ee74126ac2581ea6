//! Approval policies (docs/configuration.md, `[[policy]]`): which policy applies to a change, and whether its votes satisfy it.
//!
//! Rules that always hold, whatever the policy says: no self-approval; one person counts once
//! (a person in two required groups fills one seat, chosen so the most seats are filled);
//! a rejection by anyone who could approve blocks until that person approves instead; only votes
//! from the change's current approval round count (a push to a PR starts a new round).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::change::{Change, ChangeType, Risk};
use super::organisation::Organisation;

/// The policy group name that stands for the service's owner group.
pub const OWNERS: &str = "owners";

/// Which changes a policy applies to. An empty list matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyMatch {
    pub types: Vec<ChangeType>,
    pub risks: Vec<Risk>,
    pub services: Vec<String>,
    pub environments: Vec<String>,
}

/// `count` distinct approvals from members of `group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub group: String,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub when: PolicyMatch,
    pub require: Vec<Requirement>,
    /// New commits on a PR invalidate earlier approvals.
    pub reset_on_push: bool,
    /// Check runs or commit statuses that must be green on the PR's head commit.
    pub checks: Vec<String>,
}

impl PolicyMatch {
    pub fn matches(&self, change: &Change) -> bool {
        fn ok<T: PartialEq>(list: &[T], v: &T) -> bool {
            list.is_empty() || list.contains(v)
        }
        ok(&self.types, &change.change_type)
            && ok(&self.risks, &change.risk)
            && ok(&self.services, &change.service)
            && ok(&self.environments, &change.environment)
    }
}

/// The first policy whose `when` matches decides.
pub fn select<'a>(policies: &'a [Policy], change: &Change) -> Option<&'a Policy> {
    policies.iter().find(|p| p.when.matches(change))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    Reject,
    /// An earlier approval or rejection taken back (a dismissed GitHub review): the person's
    /// latest vote then counts for nothing.
    Withdraw,
}

/// One person's vote on a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub person: String,
    pub verdict: Verdict,
    pub comment: String,
    pub round: i64,
    pub at: DateTime<Utc>,
}

/// How one requirement stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupStatus {
    /// The real group (`owners` resolved to the service's owner group).
    pub group: String,
    pub needed: u32,
    /// Who fills a seat of this requirement.
    pub approved_by: Vec<String>,
    /// Who else could approve for it (members who have not approved, rejecters included,
    /// minus the requester).
    pub candidates: Vec<String>,
}

impl GroupStatus {
    pub fn missing(&self) -> u32 {
        self.needed
            .saturating_sub(u32::try_from(self.approved_by.len()).unwrap_or(u32::MAX))
    }
}

/// A standing rejection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub person: String,
    pub reason: String,
}

/// How a CI check stands on a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    /// Queued or running.
    Pending,
    /// Green: success (and, as branch protection counts them, neutral or skipped).
    Passed,
    /// Red: failure, error, timed out, cancelled, action required, stale.
    Failed,
}

impl CheckOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckOutcome::Pending => "pending",
            CheckOutcome::Passed => "passed",
            CheckOutcome::Failed => "failed",
        }
    }
}

/// What CI reported for one check on a commit: a check run, a check suite (under its app's
/// name) or a commit status (under its context). The latest report per name stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    pub name: String,
    pub outcome: CheckOutcome,
    /// GitHub's own word for it (`failure`, `timed_out`, `in_progress`, …).
    pub detail: String,
}

/// How one check a policy requires stands on the change's head commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckStatus {
    pub name: String,
    /// `None` when nothing has been reported for it yet.
    pub outcome: Option<CheckOutcome>,
    pub detail: String,
}

impl CheckStatus {
    pub fn passed(&self) -> bool {
        self.outcome == Some(CheckOutcome::Passed)
    }

    /// `build (failed: timed_out)`, `test (not reported)`, `lint (pending)`.
    pub fn describe(&self) -> String {
        match self.outcome {
            None => format!("{} (not reported)", self.name),
            Some(CheckOutcome::Failed) if !self.detail.is_empty() => {
                format!("{} (failed: {})", self.name, self.detail)
            }
            Some(o) => format!("{} ({})", self.name, o.as_str()),
        }
    }
}

/// The result of evaluating a change's policy against its votes and CI evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyStatus {
    pub policy: String,
    pub groups: Vec<GroupStatus>,
    pub rejections: Vec<Rejection>,
    /// The checks the policy requires, as they stand on the head commit.
    pub checks: Vec<CheckStatus>,
}

impl PolicyStatus {
    pub fn satisfied(&self) -> bool {
        self.rejections.is_empty()
            && self.groups.iter().all(|g| g.missing() == 0)
            && self.checks.iter().all(CheckStatus::passed)
    }

    /// Required checks that are not green yet.
    pub fn unmet_checks(&self) -> impl Iterator<Item = &CheckStatus> {
        self.checks.iter().filter(|c| !c.passed())
    }
}

/// Whether the report `name` counts for the required check `required`: the same name (as in
/// branch protection), or one check suite of the app `required` (suites are reported as
/// `APP#SUITE-ID`, one per workflow run).
pub fn check_matches(required: &str, name: &str) -> bool {
    name == required
        || name
            .strip_prefix(required)
            .is_some_and(|rest| rest.starts_with('#'))
}

/// The required checks of `policy` against what CI reported on the head commit. A check
/// several reports count for (an app's suites) is red if any is red, running if any runs,
/// green when all are.
pub fn check_statuses(policy: &Policy, reports: &[CheckReport]) -> Vec<CheckStatus> {
    policy
        .checks
        .iter()
        .map(|name| {
            let mine: Vec<&CheckReport> = reports
                .iter()
                .filter(|r| check_matches(name, &r.name))
                .collect();
            let worst = mine
                .iter()
                .find(|r| r.outcome == CheckOutcome::Failed)
                .or_else(|| mine.iter().find(|r| r.outcome == CheckOutcome::Pending))
                .or_else(|| mine.first());
            CheckStatus {
                name: name.clone(),
                outcome: worst.map(|r| r.outcome),
                detail: worst.map(|r| r.detail.clone()).unwrap_or_default(),
            }
        })
        .collect()
}

/// Resolves a policy's group name for a change's service.
pub fn resolve_group<'a>(org: &'a Organisation, change: &Change, group: &'a str) -> &'a str {
    if group == OWNERS {
        org.service(&change.service)
            .map_or(group, |s| s.owners.as_str())
    } else {
        group
    }
}

/// The groups `policy` needs for `change`, each once with the approvals it needs: two
/// requirements that name the same group (`owners` and the owner group itself, say) add up.
pub fn required_groups<'a>(
    org: &'a Organisation,
    policy: &'a Policy,
    change: &Change,
) -> Vec<(&'a str, u32)> {
    let mut out: Vec<(&str, u32)> = Vec::new();
    for r in &policy.require {
        let group = resolve_group(org, change, &r.group);
        match out.iter_mut().find(|(g, _)| *g == group) {
            Some((_, count)) => *count = count.saturating_add(r.count),
            None => out.push((group, r.count)),
        }
    }
    out
}

/// Why `person` may not vote on `change` under `policy`, if they may not.
pub fn may_vote(
    org: &Organisation,
    policy: &Policy,
    change: &Change,
    person: &str,
) -> Result<(), String> {
    if org.person(person).is_none() {
        return Err(format!(
            "{person} is not a known person in config; only configured people may approve"
        ));
    }
    if person == change.requester {
        return Err(format!(
            "{person} requested {}; no self-approval",
            change.id
        ));
    }
    let groups: Vec<&str> = required_groups(org, policy, change)
        .into_iter()
        .map(|(g, _)| g)
        .collect();
    if groups.is_empty() {
        return Err(format!(
            "policy {} needs no approvals for {}",
            policy.name, change.id
        ));
    }
    if groups.iter().any(|g| org.is_member(person, g)) {
        Ok(())
    } else {
        Err(format!(
            "{person} is not in a group {} needs ({})",
            change.id,
            groups.join(", ")
        ))
    }
}

/// Evaluates `policy` for `change` given every vote ever cast (older rounds are ignored here)
/// and the CI reports on the change's head commit.
pub fn evaluate(
    org: &Organisation,
    policy: &Policy,
    change: &Change,
    votes: &[Vote],
    reports: &[CheckReport],
) -> PolicyStatus {
    // Latest vote per person in the current round; the requester's own votes never count.
    let mut latest: BTreeMap<&str, &Vote> = BTreeMap::new();
    for v in votes
        .iter()
        .filter(|v| v.round == change.approval_round && v.person != change.requester)
    {
        latest.insert(v.person.as_str(), v);
    }
    let required = required_groups(org, policy, change);
    let groups: Vec<&str> = required.iter().map(|(g, _)| *g).collect();
    let eligible = |person: &str| groups.iter().any(|g| org.is_member(person, g));

    let rejections = latest
        .values()
        .filter(|v| v.verdict == Verdict::Reject && eligible(&v.person))
        .map(|v| Rejection {
            person: v.person.clone(),
            reason: v.comment.clone(),
        })
        .collect();
    let approvers: Vec<&str> = latest
        .values()
        .filter(|v| v.verdict == Verdict::Approve)
        .map(|v| v.person.as_str())
        .collect();

    let (seats, seat_of) = fill_seats(org, &required, &approvers);

    let group_status = required
        .iter()
        .enumerate()
        .map(|(i, (_, needed))| {
            let approved_by: Vec<String> = seat_of
                .iter()
                .enumerate()
                .filter(|(s, who)| seats[*s] == i && who.is_some())
                .filter_map(|(_, who)| who.map(|p| approvers[p].to_string()))
                .collect();
            let candidates = org
                .members(groups[i])
                .into_iter()
                // Whoever has not approved could: a rejecter too, by changing their mind.
                .filter(|m| {
                    *m != change.requester
                        && !latest.get(m).is_some_and(|v| v.verdict == Verdict::Approve)
                })
                .map(str::to_string)
                .collect();
            GroupStatus {
                group: groups[i].to_string(),
                needed: *needed,
                approved_by,
                candidates,
            }
        })
        .collect();
    PolicyStatus {
        policy: policy.name.clone(),
        groups: group_status,
        rejections,
        checks: check_statuses(policy, reports),
    }
}

/// Seats: one per required approval (each the index of its requirement), filled from
/// `approvers` with a maximum bipartite matching, so a person in several groups counts once,
/// where they help most. Returns the seats and who (an index into `approvers`) sits in each.
fn fill_seats(
    org: &Organisation,
    required: &[(&str, u32)],
    approvers: &[&str],
) -> (Vec<usize>, Vec<Option<usize>>) {
    let mut seats: Vec<usize> = required
        .iter()
        .enumerate()
        .flat_map(|(i, (_, count))| std::iter::repeat_n(i, *count as usize))
        .collect();
    // Seats of the smallest groups are offered first, so an approver in several groups sits
    // where few others could (a lone owner who is also on the CAB counts as the owner, and
    // the CAB seat stays open for the many who could take it).
    seats.sort_by_key(|&i| org.members(required[i].0).len());
    let can_sit = |person: &str, seat: usize| org.is_member(person, required[seats[seat]].0);
    let mut seat_of: Vec<Option<usize>> = vec![None; seats.len()];
    for p in 0..approvers.len() {
        let mut seen = vec![false; seats.len()];
        augment(p, approvers, &can_sit, &mut seat_of, &mut seen);
    }
    (seats, seat_of)
}

/// How many of the approvals `policy` needs for a change of `service` could ever be given
/// when `requester` asks (`None`: someone in none of the groups), if every other eligible
/// person approved; and how many it needs. Fewer than needed: it can never be approved.
pub fn reachable(
    org: &Organisation,
    policy: &Policy,
    service: &str,
    requester: Option<&str>,
) -> (usize, usize) {
    let owners = org.service(service).map(|s| s.owners.as_str());
    let mut required: Vec<(&str, u32)> = Vec::new();
    for r in &policy.require {
        let group = match (r.group.as_str(), owners) {
            (OWNERS, Some(o)) => o,
            (g, _) => g,
        };
        match required.iter_mut().find(|(g, _)| *g == group) {
            Some((_, count)) => *count = count.saturating_add(r.count),
            None => required.push((group, r.count)),
        }
    }
    let people: Vec<&str> = org
        .people
        .keys()
        .map(String::as_str)
        .filter(|p| Some(*p) != requester)
        .filter(|p| required.iter().any(|(g, _)| org.is_member(p, g)))
        .collect();
    let (seats, seat_of) = fill_seats(org, &required, &people);
    (seat_of.iter().flatten().count(), seats.len())
}

/// Kuhn's augmenting path: tries to give approver `p` a seat, moving others if needed.
fn augment(
    p: usize,
    approvers: &[&str],
    can_sit: &dyn Fn(&str, usize) -> bool,
    seat_of: &mut [Option<usize>],
    seen: &mut [bool],
) -> bool {
    for seat in 0..seat_of.len() {
        if seen[seat] || !can_sit(approvers[p], seat) {
            continue;
        }
        seen[seat] = true;
        let free = match seat_of[seat] {
            None => true,
            Some(other) => augment(other, approvers, can_sit, seat_of, seen),
        };
        if free {
            seat_of[seat] = Some(p);
            return true;
        }
    }
    false
}
