//! The control socket's fleet, update and plan requests: devices listed and changed, updates
//! listed and approved, the plan computed from the live state. Changes are checked against the
//! peer's uid (`fleet::rights`), made in one store call with their audit row, and followed by a
//! new plan.

use std::sync::Arc;

use jiff::Timestamp;

use super::plan::{plan_input, update_line, LiveInputs, OfferedUpdate};
use super::status::Shared;
use crate::config::Config;
use crate::control::api::{
    ApproveRequest, Approved, DeviceChange, DeviceChanged, DeviceList, DeviceReport, PlanReport, PlanRequest,
    UpdateList,
};
use crate::control::{ApiError, Peer};
use crate::fleet::commission::{self, Actor, FleetError};
use crate::fleet::device::{parse_eui64, Device, Eui64};
use crate::fleet::rights;
use crate::store::approvals::{self, Approval};
use crate::store::audit::{self, AuditEntry};
use crate::store::{cache, devices};

fn bad_request(message: impl std::fmt::Display) -> ApiError {
    ApiError { status: 400, message: message.to_string() }
}

fn forbidden(refusal: rights::Refusal) -> ApiError {
    ApiError { status: 403, message: refusal.to_string() }
}

fn fleet_error(e: FleetError) -> ApiError {
    let status = match &e {
        FleetError::UnknownDevice(_) => 404,
        FleetError::UnknownGroup { .. } | FleetError::NoGroup(_) => 400,
        FleetError::AlreadyRetired(_) | FleetError::Lifecycle(_) => 409,
        FleetError::Store(_) | FleetError::Audit(_) | FleetError::StoreThread(_) => 500,
    };
    ApiError { status, message: e.to_string() }
}

fn eui(text: &str) -> Result<Eui64, ApiError> {
    parse_eui64(text).map_err(bad_request)
}

/// Refused by the rights check inside a store call.
enum Outcome<T> {
    Done(T),
    Refused(rights::Refusal),
}

/// Commissions the devices ferry.toml lists; logs what changed. At start and on reload.
pub(super) async fn commission_from_config(shared: &Shared, config: Arc<Config>) {
    let now = Timestamp::now();
    let done = shared.store.call(move |c| Ok(commission::commission_listed(c, &config, now))).await;
    match done.map_err(FleetError::from).and_then(|r| r) {
        Ok(report) => {
            if !report.changed.is_empty() {
                tracing::info!(devices = report.changed.len(), "commissioned devices listed in ferry.toml");
            }
            for eui in report.retired {
                tracing::warn!(device = %eui, "listed in ferry.toml but retired; `ferry device admit {eui}` takes it back");
            }
        }
        Err(e) => tracing::error!("cannot commission the devices listed in ferry.toml: {e}"),
    }
}

pub(super) async fn list(shared: &Shared) -> Result<DeviceList, ApiError> {
    let devices = shared.store.call(|c| Ok(devices::load_all(c))).await.map_err(ApiError::internal)?;
    Ok(DeviceList { devices: devices.map_err(ApiError::internal)? })
}

