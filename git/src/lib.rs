//! git repositories stored in the block DAG. Built in a later issue.
