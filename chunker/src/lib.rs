//! Content-defined chunking and blob DAGs (FastCDC + BLAKE3). Built in a later issue.
