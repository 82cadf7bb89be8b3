//! Group commit of the sender's writes (`llmflow_core::db::group`): every attempt this sender
//! makes is claimed, and then recorded, through a writer task of each kind, which sends the
//! claims (`db::attempt_claims::claim_attempts`) or records
//! (`db::attempt_records::record_attempts`) waiting at that moment as one statement. Each
//! attempt awaits its own claim before it sends, and its own record's commit before its next
//! attempt is scheduled, as when it wrote alone.

use std::time::Duration;

use llmflow_core::db::attempt_claims::{self, ClaimRequest, ClaimResult};
use llmflow_core::db::attempt_records::{self, AttemptRecord, RecordResult};
use llmflow_core::db::group::{self, Group, GroupCommit, GroupSettings};
use llmflow_core::db::PgPool;

/// The attempt claims of one webhook sender process.
pub struct AttemptClaims {
    pool: PgPool,
    claim_timeout: Duration,
    sender: String,
}

impl Group for AttemptClaims {
    type Write = ClaimRequest;
    type Answer = ClaimResult;

    async fn write(&self, requests: Vec<ClaimRequest>) -> Vec<ClaimResult> {
        match group::connection(&self.pool, requests.len()).await {
            Ok(mut conn) => {
                attempt_claims::claim_attempts(
                    &mut conn,
                    &requests,
                    self.claim_timeout,
                    &self.sender,
                )
                .await
            }
            Err(errors) => errors,
        }
    }
}

/// The attempt records of one webhook sender process.
pub struct AttemptRecords {
    pool: PgPool,
}

impl Group for AttemptRecords {
    type Write = AttemptRecord;
    type Answer = RecordResult;

    async fn write(&self, records: Vec<AttemptRecord>) -> Vec<RecordResult> {
        match group::connection(&self.pool, records.len()).await {
            Ok(mut conn) => attempt_records::record_attempts(&mut conn, &records).await,
            Err(errors) => errors,
        }
    }
}

/// The sender's two writers.
pub struct Recorders {
    pub claims: GroupCommit<AttemptClaims>,
    pub records: GroupCommit<AttemptRecords>,
}

/// Starts the writer tasks; they end when every handle is dropped.
pub fn start(
    pool: PgPool,
    claim_timeout: Duration,
    sender: String,
    settings: GroupSettings,
) -> Recorders {
    Recorders {
        claims: GroupCommit::start(
            AttemptClaims {
                pool: pool.clone(),
                claim_timeout,
                sender,
            },
            settings,
        ),
        records: GroupCommit::start(AttemptRecords { pool }, settings),
    }
}
