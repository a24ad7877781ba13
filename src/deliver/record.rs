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
    #[serde(default)]
    earlier_trigger: bool,
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
            earlier_trigger: self.earlier_trigger,
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
            earlier_trigger: resume.earlier_trigger,
            seq_reported: resume.seq_reported,
            started_unix_ms: row.started_unix_ms,
            updated_unix_ms: row.updated_unix_ms,
            transition: None,
        })
    }
}

/// Writes `record` (row and transition) through the store thread; returns once committed. The
/// shell calls this for every [`super::Action::Persist`] before it performs the next action.
pub async fn persist<P>(store: &crate::store::Store, record: &SessionRecord<P>) -> Result<(), crate::store::StoreError>
where
    P: Serialize + DeserializeOwned + Clone,
{
    let (row, event) = record.to_rows();
    store.call(move |c| crate::store::sessions::write(c, &row, event.as_ref())).await
}

/// What a starting ferryd resumes: the highest session id ever stored (for
/// [`super::Engine::new`]) and every unfinished session (for [`super::Engine::resume`]). A row
/// that does not decode is skipped with its error (a newer ferry wrote it): it stays untouched.
pub async fn load_unfinished<P>(
    store: &crate::store::Store,
) -> Result<(u64, Vec<SessionRecord<P>>, Vec<RecordError>), crate::store::StoreError>
where
    P: Serialize + DeserializeOwned + Clone,
{
    let (last, rows) =
        store.call(|c| Ok((crate::store::sessions::max_id(c)?, crate::store::sessions::unfinished(c)?))).await?;
    let (mut records, mut errors) = (Vec::new(), Vec::new());
    for row in &rows {
        match SessionRecord::from_row(row) {
            Ok(r) => records.push(r),
            Err(e) => errors.push(e),
        }
    }
    Ok((u64::try_from(last).unwrap_or(0), records, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn persisted_records_load_back_through_the_store() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = crate::store::Store::open(dir.path()).expect("store");
        let now = std::time::Instant::now();
        let mut engine = super::super::Engine::<std::net::SocketAddr>::new(Default::default(), now, 0, 0);
        let plan = SessionPlan {
            device: crate::fleet::Eui64([1; 8]),
            peer: "[fd00::2]:5683".parse().expect("addr"),
            manifest_uri: "coap://[fd00::1]/m".into(),
            manifest_path: "m".into(),
            manifest_digest: "11".repeat(32),
            payload_paths: vec!["p".into()],
            sequence: 3,
            manifest_size: 100,
            payload_size: 100,
            timing: Default::default(),
            authority: "a".into(),
            approval: "b".into(),
            not_before: None,
            // Kept across a restart, so the planner still protects the session's window.
            window_closes: Some("2026-11-23T12:03:00Z".parse().expect("timestamp")),
            air_time_share: 0.25,
            gateway_share: 0.2,
        };
        // A record written before the window and the shares were kept loads without them.
        let mut old = serde_json::to_value(&plan).expect("json");
        for key in ["window_closes", "air_time_share", "gateway_share"] {
            old.as_object_mut().expect("an object").remove(key);
        }
        let old: SessionPlan<std::net::SocketAddr> = serde_json::from_value(old).expect("an older record loads");
        assert_eq!((old.window_closes, old.air_time_share, old.gateway_share), (None, 0.0, 0.0));
        let id = engine.start(now, plan.clone()).expect("starts");
        while let Some(action) = engine.poll_action() {
            if let super::super::Action::Persist(r) = action {
                persist(&store, &r).await.expect("persist");
            }
        }
        let (last, records, errors) = load_unfinished::<std::net::SocketAddr>(&store).await.expect("load");
        assert_eq!((last, records.len(), errors.len()), (id, 1, 0));
        assert_eq!(records[0].plan, plan);
        assert_eq!(records[0].state, State::Planned);
    }
}
