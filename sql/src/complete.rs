//! Whether text ends a complete SQL statement, as SQLite's own shell
//! decides it (`sqlite3_complete`: semicolons inside strings, comments and
//! trigger bodies do not count).
//!
//! `unsafe` is forced: the check is SQLite's C function.

#![allow(unsafe_code)]

use std::ffi::CString;

use rusqlite::ffi;

/// Whether `sql` ends with a complete statement.
pub fn is_complete(sql: &str) -> bool {
    let Ok(c) = CString::new(sql) else {
        return false;
    };
    // SAFETY: `c` is a NUL-terminated string that lives across the call;
    // sqlite3_complete only reads it.
    unsafe { ffi::sqlite3_complete(c.as_ptr()) != 0 }
}

#[cfg(test)]
mod tests {
    use super::is_complete;

    #[test]
    fn statements_end_where_sqlite_says() {
        assert!(is_complete("SELECT 1;"));
        assert!(!is_complete("SELECT 1"));
        assert!(!is_complete("SELECT ';"));
        assert!(!is_complete(
            "CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1;"
        ));
        assert!(is_complete(
            "CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; END;"
        ));
    }
}