pub(super) async fn show(shared: &Shared, text: String) -> Result<DeviceReport, ApiError> {
    let eui64 = eui(&text)?;
    let found = shared
        .store
        .call(move |c| {
            let device = devices::load(c, eui64);
            let audit = audit::mentioning(c, &eui64.to_string())?;
            let deliveries = crate::store::attempts::list(c, Some(&crate::deliver::record::device_hex(&eui64)))?;
            Ok(device.map(|d| d.map(|device| DeviceReport { device, audit, deliveries })))
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    found.ok_or_else(|| ApiError { status: 404, message: format!("device {eui64} is not known to ferry") })
}

pub(super) async fn admit(shared: &Shared, peer: Peer, change: DeviceChange) -> Result<DeviceChanged, ApiError> {
    let eui64 = eui(&change.eui64)?;
    let config = shared.config.borrow().clone();
    let now = Timestamp::now();
    let group = change.group.clone();
    let outcome = shared
        .store
        .call(move |c| {
            let mut run = || -> Result<Outcome<commission::Admitted>, FleetError> {
                let groups = commission::admission_groups(c, eui64, group.as_deref())?;
                let names: Vec<&str> = groups.iter().map(String::as_str).collect();
                if let Err(refusal) = rights::may_manage_device(&config, peer.uid, &names) {
                    return Ok(Outcome::Refused(refusal));
                }
                let actor = Actor::Peer(rights::actor_name(&config, peer.uid));
                commission::admit(c, &config, eui64, group.as_deref(), &actor, now).map(Outcome::Done)
            };
            Ok(run())
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(fleet_error)?;
    let admitted = match outcome {
        Outcome::Done(admitted) => admitted,
        Outcome::Refused(refusal) => return Err(forbidden(refusal)),
    };
    let group = admitted.device.group.as_ref().map_or("no group", |g| g.value.as_str()).to_owned();
    let message = if admitted.changed {
        tracing::info!(device = %eui64, group, uid = peer.uid, "device admitted");
        format!("admitted {eui64} in group {group}: {}", admitted.device.lifecycle)
    } else {
        format!("{eui64} is already {} in group {group}", admitted.device.lifecycle)
    };
    shared.replan().await;
    Ok(DeviceChanged { device: admitted.device, changed: admitted.changed, message })
}

pub(super) async fn retire(shared: &Shared, peer: Peer, change: DeviceChange) -> Result<DeviceChanged, ApiError> {
    let eui64 = eui(&change.eui64)?;
    let config = shared.config.borrow().clone();
    let now = Timestamp::now();
    let outcome = shared
        .store
        .call(move |c| {
            let mut run = || -> Result<Outcome<Device>, FleetError> {
                let device = devices::load(c, eui64)?.ok_or(FleetError::UnknownDevice(eui64))?;
                let groups: Vec<&str> = device.group.iter().map(|g| g.value.as_str()).collect();
                if let Err(refusal) = rights::may_manage_device(&config, peer.uid, &groups) {
                    return Ok(Outcome::Refused(refusal));
                }
                let actor = Actor::Peer(rights::actor_name(&config, peer.uid));
                commission::retire(c, eui64, &actor, now)?;
                Ok(Outcome::Done(devices::load(c, eui64)?.ok_or(FleetError::UnknownDevice(eui64))?))
            };
            Ok(run())
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(fleet_error)?;
    let device = match outcome {
        Outcome::Done(device) => device,
        Outcome::Refused(refusal) => return Err(forbidden(refusal)),
    };
    tracing::info!(device = %eui64, uid = peer.uid, "device retired");
    shared.replan().await;
    let message =
        format!("retired {eui64}: its keys, sessions and owner links are forgotten; the audit log keeps the record");
    Ok(DeviceChanged { device, changed: true, message })
}

/// The accepted manifests as updates, and the approvals.
async fn offered_updates(shared: &Shared) -> Result<(Vec<OfferedUpdate>, Vec<Approval>), ApiError> {
    let (rows, approvals) = shared
        .store
        .call(|c| Ok((cache::manifests(c, None)?, approvals::all(c)?)))
        .await
        .map_err(ApiError::internal)?;
    Ok((shared.plan.offered(rows).await, approvals))
}

pub(super) async fn updates(shared: &Shared) -> Result<UpdateList, ApiError> {
    let (offered, approvals) = offered_updates(shared).await?;
    let config = shared.config.borrow().clone();
    Ok(UpdateList { updates: offered.iter().map(|u| update_line(&config, u, &approvals)).collect() })
}

/// The update `reference` names: its id, its digest, or a unique digest prefix (8+ hex digits).
fn find_update<'a>(offered: &'a [OfferedUpdate], reference: &str) -> Result<&'a OfferedUpdate, ApiError> {
    let wanted = reference.trim().trim_start_matches("sha256:").to_ascii_lowercase();
    let by_id: Vec<&OfferedUpdate> = offered.iter().filter(|u| u.id == reference.trim()).collect();
    let matches: Vec<&OfferedUpdate> = if !by_id.is_empty() {
        by_id
    } else if wanted.len() >= 8 && wanted.chars().all(|c| c.is_ascii_hexdigit()) {
        offered.iter().filter(|u| u.digest.starts_with(&wanted)).collect()
    } else {
        Vec::new()
    };
    let digests: std::collections::BTreeSet<&str> = matches.iter().map(|u| u.digest.as_str()).collect();
    match (matches.first(), digests.len()) {
        (Some(u), 1) => Ok(u),
        (None, _) => Err(ApiError {
            status: 404,
            message: format!("no accepted update is `{reference}`; `ferry update ls` lists them by id and digest"),
        }),
        _ => Err(bad_request(format!("`{reference}` matches {} manifests; give more of the digest", digests.len()))),
    }
}

pub(super) async fn approve(shared: &Shared, peer: Peer, request: ApproveRequest) -> Result<Approved, ApiError> {
    let config = shared.config.borrow().clone();
    if let Some(group) = &request.group {
        if config.group(group).is_none() {
            return Err(bad_request(format!("group `{group}` is not in ferry.toml")));
        }
    }
    rights::may_approve(&config, peer.uid, request.group.as_deref()).map_err(forbidden)?;
    let (offered, _) = offered_updates(shared).await?;
    let update = find_update(&offered, &request.update)?.clone();
    if !update.verified {
        return Err(ApiError {
            status: 409,
            message: format!("{} no longer passes the trust policy in force; it cannot be approved", update.id),
        });
    }
    let approval = Approval {
        digest: update.digest.clone(),
        group: request.group.clone(),
        uid: peer.uid,
        approved_unix_ms: Timestamp::now().as_millisecond(),
    };
    let entry = AuditEntry {
        at_unix_ms: approval.approved_unix_ms,
        actor: rights::actor_name(&config, peer.uid),
        action: "update approved".into(),
        detail: format!(
            "{} (sha256:{}) for {}",
            update.id,
            update.digest,
            request.group.as_deref().map_or("every group".to_owned(), |g| format!("group {g}"))
        ),
    };
    let stored = approval.clone();
    let added = shared
        .store
        .call(move |c| {
            let added = approvals::approve(c, &stored)?;
            if added {
                audit::record(c, &entry)?;
            }
            Ok(added)
        })
        .await
        .map_err(ApiError::internal)?;
    if added {
        tracing::info!(update = update.id, group = request.group.as_deref(), uid = peer.uid, "update approved");
    }
    shared.replan().await;
    let (offered, approvals) = offered_updates(shared).await?;
    let line = offered
        .iter()
        .find(|u| u.digest == update.digest)
        .map_or_else(|| update_line(&config, &update, &approvals), |u| update_line(&config, u, &approvals));
    Ok(Approved { update: line, added })
}

/// The plan for `request.at` (default now), from the live state.
pub(super) async fn plan(shared: &Shared, request: PlanRequest) -> Result<PlanReport, ApiError> {
    let at = match &request.at {
        None => Timestamp::now(),
        Some(text) => text
            .parse::<Timestamp>()
            .map_err(|e| bad_request(format!("`at` = `{text}` is not an RFC 3339 time with offset: {e}")))?,
    };
    let report = compute(shared, at).await?;
    if request.at.is_none() {
        shared.plan.export(&report);
    }
    Ok(report)
}

/// Builds the planner's input from the store, the config, the owner files and the mesh, and
/// plans for `at`.
pub(super) async fn compute(shared: &Shared, at: Timestamp) -> Result<PlanReport, ApiError> {
    Ok(compute_plan(shared, at).await?.3)
}

/// [`compute`] with the plan itself and the offered updates, for the delivery room.
pub(super) async fn compute_plan(
    shared: &Shared,
    at: Timestamp,
) -> Result<(crate::schedule::plan::Plan, Vec<OfferedUpdate>, Vec<Eui64>, PlanReport), ApiError> {
    let (offered, approvals) = offered_updates(shared).await?;
    let (fleet, attempts) = shared
        .store
        .call(|c| Ok((devices::load_all(c), crate::store::attempts::list(c, None)?)))
        .await
        .map_err(ApiError::internal)?;
    let fleet = fleet.map_err(ApiError::internal)?;
    let config = shared.config.borrow().clone();
    let owners = shared.owners.effective();
    let mesh = shared.plan.mesh();
    let sessions = shared.plan.sessions();
    let inputs = LiveInputs {
        config: &config,
        owners: &owners,
        devices: &fleet,
        updates: &offered,
        approvals: &approvals,
        sessions: &sessions,
        attempts: &attempts,
        mesh: &mesh,
    };
    let (state, topology) = plan_input(&inputs, at);
    let (plan, report) = shared.plan.decide(&state, &topology, at);
    let closed = crate::schedule::plan::closed_sessions(&state, at).into_iter().map(|(eui, _)| eui).collect();
    Ok((plan, offered, closed, report))
}
