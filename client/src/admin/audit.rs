//! The audit log: pages of records, the server's own check, and this
//! client's check of the whole chain against heads the caller holds.

use serde_json::Value;

use keyshare_policy::api::admin as api;

use super::{AdminClient, Result};
use keyshare_policy::audit::{ChainCheck, ChainError, ChainSummary, Head, Record};

use super::{read_capped, transport, AuditQuery, Error, AUDIT_PAGE, TIMESTAMP_MAX_BYTES};

impl AdminClient {
    /// `GET /api/v1/audit`: `{"records": [...]}` after sequence number
    /// `after`, at most `limit`.
    pub fn audit(&self, after: Option<i64>, limit: Option<u32>) -> Result<Value> {
        self.audit_query(&AuditQuery {
            after,
            limit,
            ..AuditQuery::default()
        })
    }

    /// `GET /api/v1/audit` with filters: `{"records": [...]}`.
    pub fn audit_query(&self, q: &AuditQuery) -> Result<Value> {
        let query = api::AuditQuery {
            after: q.after.unwrap_or(0),
            before: q.before,
            limit: q.limit,
            since: q.since.clone(),
            action: q.action.clone(),
            actor: q.actor.clone(),
            namespace: q.namespace.clone(),
            order: q.newest_first.then(|| "desc".to_owned()),
        };
        self.call("GET", "audit", &query.pairs(), None)
    }

    /// `GET /api/v1/audit/verify`: `{"ok": true, "records", "hash",
    /// "published_heads", "published_head"}` or `{"ok": false,
    /// "first_bad_seq", "reason", ...}` (the server's own check of its log
    /// against the heads it published).
    pub fn verify_audit(&self) -> Result<Value> {
        self.get("audit/verify")
    }

    /// Reads the whole audit log (`GET /api/v1/audit`, [`AUDIT_PAGE`]
    /// records at a time) and checks its hash chain and every head of
    /// `heads` (each with where it came from, for the message) with
    /// [`ChainCheck`]: the chain is recomputed here, record by record, so a
    /// server that rewrote its log cannot pass by answering "ok". Memory is
    /// one page plus the heads. The outer `Err` is a failure to read the
    /// log; the inner one is what the check found.
    pub fn check_audit_log(
        &self,
        heads: Vec<(Head, String)>,
    ) -> Result<std::result::Result<ChainSummary, ChainError>> {
        let mut check = ChainCheck::new(heads);
        let mut after: u64 = 0;
        loop {
            let after_i64 = i64::try_from(after).map_err(|_| Error::BadAnswer {
                url: self.url("audit"),
                message: format!("sequence number {after} is out of range"),
            })?;
            let page = self.audit(Some(after_i64), Some(AUDIT_PAGE))?;
            let page: api::AuditRecords =
                serde_json::from_value(page).map_err(|e| Error::BadAnswer {
                    url: self.url("audit"),
                    message: format!("records after {after}: {e}"),
                })?;
            if page.records.is_empty() {
                break;
            }
            for r in &page.records {
                let seq = u64::try_from(r.seq).map_err(|_| Error::BadAnswer {
                    url: self.url("audit"),
                    message: format!("record after {after}: `seq` {} is not positive", r.seq),
                })?;
                let record = Record {
                    seq,
                    time: &r.time,
                    actor: &r.actor,
                    action: &r.action,
                    subject: &r.subject,
                    details: &r.details,
                    prev_hash: &r.prev_hash,
                };
                if let Err(e) = check.push(&record, &r.hash) {
                    return Ok(Err(e));
                }
                after = seq;
            }
        }
        Ok(check.finish())
    }

    /// The server's current `metadata/timestamp.json`, as served, **not
    /// verified** (no token is sent; at most 16 KiB, python-tuf's limit for
    /// a timestamp). Verify it through the TUF workflow
    /// ([`crate::Verifier::refresh`]) where a root is pinned.
    pub fn published_timestamp(&self) -> Result<Vec<u8>> {
        let url = format!("{}/metadata/timestamp.json", self.base);
        let request = self.http.client().get(&url);
        self.http.block_on(async {
            let response = request.send().await.map_err(|e| transport(&url, e))?;
            let status = response.status().as_u16();
            if status != 200 {
                return Err(Error::BadAnswer {
                    url: url.clone(),
                    message: format!("status {status}"),
                });
            }
            read_capped(response, &url, TIMESTAMP_MAX_BYTES).await
        })
    }
}
