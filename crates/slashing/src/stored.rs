//! Slots and epochs as both backends store them: signed 64-bit integers (values of 2^63 and above are
//! refused before they reach a store, see [`crate::MAX_STORED_VALUE`]).

use crate::Error;

/// A checked slot or epoch as stored; saturates rather than wraps should a caller skip the check.
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored slot or epoch back as u64; a negative value means the database was altered.
pub(crate) fn to_u64(v: i64) -> Result<u64, Error> {
    u64::try_from(v)
        .map_err(|_| Error::Database(format!("negative slot or epoch {v} in the database")))
}

/// [`to_u64`] for a nullable column.
pub(crate) fn opt_u64(v: Option<i64>) -> Result<Option<u64>, Error> {
    v.map(to_u64).transpose()
}
