//! Small native helpers the stdlib builds on: number formatting and seeded
//! random numbers (Rhai itself has neither).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rhai::plugin::*;

#[export_module]
pub mod util_api {
    /// `x` with `digits` digits after the point (scientific notation for
    /// very small or large magnitudes); `nan`/`inf` as such.
    /// ```rhai
    /// format_number(3.14159, 3)   // "3.142"
    /// ```
    pub fn format_number(x: f64, digits: i64) -> String {
        let d = digits.clamp(0, 12) as usize;
        if !x.is_finite() {
            return x.to_string();
        }
        let a = x.abs();
        if a != 0.0 && (a < 10f64.powi(-(d as i32)) || a >= 1e7) {
            format!("{x:.prec$e}", prec = d.max(1))
        } else {
            format!("{x:.d$}")
        }
    }

    /// An integer formatted as a float.
    /// ```rhai
    /// format_number(3, 2)   // "3.00"
    /// ```
    #[rhai_fn(name = "format_number")]
    pub fn format_int(x: i64, digits: i64) -> String {
        format_number(x as f64, digits)
    }

    /// The `index`-th uniform number in [0, 1) of the stream `seed`
    /// (ChaCha8; the same on every machine).
    /// ```rhai
    /// let u = random_unit(42, 0);
    /// ```
    pub fn random_unit(seed: i64, index: i64) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed as u64);
        rng.set_word_pos((index.max(0) as u128) * 2);
        rng.gen::<f64>()
    }
}

/// Registers the helpers.
pub fn register(engine: &mut rhai::Engine) {
    engine.register_global_module(exported_module!(util_api).into());
}

/// The identifier `s` ends with (letters, digits, `_`; empty if none):
/// the receiver of a method at the cursor, `"let y = ds"` -> `"ds"`.
pub fn trailing_identifier(s: &str) -> &str {
    let start = s
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
        .last()
        .map_or(s.len(), |(i, _)| i);
    &s[start..]
}
