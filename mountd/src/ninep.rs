//! The 9P2000.L front end: a tokio server that translates 9P requests
//! into `Fs` calls, for the Linux kernel client (`mount -t 9p`) and any
//! other 9P2000.L client, over TCP and unix sockets.

pub mod identity;
pub mod listen;
pub mod locks;
pub mod server;
pub mod session;
pub mod wire;

pub use listen::{Cidr, DEFAULT_LISTEN, Listen};
pub use server::{Config, Server, bind};
pub use session::Export;
