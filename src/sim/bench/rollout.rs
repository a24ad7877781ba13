//! A rollout over days of virtual time: the `ferry` strategy of [`super`] with owners' windows.
//!
//! The PAN is a scenario as for `ferry bench`; which device is in which group, the groups' time
//! zones and policies, the owners and the `[plan]` limits come from a `ferry.toml` ([`Config`]),
//! and the owners' windows and blackouts from `owners.d/<owner>.toml` texts, read by the same
//! code as ferryd's ([`load_owner_texts`], [`EffectiveSettings::group_schedule`]). Medium µs are
//! mapped to the wall clock so that the Spinel link comes up at [`RolloutSpec::start`].
//!
//! Over the run, updates arrive at [`RolloutSpec::arrivals`] (each one sequence number above the
//! last, for every board class) and owners' files change at [`RolloutSpec::owner_files`] (as a
//! tenant saving a file, which ferryd reads within one heartbeat). The planner runs every
//! [`RolloutSpec::plan_every_s`], when a session ends, when something arrives or changes, and
//! when one of its waits ends (the plan's `retry_at`). A session that has not triggered its
//! device while its group closed since it started (an owner saved a blackout) is cancelled and
//! planned again when the group opens ([`plan::closed_sessions`]); a failed session leaves its
//! device to the planner, as in ferryd. What the devices did is their ground truth
//! ([`Outcome::truth`]), with the wall clock of a medium µs given by [`Outcome::wall`].

use std::collections::BTreeMap;
use std::time::Instant as WallInstant;

use jiff::{SignedDuration, Timestamp};

use super::{serve_update, BenchError, Driver, Ferry, Run, COMPONENT};
use crate::config::Config;
use crate::fleet::device::Eui64;
use crate::fleet::owners::{load_owner_texts, EffectiveSettings};
use crate::schedule::plan::{self, GroupPlan, Update, Urgency};
use crate::schedule::Schedule;
use crate::sim::riot::NodeTruth;
use crate::sim::scenario::Scenario;

/// What to run.
#[derive(Debug, Clone)]
pub struct RolloutSpec {
    /// `[[owner]]`, `[[group]]` (devices by EUI-64, time zone, `[group.policy]`) and `[plan]`.
    pub config: Config,
    /// The wall-clock instant the Spinel link comes up.
    pub start: Timestamp,
    /// Owner files as they are at the start (`at` not after `start`) and as they change later.
    pub owner_files: Vec<OwnerFileChange>,
    /// When updates arrive: each is one sequence number above the previous, for every board
    /// class of the scenario (the first is above the highest installed one).
    pub arrivals: Vec<Timestamp>,
    /// When the run stops.
    pub end: Timestamp,
    /// The planner runs at least this often, s.
    pub plan_every_s: f64,
}

/// `owners.d/<owner>.toml` saved (or, with `text: None`, deleted) at `at`.
#[derive(Debug, Clone)]
pub struct OwnerFileChange {
    pub at: Timestamp,
    pub owner: String,
    pub text: Option<String>,
}

/// An update that arrived: its sequence number, for every board class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub at: Timestamp,
    /// Sequence number per board class.
    pub sequences: BTreeMap<String, u64>,
}

/// What happened.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The wall clock of medium µs 0.
    pub epoch: Timestamp,
    /// Every device's ground truth at the end, by name.
    pub truth: BTreeMap<String, NodeTruth>,
    /// Every device's group (from `[[group]] devices`), by name; devices in none are absent.
    pub groups: BTreeMap<String, String>,
    /// The owners' settings in force from each instant on (the first at the start).
    pub settings: Vec<(Timestamp, EffectiveSettings)>,
    /// Owner files refused, when, and why.
    pub rejections: Vec<(Timestamp, String)>,
    /// Delivery sessions that ended other than `done`: when, device, why.
    pub failed_sessions: Vec<(Timestamp, String, String)>,
    pub arrivals: Vec<Arrival>,
    /// Planner passes (those that ran between two medium steps count once).
    pub plans: u64,
    /// Wall-clock time of the run.
    pub wall_ms: u64,
}

