//! The UnixFS filesystem core. Built in a later issue.
