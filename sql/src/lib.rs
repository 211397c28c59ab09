//! SQLite whose pages live in the block DAG. Built in a later issue.
