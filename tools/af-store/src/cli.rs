//! The one `main` every tool shares: Unix pipe manners and a clean error exit.

/// Run a tool's body: a reader that goes away (`tool … | head`) ends the tool quietly
/// instead of a panic on a closed stdout, and an error prints `error: …` with its
/// causes and exits 1 — no panic reaches the user.
pub fn main_with(body: impl FnOnce() -> anyhow::Result<()>) {
    if let Some(missing) = missing_cpu_features() {
        eprintln!(
            "{}",
            crate::log::error_line(&format!(
                "this build was made for a CPU with {missing}, which this one lacks (built with \
                 target-cpu=native on another machine?): build on this machine (`make release`), \
                 or a portable build for every x86-64-v3 CPU (AVX2: Haswell and later) with \
                 `make release PORTABLE=1`"
            ))
        );
        std::process::exit(2);
    }
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

/// The CPU features the build assumes (`.cargo/config.toml` builds for the build
/// machine: `target-cpu=native`) that this CPU lacks, named; `None` when it has them
/// all. Checked before anything else runs, so a binary copied to an older machine (an
/// AVX2-only Airflow worker or CI runner, from an AVX-512 build machine) stops with a
/// sentence instead of an illegal-instruction crash somewhere inside a kernel.
pub fn missing_cpu_features() -> Option<String> {
    #[cfg(target_arch = "x86_64")]
    {
        let mut miss = Vec::new();
        macro_rules! need {
            ($($f:tt),*) => {$(
                if cfg!(target_feature = $f) && !std::arch::is_x86_feature_detected!($f) {
                    miss.push($f);
                }
            )*};
        }
        need!(
            "sse4.2",
            "popcnt",
            "avx",
            "avx2",
            "fma",
            "bmi1",
            "bmi2",
            "lzcnt",
            "f16c",
            "avx512f",
            "avx512cd",
            "avx512bw",
            "avx512dq",
            "avx512vl",
            "avx512vbmi",
            "avx512vnni"
        );
        if !miss.is_empty() {
            return Some(miss.join(", "));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_machine_that_built_the_tests_can_run_them() {
        assert_eq!(super::missing_cpu_features(), None);
    }
}
