//! `hydra-mountd`: the `hydra` command-line interface and daemon: the
//! FUSE front end, the 9P2000.L server and the commands that drive them.

pub mod busy;
pub mod cli;
pub mod daemon;
pub mod fuse;
pub mod gateway;
pub mod gitviews;
pub mod kernelrefs;
pub mod ninep;
pub mod ops;
pub mod snapdir;
