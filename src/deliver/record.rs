//! Session records to and from `store::sessions` rows. The row holds the audit columns; what
//! only the engine needs to resume (the plan with the device's peer key, slot before the
//! trigger, failures) travels as JSON in `resume_json`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::session::{Reason, SessionPlan, SessionRecord, State};
use crate::store::sessions::{EventRow, SessionRow};

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("session {id}: unknown state `{state}` in the store; a newer ferry wrote it")]
    UnknownState { id: i64, state: String },
    #[error("session {id}: its resume data does not decode ({source}); it cannot be resumed")]
    Resume { id: i64, source: serde_json::Error },
    #[error("session {0}: negative id in the store")]
    BadId(i64),
}

#[derive(Serialize, Deserialize)]
struct ResumeData<P> {
    plan: SessionPlan<P>,
    failures: u32,
    progress: u64,
    slot_before: Option<u8>,
    seq_reported: Option<u64>,
}

/// 16 lowercase hex digits, as `sessions.device` holds it.
pub fn device_hex(eui: &crate::fleet::Eui64) -> String {
    eui.0.iter().map(|b| format!("{b:02x}")).collect()
}

impl<P: Serialize + DeserializeOwned + Clone> SessionRecord<P> {
    /// The row to write, and the event if this record is a transition.
    pub fn to_rows(&self) -> (SessionRow, Option<EventRow>) {
        let resume = ResumeData {
            plan: self.plan.clone(),
            failures: self.failures,
            progress: self.progress,
            slot_before: self.slot_before,
            seq_reported: self.seq_reported,
        };
        let id = i64::try_from(self.id).unwrap_or(i64::MAX);
        let row = SessionRow {
            id,
            device: device_hex(&self.plan.device),
            manifest_digest: self.plan.manifest_digest.clone(),
            sequence: self.plan.sequence,
            state: self.state.as_str().to_owned(),
            reason: self.reason.as_ref().map(Reason::to_string),
            bytes: self.bytes_served,
            attempts: self.attempts,
            authority: self.plan.authority.clone(),
            approval: self.plan.approval.clone(),
            started_unix_ms: self.started_unix_ms,
            updated_unix_ms: self.updated_unix_ms,
            // Plain data (strings, numbers, the peer key): serialising it cannot fail.
            resume_json: serde_json::to_string(&resume).unwrap_or_default(),
        };
        let event = self.transition.as_ref().map(|t| EventRow {
            session: id,
            at_unix_ms: self.updated_unix_ms,
            from_state: t.from.map(|s| s.as_str().to_owned()),
            to_state: t.to.as_str().to_owned(),
            detail: t.detail.clone(),
            bytes: self.bytes_served,
        });
        (row, event)
    }

    /// A record read back from the store.
    pub fn from_row(row: &SessionRow) -> Result<Self, RecordError> {
        let state = State::parse(&row.state)
            .ok_or_else(|| RecordError::UnknownState { id: row.id, state: row.state.clone() })?;
        let resume: ResumeData<P> =
            serde_json::from_str(&row.resume_json).map_err(|source| RecordError::Resume { id: row.id, source })?;
        Ok(SessionRecord {
            id: u64::try_from(row.id).map_err(|_| RecordError::BadId(row.id))?,
            plan: resume.plan,
            state,
            reason: row.reason.clone().map(Reason::Recorded),
            attempts: row.attempts,
            failures: resume.failures,
            bytes_served: row.bytes,
            progress: resume.progress,
            slot_before: resume.slot_before,
            seq_reported: resume.seq_reported,
            started_unix_ms: row.started_unix_ms,
            updated_unix_ms: row.updated_unix_ms,
            transition: None,
        })
    }
}
