//! Injected faults: latency, dropped connections and error answers on the Vonage API routes.
//! Pure decisions from given dice rolls, so the odds are unit-testable; no I/O here.

use std::time::Duration;

/// The longest injected latency accepted (10 minutes), so a typo cannot wedge a test run.
const MAX_LATENCY_MS: u64 = 600_000;

/// Faults applied to every Vonage API request (never to `/_emulator/*`), in this order:
/// wait `latency_ms`; drop the connection with probability `drop_rate`; answer `error_status`
/// with probability `error_rate`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Faults {
    /// Delay before anything else happens, in milliseconds (at most 600 000).
    pub latency_ms: u64,
    /// Probability (0..=1) of answering `error_status` instead of handling the request.
    pub error_rate: f64,
    /// Status of injected errors: 400..=599, or 0 for 503.
    pub error_status: u16,
    /// Probability (0..=1) of closing the connection without any response.
    pub drop_rate: f64,
}

/// Why a [`Faults`] value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FaultsError {
    /// A rate is not a number in 0..=1.
    #[error("{0} must be between 0 and 1")]
    Rate(&'static str),
    /// `errorStatus` is neither 0 nor an HTTP error status.
    #[error("errorStatus must be 0 or between 400 and 599")]
    Status,
    /// `latencyMs` is too long to be useful.
    #[error("latencyMs must be at most {MAX_LATENCY_MS}")]
    Latency,
}

/// What to do with one request after the latency has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Handle the request normally.
    Pass,
    /// Close the connection without a response.
    Drop,
    /// Answer with this error status.
    Fail(u16),
}

impl Faults {
    /// Checks the rates, status and latency; the emulator refuses anything else.
    pub(crate) fn validate(&self) -> Result<(), FaultsError> {
        for (name, rate) in [("errorRate", self.error_rate), ("dropRate", self.drop_rate)] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(FaultsError::Rate(name));
            }
        }
        if self.error_status != 0 && !(400..=599).contains(&self.error_status) {
            return Err(FaultsError::Status);
        }
        if self.latency_ms > MAX_LATENCY_MS {
            return Err(FaultsError::Latency);
        }
        Ok(())
    }

    /// The delay to apply before deciding.
    pub(crate) fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }

    /// Decides a request's fate from two uniform rolls in `[0, 1)`.
    pub(crate) fn decide(&self, drop_roll: f64, error_roll: f64) -> Decision {
        if drop_roll < self.drop_rate {
            Decision::Drop
        } else if error_roll < self.error_rate {
            Decision::Fail(self.status())
        } else {
            Decision::Pass
        }
    }

    /// Decides a request's fate with fresh random rolls.
    pub(crate) fn roll(&self) -> Decision {
        self.decide(rand::random::<f64>(), rand::random::<f64>())
    }

    fn status(&self) -> u16 {
        if self.error_status == 0 {
            503
        } else {
            self.error_status
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(error_rate: f64, error_status: u16, drop_rate: f64) -> Faults {
        Faults {
            latency_ms: 0,
            error_rate,
            error_status,
            drop_rate,
        }
    }

    #[test]
    fn no_faults_always_pass() {
        assert_eq!(Faults::default().decide(0.0, 0.0), Decision::Pass);
        assert_eq!(Faults::default().roll(), Decision::Pass);
    }

    #[test]
    fn certain_faults_always_fire_and_drop_wins_over_error() {
        assert_eq!(
            faults(1.0, 429, 0.0).decide(0.99, 0.99),
            Decision::Fail(429)
        );
        assert_eq!(faults(1.0, 0, 0.0).decide(0.5, 0.5), Decision::Fail(503));
        assert_eq!(faults(1.0, 500, 1.0).decide(0.99, 0.0), Decision::Drop);
    }

    #[test]
    fn partial_rates_compare_against_the_roll() {
        let half = faults(0.5, 500, 0.25);
        assert_eq!(half.decide(0.2, 0.9), Decision::Drop);
        assert_eq!(half.decide(0.3, 0.4), Decision::Fail(500));
        assert_eq!(half.decide(0.3, 0.6), Decision::Pass);
    }

    #[test]
    fn validation_rejects_out_of_range_values() {
        let cases = [
            (faults(1.5, 0, 0.0), Err(FaultsError::Rate("errorRate"))),
            (faults(0.0, 0, -0.1), Err(FaultsError::Rate("dropRate"))),
            (
                faults(f64::NAN, 0, 0.0),
                Err(FaultsError::Rate("errorRate")),
            ),
            (faults(0.0, 200, 0.0), Err(FaultsError::Status)),
            (faults(0.0, 600, 0.0), Err(FaultsError::Status)),
            (faults(1.0, 429, 1.0), Ok(())),
            (faults(0.0, 0, 0.0), Ok(())),
        ];
        for (input, expected) in cases {
            assert_eq!(input.validate(), expected, "{input:?}");
        }
        let slow = Faults {
            latency_ms: MAX_LATENCY_MS + 1,
            ..Faults::default()
        };
        assert_eq!(slow.validate(), Err(FaultsError::Latency));
    }

    #[test]
    fn missing_fields_default_and_unknown_fields_are_refused() {
        let parsed: Faults = serde_json::from_str(r#"{"latencyMs":200}"#).unwrap();
        assert_eq!(parsed.latency_ms, 200);
        assert_eq!(parsed.error_rate, 0.0);
        assert!(serde_json::from_str::<Faults>(r#"{"latency":200}"#).is_err());
    }
}
