//! A processor's Postgres advisory lock: at most one run of a processor at a time, across every
//! process that shares the database.

use sqlx::PgPool;
use sqlx::pool::PoolConnection;

/// A processor's advisory lock, held on one connection. Released explicitly; if the holder is
/// dropped on the way (an error, a cancelled request), the connection is closed instead of
/// going back to the pool, which frees the lock on the server.
pub(super) struct Lock {
    connection: Option<PoolConnection<sqlx::Postgres>>,
    name: String,
}

impl Lock {
    pub(super) async fn try_take(pool: &PgPool, name: &str) -> Result<Option<Lock>, sqlx::Error> {
        let mut connection = pool.acquire().await?;
        let taken: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_lock(hashtext('sessionflow-processor'), hashtext($1))",
        )
        .bind(name)
        .fetch_one(&mut *connection)
        .await?;
        Ok(taken.then(|| Lock {
            connection: Some(connection),
            name: name.to_owned(),
        }))
    }

    pub(super) async fn release(mut self) {
        if let Some(mut connection) = self.connection.take() {
            let released = sqlx::query(
                "SELECT pg_advisory_unlock(hashtext('sessionflow-processor'), hashtext($1))",
            )
            .bind(&self.name)
            .execute(&mut *connection)
            .await;
            if released.is_err() {
                drop(connection.detach());
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            drop(connection.detach());
        }
    }
}
