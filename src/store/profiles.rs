//! The `profiles` table: the app's own record of each person who signed in (first and last time,
//! how often), upserted at every sign-in.

use super::{Db, Store, StoreError, on_pool};

const UPSERT: &str = "INSERT INTO profiles
        (username, user_id, email, name, first_signed_in_at, last_signed_in_at, sign_in_count)
    VALUES (?, ?, ?, ?, ?, ?, 1)
    ON CONFLICT (username) DO UPDATE SET
        user_id = COALESCE(excluded.user_id, profiles.user_id),
        email = COALESCE(excluded.email, profiles.email),
        name = COALESCE(excluded.name, profiles.name),
        last_signed_in_at = excluded.last_signed_in_at,
        sign_in_count = profiles.sign_in_count + 1";

/// [`UPSERT`] for MySQL, which has no `ON CONFLICT`; its newer row alias (`AS new`) is unknown to
/// MariaDB, so the inserted values are named with `VALUES()`, which both take.
const MYSQL_UPSERT: &str = "INSERT INTO profiles
        (username, user_id, email, name, first_signed_in_at, last_signed_in_at, sign_in_count)
    VALUES (?, ?, ?, ?, ?, ?, 1)
    ON DUPLICATE KEY UPDATE
        user_id = COALESCE(VALUES(user_id), user_id),
        email = COALESCE(VALUES(email), email),
        name = COALESCE(VALUES(name), name),
        last_signed_in_at = VALUES(last_signed_in_at),
        sign_in_count = sign_in_count + 1";

impl Store {
    /// Records a sign-in: creates the row the first time, updates it on every later sign-in.
    pub async fn record_sign_in(
        &self,
        username: &str,
        user_id: Option<i64>,
        email: Option<&str>,
        name: Option<&str>,
        at: i64,
    ) -> Result<(), StoreError> {
        let sql = match &self.db {
            Db::MySql(_) => MYSQL_UPSERT,
            Db::Sqlite(_) | Db::Postgres(_) => UPSERT,
        };
        on_pool!(self, sql, pool => {
            sqlx::query(sql)
                .bind(username)
                .bind(user_id)
                .bind(email)
                .bind(name)
                .bind(at)
                .bind(at)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{on_pool, tests::temp_store};

    #[tokio::test]
    async fn a_second_sign_in_keeps_the_first_time_and_counts() {
        let store = temp_store().await;
        store
            .record_sign_in("ada", Some(7), Some("a@x"), Some("Ada"), 100)
            .await
            .expect("first");
        store
            .record_sign_in("ada", None, Some("b@x"), None, 200)
            .await
            .expect("second");
        let sql = "SELECT user_id, email, name, first_signed_in_at, last_signed_in_at,
                          sign_in_count FROM profiles WHERE username = 'ada'";
        let row: (Option<i64>, Option<String>, Option<String>, i64, i64, i64) =
            on_pool!(store, pool => sqlx::query_as(sql).fetch_one(pool).await.expect("row"));
        assert_eq!(
            row,
            (Some(7), Some("b@x".into()), Some("Ada".into()), 100, 200, 2)
        );
    }
}