impl Outcome {
    /// The wall clock of medium µs `us`.
    pub fn wall(&self, us: u64) -> Timestamp {
        self.epoch.saturating_add(SignedDuration::from_micros(us as i64)).unwrap_or(self.epoch)
    }

    /// The owners' settings in force at `at`.
    pub fn settings_at(&self, at: Timestamp) -> Option<&EffectiveSettings> {
        self.settings.iter().rev().find(|(from, _)| *from <= at).map(|(_, s)| s)
    }

    /// The schedule in force for `group` at `at`, as the planner saw it.
    pub fn schedule_at(&self, config: &Config, group: &str, at: Timestamp) -> Option<Schedule> {
        self.settings_at(at)?.group_schedule(config, group, at).ok()
    }
}

/// Runs a rollout on `scenario` as `spec` says.
pub fn run(scenario: &Scenario, spec: &RolloutSpec) -> Result<Outcome, BenchError> {
    let wall = WallInstant::now();
    if scenario.nodes.is_empty() {
        return Err(BenchError::NoDevices);
    }
    let mut run = Run::new(scenario)?;
    let t0 = run.fleet.t0;
    let epoch = spec.start.saturating_sub(SignedDuration::from_micros(t0 as i64)).unwrap_or(spec.start);
    let mut ferry = Ferry::with_epoch(&run.host, &run.fleet, scenario, epoch);
    ferry.plan_every_us = (spec.plan_every_s.max(0.001) * 1e6) as u64;
    // As in ferryd, a failed session leaves its device to the planner.
    ferry.give_up_on_failure = false;
    let mut pan = spec.config.plan.pan_policy();
    pan.block_size = ferry.state.pan.block_size;
    ferry.state.pan = pan;

    let mut groups = BTreeMap::new();
    for (target, device) in run.fleet.targets.iter().zip(ferry.state.devices.iter_mut()) {
        let group = spec.config.groups.iter().find(|g| g.device_euis().any(|e| e == Eui64(target.eui)));
        device.group = group.map_or_else(String::new, |g| g.name.clone());
        if let Some(g) = group {
            groups.insert(target.name.clone(), g.name.clone());
        }
    }

    // The updates Run::new serves wait for the first arrival.
    let first = std::mem::take(&mut ferry.state.updates);
    let mut owner_changes = spec.owner_files.clone();
    owner_changes.sort_by_key(|c| c.at);
    let mut rollout = Rollout {
        spec,
        ferry,
        owner_texts: BTreeMap::new(),
        owner_changes,
        owner_changes_done: 0,
        arrivals_done: 0,
        first,
        outcome: Outcome {
            epoch,
            truth: BTreeMap::new(),
            groups,
            settings: Vec::new(),
            rejections: Vec::new(),
            failed_sessions: Vec::new(),
            arrivals: Vec::new(),
            plans: 0,
            wall_ms: 0,
        },
    };
    rollout.reload_owners(spec.start);
    let limit = rollout.us(spec.end);
    rollout.drive(&mut run, limit)?;

    let mut outcome = rollout.outcome;
    for (us, device, why) in &rollout.ferry.failures {
        outcome.failed_sessions.push((outcome.wall(*us), device.clone(), why.clone()));
    }
    for t in &run.fleet.targets {
        if let Some(riot) = run.host.world().riot(&t.name) {
            outcome.truth.insert(t.name.clone(), riot.truth().clone());
        }
    }
    outcome.wall_ms = wall.elapsed().as_millis() as u64;
    Ok(outcome)
}

