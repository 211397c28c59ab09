//! Prolly trees, the key/value view and the graph view. Built in a later issue.
