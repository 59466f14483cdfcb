//! Progress marks: how far a batch of statements got before it failed,
//! without running any of it again.
//!
//! A batch is sent as one simple query. When a statement of it fails with
//! an error that has no position (a constraint violated, a division by
//! zero), the server does not say which statement it was, and the only
//! other way to find it is to run the statements again, one by one: a
//! sequence then advances twice, a slow statement takes twice as long.
//! Instead each statement of a batch is followed by a mark, the `nextval`
//! of a temporary sequence of the session, and the batch starts by setting
//! it to zero. Sequences are not transactional, so after the failure, its
//! rollback included, `currval` says how many statements completed.
//!
//! The sequence is created once per session that has batches to run: in
//! autocommit before migrate's groups ([`create`]), or as the first action
//! of a deploy's script ([`CREATE`]). Where the role may not create
//! temporary objects, batches go without marks and a failure is located by
//! running the batch again, as before.

use postgres::GenericClient;

/// The session's mark sequence.
const SEQUENCE: &str = "pg_temp.pgpm_marks";

/// The statement that creates the session's mark sequence.
pub const CREATE: &str = "CREATE TEMPORARY SEQUENCE IF NOT EXISTS pgpm_marks MINVALUE 0 START 0";

/// Creates the session's mark sequence. Returns whether marks can be used.
pub fn create(client: &mut impl GenericClient) -> bool {
    client.batch_execute(CREATE).is_ok()
}

/// Whether the current role may create temporary objects here.
pub fn available(client: &mut impl GenericClient) -> bool {
    client
        .query_one(
            "SELECT pg_catalog.has_database_privilege(current_database(), 'TEMPORARY')",
            &[],
        )
        .is_ok_and(|row| row.get(0))
}

/// The statement that starts a batch: no statement has completed yet.
pub fn reset() -> String {
    format!("SELECT pg_catalog.setval('{SEQUENCE}', 0, true);\n")
}

/// The statement that follows each statement of a batch.
pub fn mark() -> String {
    format!("SELECT pg_catalog.nextval('{SEQUENCE}');\n")
}

/// How many statements of the failed batch completed (call after rolling
/// back to before it: the sequence keeps its value), if marks were on.
pub fn completed(client: &mut impl GenericClient) -> Option<usize> {
    let row = client
        .query_one(&format!("SELECT pg_catalog.currval('{SEQUENCE}')"), &[])
        .ok()?;
    usize::try_from(row.get::<_, i64>(0)).ok()
}