struct Rollout<'a> {
    spec: &'a RolloutSpec,
    ferry: Ferry,
    /// The owner files as they stand.
    owner_texts: BTreeMap<String, String>,
    /// The spec's owner file changes, oldest first, and how many were applied.
    owner_changes: Vec<OwnerFileChange>,
    owner_changes_done: usize,
    arrivals_done: usize,
    /// The first arrival's updates (served by `Run::new`).
    first: Vec<Update>,
    outcome: Outcome,
}

impl Rollout<'_> {
    fn us(&self, at: Timestamp) -> u64 {
        u64::try_from(at.duration_since(self.ferry.epoch).as_micros()).unwrap_or(0)
    }

    fn next_owner_change(&self) -> Option<Timestamp> {
        self.owner_changes.get(self.owner_changes_done).map(|c| c.at)
    }

    /// The next instant something arrives or changes.
    fn next_event(&self) -> Option<Timestamp> {
        let arrival = self.spec.arrivals.get(self.arrivals_done).copied();
        [arrival, self.next_owner_change()].into_iter().flatten().min()
    }

    /// Reads the owner files as they stand at `now` and rebuilds every group's schedule.
    fn reload_owners(&mut self, now: Timestamp) {
        for change in self.owner_changes.iter().skip(self.owner_changes_done).take_while(|c| c.at <= now) {
            match &change.text {
                Some(text) => self.owner_texts.insert(change.owner.clone(), text.clone()),
                None => self.owner_texts.remove(&change.owner),
            };
            self.owner_changes_done += 1;
        }
        let config = &self.spec.config;
        let previous = self.outcome.settings.last().map(|(_, s)| s.clone()).unwrap_or_default();
        let texts = self.owner_texts.iter().map(|(owner, text)| (owner.as_str(), text.as_str()));
        let (effective, rejections) = load_owner_texts(texts, config, now, &previous);
        self.outcome.rejections.extend(rejections.iter().map(|r| (now, r.to_string())));
        let mut groups = BTreeMap::new();
        for group in &config.groups {
            // A group without a schedule leaves its devices waiting, as in ferryd.
            if let Ok(schedule) = effective.group_schedule(config, &group.name, now) {
                groups.insert(group.name.clone(), GroupPlan::new(&group.name, schedule, &group.policy));
            }
        }
        self.ferry.state.groups = groups;
        self.outcome.settings.push((now, effective));
        self.ferry.replan = true;
    }

    /// Serves the next update of every board class and hands it to the planner.
    fn arrive(&mut self, run: &mut Run, at: Timestamp) -> Result<(), BenchError> {
        let mut sequences = BTreeMap::new();
        if self.arrivals_done == 0 {
            for mut update in self.first.drain(..) {
                update.available_at = at;
                self.ferry.state.updates.push(update);
            }
            for s in &run.fleet.served {
                sequences.insert(s.class.clone(), s.offer.sequence);
            }
        } else {
            let gateway = run.host.border().address();
            let image_bytes = run.fleet.image_bytes;
            let classes: Vec<(usize, u64)> = (0..run.fleet.served.len())
                .filter_map(|i| {
                    let class = &run.fleet.served[i].class;
                    let last = run.fleet.served.iter().filter(|s| &s.class == class).map(|s| s.offer.sequence).max()?;
                    // One new update per class, made from the class's first offer.
                    let first = run.fleet.served.iter().position(|s| &s.class == class)?;
                    (first == i).then_some((i, last + 1))
                })
                .collect();
            for (i, sequence) in classes {
                let Some(target) = run.fleet.targets.iter().find(|t| t.offer == i) else { continue };
                let Some(node) = run.host.world().scenario().node(&target.name).cloned() else { continue };
                let served = serve_update(&mut run.host, &run.fleet.catalog, gateway, &node, sequence, image_bytes)?;
                self.ferry.state.updates.push(Update {
                    id: served.update_id(),
                    authority: "riot-test".into(),
                    vendor_id: served.vendor.clone(),
                    class_id: served.class.clone(),
                    component: COMPONENT.into(),
                    sequence,
                    image_bytes: served.offer.payload_size,
                    urgency: Urgency::Routine,
                    verified: true,
                    approved: false,
                    approved_groups: Default::default(),
                    paused: false,
                    available_at: at,
                });
                sequences.insert(served.class.clone(), sequence);
                run.fleet.served.push(served);
            }
        }
        self.arrivals_done += 1;
        self.outcome.arrivals.push(Arrival { at, sequences });
        self.ferry.replan = true;
        Ok(())
    }

    /// Applies what is due at the host's current time.
    fn apply_due(&mut self, run: &mut Run) -> Result<(), BenchError> {
        let now = self.ferry.timestamp(run.host.now_us());
        while let Some(at) = self.spec.arrivals.get(self.arrivals_done).copied().filter(|&at| at <= now) {
            self.arrive(run, at)?;
        }
        if self.next_owner_change().is_some_and(|at| at <= now) {
            self.reload_owners(now);
        }
        Ok(())
    }

    /// Runs until `limit` medium µs.
    fn drive(&mut self, run: &mut Run, limit: u64) -> Result<(), BenchError> {
        // The planner's next pass as last seen: a change means it just ran.
        let mut seen_next_plan = None;
        loop {
            self.apply_due(run)?;
            self.ferry.step(&mut run.host, &mut run.fleet);
            if seen_next_plan != Some(self.ferry.next_plan_us) {
                self.outcome.plans += 1;
                self.hold_closed_sessions(run);
                self.plan_again_when_a_wait_ends(run.host.now_us());
                seen_next_plan = Some(self.ferry.next_plan_us);
            }
            let now = run.host.now_us();
            if now >= limit {
                return Ok(());
            }
            let event = self.next_event().map(|at| self.us(at));
            let wake = [self.ferry.next_wake(&run.host), event].into_iter().flatten().min();
            let wake = wake.unwrap_or(limit).clamp(now + 1, limit);
            let ferry = &mut self.ferry;
            let fleet = &mut run.fleet;
            run.host.run_until_with(wake, |h| {
                ferry.step(h, fleet);
                ferry.next_wake(h).is_some_and(|w| w < wake)
            });
        }
    }

    /// Cancels the sessions that have not triggered their device yet while its group is closed
    /// ([`plan::closed_sessions`]: a blackout saved since they started); the planner starts
    /// them again when the group opens.
    fn hold_closed_sessions(&mut self, run: &mut Run) {
        let now = self.ferry.timestamp(run.host.now_us());
        let closed = plan::closed_sessions(&self.ferry.state, now);
        let mut cancelled = false;
        for (eui, _) in closed {
            let Some(i) = run.fleet.targets.iter().position(|t| Eui64(t.eui) == eui) else { continue };
            let Some(&id) = self.ferry.sessions.get(&i) else { continue };
            if self.ferry.engine.state(id) == Some(crate::deliver::State::Planned) {
                cancelled |= self.ferry.engine.cancel(run.host.now(), id);
            }
        }
        if cancelled {
            let at = run.host.now();
            self.ferry.perform_actions(&mut run.host, at);
        }
    }

    /// Brings the next planner pass forward to when a device's wait ends (a window opens), so
    /// starts do not lag the window by up to `plan_every_s`.
    fn plan_again_when_a_wait_ends(&mut self, now_us: u64) {
        let now = self.ferry.timestamp(now_us);
        let p = plan::plan(&self.ferry.state, &self.ferry.topology, now);
        let retry = p
            .entries
            .iter()
            .filter_map(|e| match &e.action {
                plan::Action::Wait { retry_at: Some(at), .. } if *at > now => Some(*at),
                _ => None,
            })
            .min();
        if let Some(at) = retry {
            let at_us = self.us(at);
            if at_us > now_us && at_us < self.ferry.next_plan_us {
                self.ferry.next_plan_us = at_us;
            }
        }
    }
}
