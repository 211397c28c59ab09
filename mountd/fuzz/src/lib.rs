//! The 9P2000.L wire codec of hydra-mountd, compiled on its own so the fuzz
//! targets test exactly the production file without building the daemon.

#[path = "../../src/ninep/wire.rs"]
pub mod wire;
