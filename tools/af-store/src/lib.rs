//! The artifact store: how every alpha-factory tool writes files.
//!
//! Three rules hold for every artifact (docs/pipeline.md, "Killing and resuming"):
//! - **Content hash**: an artifact is identified by the sha256 of its bytes
//!   ([`sha256_file`]); outputs are deterministic so equal inputs give equal hashes.
//! - **Provenance**: the producing tool, its version, its canonical parameters and the
//!   hashes of its inputs travel inside the file's key-value metadata ([`Provenance`]).
//! - **Atomicity**: a file is written to a temp file in the same folder, fsynced and
//!   renamed ([`write_atomic`]), under a lock in `state/locks/` ([`OutputLock`]), so a
//!   killed run never leaves a file that looks finished and two writers never interleave.

mod atomic;
pub mod cli;
mod hash;
mod lock;
pub mod log;
mod provenance;
mod secret;

pub use atomic::{AtomicDir, sweep_stale_tmps, write_atomic, write_atomic_bytes};
pub use hash::{Sha256Writer, sha256_bytes, sha256_file};
pub use lock::OutputLock;
pub use provenance::{
    META_INPUTS, META_PARAMS, META_TOOL, META_VERSION, Provenance, canonical_json,
};
pub use secret::secret;
