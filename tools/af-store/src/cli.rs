//! The one `main` every tool shares: Unix pipe manners and a clean error exit.

/// Run a tool's body: a reader that goes away (`tool … | head`) ends the tool quietly
/// instead of a panic on a closed stdout, and an error prints `error: …` with its
/// causes and exits 1 — no panic reaches the user.
pub fn main_with(body: impl FnOnce() -> anyhow::Result<()>) {
    #[cfg(unix)]
    // SAFETY: restoring the default SIGPIPE action before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    if let Err(e) = body() {
        eprintln!("{}", crate::log::error_line(&format!("{e:#}")));
        std::process::exit(1);
    }
}
