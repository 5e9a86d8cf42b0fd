//! The `profiles` table: the app's own record of each person who signed in (first and last time,
//! how often), upserted at every sign-in.

use serde::{Deserialize, Serialize};

use super::{Db, Store, StoreError, on_pool};
use crate::keys::Purpose;

const UPSERT: &str = "INSERT INTO profiles
        (username, user_id, details, first_signed_in_at, last_signed_in_at, sign_in_count)
    VALUES (?, ?, ?, ?, ?, 1)
    ON CONFLICT (username) DO UPDATE SET
        user_id = COALESCE(excluded.user_id, profiles.user_id),
        details = COALESCE(excluded.details, profiles.details),
        last_signed_in_at = excluded.last_signed_in_at,
        sign_in_count = profiles.sign_in_count + 1";

/// [`UPSERT`] for MySQL, which has no `ON CONFLICT`; its newer row alias (`AS new`) is unknown to
/// MariaDB, so the inserted values are named with `VALUES()`, which both take.
const MYSQL_UPSERT: &str = "INSERT INTO profiles
        (username, user_id, details, first_signed_in_at, last_signed_in_at, sign_in_count)
    VALUES (?, ?, ?, ?, ?, 1)
    ON DUPLICATE KEY UPDATE
        user_id = COALESCE(VALUES(user_id), user_id),
        details = COALESCE(VALUES(details), details),
        last_signed_in_at = VALUES(last_signed_in_at),
        sign_in_count = sign_in_count + 1";

/// What the record holds of a person besides their username: personal data, so sealed
/// (bound to the username: a row's details copied to another do not open).
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileDetails {
    pub email: Option<String>,
    pub name: Option<String>,
}

impl Store {
    /// Records a sign-in: creates the row the first time, updates it on every later sign-in
    /// (details the LMS did not send this time are kept from before).
    pub async fn record_sign_in(
        &self,
        username: &str,
        user_id: Option<i64>,
        details: &ProfileDetails,
        at: i64,
    ) -> Result<(), StoreError> {
        let sql = match &self.db {
            Db::MySql(_) => MYSQL_UPSERT,
            Db::Sqlite(_) | Db::Postgres(_) => UPSERT,
        };
        let details = match details == &ProfileDetails::default() {
            true => None,
            false => Some(self.seal(Purpose::Profile, username, details)?),
        };
        on_pool!(self, sql, pool => {
            sqlx::query(sql)
                .bind(username)
                .bind(user_id)
                .bind(&details)
                .bind(at)
                .bind(at)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// The record's details of `username`, if any were ever sent.
    pub async fn profile_details(
        &self,
        username: &str,
    ) -> Result<Option<ProfileDetails>, StoreError> {
        let sql = "SELECT details FROM profiles WHERE username = ?";
        let sealed: Option<Option<String>> = on_pool!(self, sql, pool => {
            sqlx::query_scalar(sql).bind(username).fetch_optional(pool).await
        })?;
        match sealed.flatten() {
            Some(sealed) => Ok(Some(self.open(Purpose::Profile, username, &sealed)?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ProfileDetails;
    use crate::store::{on_pool, tests::temp_store};

    fn details(email: &str, name: Option<&str>) -> ProfileDetails {
        ProfileDetails {
            email: Some(email.into()),
            name: name.map(Into::into),
        }
    }

    #[tokio::test]
    async fn a_second_sign_in_keeps_the_first_time_and_counts() {
        let store = temp_store().await;
        let first = details("a@x", Some("Ada"));
        store
            .record_sign_in("ada", Some(7), &first, 100)
            .await
            .expect("first");
        store
            .record_sign_in("ada", None, &ProfileDetails::default(), 200)
            .await
            .expect("second");
        let sql = "SELECT user_id, first_signed_in_at, last_signed_in_at, sign_in_count
                   FROM profiles WHERE username = 'ada'";
        let row: (Option<i64>, i64, i64, i64) =
            on_pool!(store, pool => sqlx::query_as(sql).fetch_one(pool).await.expect("row"));
        assert_eq!(row, (Some(7), 100, 200, 2));
        let kept = store.profile_details("ada").await.expect("opens");
        assert_eq!(kept, Some(first), "nothing sent: the details stay");
    }

    #[tokio::test]
    async fn email_and_name_are_sealed_and_bound_to_their_username() {
        let store = temp_store().await;
        let ada = details("ada@example.org", Some("Ada Lovelace"));
        store
            .record_sign_in("ada", None, &ada, 1)
            .await
            .expect("ada");
        let bob = details("bob@example.org", None);
        store
            .record_sign_in("bob", None, &bob, 1)
            .await
            .expect("bob");
        let raw: Vec<String> = on_pool!(store, pool => {
            sqlx::query_scalar("SELECT details FROM profiles").fetch_all(pool).await.expect("rows")
        });
        assert!(
            raw.iter()
                .all(|d| !d.contains("example.org") && !d.contains("Ada"))
        );
        let swapped = "UPDATE profiles SET details = \
                       (SELECT details FROM profiles WHERE username = 'ada') WHERE username = 'bob'";
        on_pool!(store, pool => sqlx::query(swapped).execute(pool).await.expect("swapped").rows_affected());
        assert!(store.profile_details("bob").await.is_err());
    }
}
