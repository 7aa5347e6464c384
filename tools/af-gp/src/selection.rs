//! Selection fitness: what GP selects a candidate on, given its score and what fitness
//! recorded about it against the library — so the search neither breeds copies of what
//! the library holds nor abandons a family it could still improve.

/// What fitness recorded about a candidate against the library.
pub struct Lib {
    /// Largest |corr| with a library factor (NaN: no library).
    pub rho: f64,
    /// ρ reached the library bound, so fitness zeroed the score.
    pub near_copy: bool,
    /// The score before that zeroing.
    pub merit: f64,
    /// The library score of the factor ρ was measured against.
    pub member: f64,
}

/// A factor unlike the library: score · (1 − |ρ|)^`pressure` (no library: the score).
/// A near-copy of a member: how much it beats that member (`library-merge` swaps them
/// when it does), else 0 — so the search refines a found family toward its best form
/// instead of either breeding copies or abandoning it.
pub fn selection_fitness(score: f64, lib: &Lib, pressure: f64) -> f64 {
    if lib.near_copy {
        let gain = lib.merit - lib.member;
        return if gain.is_finite() { gain.max(0.0) } else { 0.0 };
    }
    if lib.rho.is_finite() && pressure > 0.0 {
        score * (1.0 - lib.rho.abs().min(1.0)).powf(pressure)
    } else {
        score
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib(rho: f64) -> Lib {
        Lib {
            rho,
            near_copy: false,
            merit: f64::NAN,
            member: f64::NAN,
        }
    }

    #[test]
    fn selection_discounts_what_the_library_already_has() {
        assert_eq!(selection_fitness(0.03, &lib(f64::NAN), 1.0), 0.03);
        assert_eq!(selection_fitness(0.03, &lib(0.5), 0.0), 0.03);
        assert!((selection_fitness(0.03, &lib(-0.5), 1.0) - 0.015).abs() < 1e-15);
        assert!((selection_fitness(0.03, &lib(0.5), 2.0) - 0.0075).abs() < 1e-15);
        // A weaker factor unlike the library beats a stronger near-copy.
        assert!(
            selection_fitness(0.019, &lib(0.2), 1.0) > selection_fitness(0.03, &lib(0.65), 1.0)
        );
        assert_eq!(selection_fitness(0.03, &lib(1.2), 1.0), 0.0);
    }

    #[test]
    fn a_near_copy_counts_by_what_it_adds_to_its_member() {
        let near = |merit, member| Lib {
            rho: 0.9,
            near_copy: true,
            merit,
            member,
        };
        // Better than the member it resembles: the gain.
        assert!((selection_fitness(0.0, &near(0.031, 0.027), 1.0) - 0.004).abs() < 1e-15);
        // Worse, or no member score recorded: nothing.
        assert_eq!(selection_fitness(0.0, &near(0.02, 0.027), 1.0), 0.0);
        assert_eq!(selection_fitness(0.0, &near(0.03, f64::NAN), 1.0), 0.0);
    }
}
