//! Settings of the rate limiter (config file keys, environment overrides) and the sizing rule
//! that turns them into a GCRA emission interval and burst.
//!
//! Sizing: the server allows `L = rate_per_minute × window_secs / 60` requests per window of
//! `W = window_secs`. GCRA admits at most `b + ⌊W/T⌋` requests in any window of length `W`
//! (fixed or sliding), so the limiter paces at `W/T = L − b − margin` per window with
//! `margin = ⌈L × headroom⌉`: the worst window then holds `L − margin` requests, and the margin
//! absorbs network jitter between our clock and the server's. Defaults (300/min, burst 3,
//! headroom 1 %): 294 per minute paced, at most 297 in any 60 s window, 98 % of the budget.

use std::time::Duration;

use serde::Deserialize;

/// A setting has an invalid value; the message names the setting.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid setting `{setting}`: {message}")]
pub struct SettingsError {
    pub setting: String,
    pub message: String,
}

impl SettingsError {
    pub fn new(setting: &str, message: impl Into<String>) -> Self {
        SettingsError {
            setting: setting.to_owned(),
            message: message.into(),
        }
    }
}

/// Adaptive throttling on the 429 ratio (Google SRE-style client-side signal, AIMD reaction).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptiveSettings {
    /// Switch adaptive throttling off entirely (Retry-After is obeyed regardless).
    pub enabled: bool,
    /// 429 ratio above which the rate is lowered (0.01 = 1 %).
    pub threshold: f64,
    /// Multiplier applied to the refill rate at each breach (0.8 = −20 %).
    pub factor: f64,
    /// How long a reduction holds before recovery starts (seconds).
    pub hold_secs: u64,
    /// Lowest rate, as a fraction of the configured rate.
    pub floor: f64,
    /// Recovery: fraction of the configured rate given back per step.
    pub recovery_step: f64,
    /// Recovery: seconds between steps.
    pub recovery_interval_secs: u64,
    /// Width of the sliding window over which the 429 ratio is measured (seconds).
    pub window_secs: u64,
    /// Responses needed (since the last reduction) before a breach can be declared.
    pub min_samples: u32,
    /// This many separate 429 episodes (429s that start a new pause) within the window are a
    /// breach too, whatever the ratio (0 = off).
    pub episodes: u32,
}

impl Default for AdaptiveSettings {
    fn default() -> Self {
        AdaptiveSettings {
            enabled: true,
            threshold: 0.01,
            factor: 0.8,
            hold_secs: 3600,
            floor: 0.1,
            recovery_step: 0.05,
            recovery_interval_secs: 300,
            window_secs: 120,
            min_samples: 20,
            episodes: 2,
        }
    }
}

/// Settings of the RateLimiter.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimiterSettings {
    /// The server's request budget per minute for our OAuth token (Genesys: 300).
    pub rate_per_minute: u32,
    /// Width of the server's counting window in seconds (Genesys: 60).
    pub window_secs: u64,
    /// Requests allowed back to back; default `max(1, L/100)`.
    pub burst: Option<u32>,
    /// Fraction of the window's limit kept unused against clock/network jitter.
    pub headroom: f64,
    /// Concurrent analytics requests the org allows (Genesys figure: 10).
    pub org_concurrency: u32,
    /// Slots left to the org's other integrations; our cap is `org_concurrency − buffer`.
    pub concurrency_buffer: u32,
    /// Up to this much random delay is added after a Retry-After pause (milliseconds).
    pub retry_after_jitter_ms: u64,
    /// A Retry-After longer than this (seconds) is a quota breach.
    pub quota_breach_secs: u64,
    pub adaptive: AdaptiveSettings,
}

impl Default for RateLimiterSettings {
    fn default() -> Self {
        RateLimiterSettings {
            rate_per_minute: 300,
            window_secs: 60,
            burst: None,
            headroom: 0.01,
            org_concurrency: 10,
            concurrency_buffer: 2,
            retry_after_jitter_ms: 500,
            quota_breach_secs: 180,
            adaptive: AdaptiveSettings::default(),
        }
    }
}

/// The pacing derived from validated settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacing {
    /// Server limit per window.
    pub limit_per_window: u32,
    pub window: Duration,
    pub burst: u32,
    /// Requests per window the limiter paces at when not throttled.
    pub paced_per_window: f64,
}

impl Pacing {
    /// The emission interval for a given rate multiplier (≤ 1).
    pub fn interval(&self, multiplier: f64) -> Duration {
        let per_window = (self.paced_per_window * multiplier).max(1e-6);
        Duration::from_secs_f64(self.window.as_secs_f64() / per_window)
    }

    /// Requests per minute for a given multiplier.
    pub fn per_minute(&self, multiplier: f64) -> f64 {
        self.paced_per_window * multiplier * 60.0 / self.window.as_secs_f64()
    }
}

impl RateLimiterSettings {
    /// The concurrency cap: org limit minus the buffer.
    pub fn concurrency_cap(&self) -> u32 {
        self.org_concurrency.saturating_sub(self.concurrency_buffer)
    }

    /// Server limit per window, `rate_per_minute × window / 60`, at least 1.
    pub fn limit_per_window(&self) -> u32 {
        let l = (u64::from(self.rate_per_minute) * self.window_secs) / 60;
        l.clamp(1, u64::from(u32::MAX)) as u32
    }

    /// Checks every value and derives the pacing; the error names the bad setting.
    pub fn validate(&self) -> Result<Pacing, SettingsError> {
        if self.rate_per_minute == 0 {
            return Err(SettingsError::new("rate_per_minute", "must be at least 1"));
        }
        if self.window_secs == 0 || self.window_secs > 86_400 {
            return Err(SettingsError::new(
                "window_secs",
                "must be between 1 and 86400",
            ));
        }
        if !(0.0..0.5).contains(&self.headroom) {
            return Err(SettingsError::new("headroom", "must be in [0, 0.5)"));
        }
        if self.org_concurrency == 0 {
            return Err(SettingsError::new("org_concurrency", "must be at least 1"));
        }
        if self.concurrency_buffer >= self.org_concurrency {
            return Err(SettingsError::new(
                "concurrency_buffer",
                format!(
                    "must be smaller than org_concurrency ({}), or no request could ever run",
                    self.org_concurrency
                ),
            ));
        }
        if self.quota_breach_secs == 0 {
            return Err(SettingsError::new(
                "quota_breach_secs",
                "must be at least 1",
            ));
        }
        let a = &self.adaptive;
        if !(a.threshold > 0.0 && a.threshold < 1.0) {
            return Err(SettingsError::new(
                "adaptive.threshold",
                "must be in (0, 1)",
            ));
        }
        if !(a.factor > 0.0 && a.factor < 1.0) {
            return Err(SettingsError::new("adaptive.factor", "must be in (0, 1)"));
        }
        if !(a.floor > 0.0 && a.floor <= 1.0) {
            return Err(SettingsError::new("adaptive.floor", "must be in (0, 1]"));
        }
        if !(a.recovery_step > 0.0 && a.recovery_step <= 1.0) {
            return Err(SettingsError::new(
                "adaptive.recovery_step",
                "must be in (0, 1]",
            ));
        }
        if a.recovery_interval_secs == 0 {
            return Err(SettingsError::new(
                "adaptive.recovery_interval_secs",
                "must be at least 1",
            ));
        }
        if a.window_secs == 0 {
            return Err(SettingsError::new(
                "adaptive.window_secs",
                "must be at least 1",
            ));
        }
        let limit = self.limit_per_window();
        let burst = self.burst.unwrap_or((limit / 100).max(1));
        if burst == 0 {
            return Err(SettingsError::new("burst", "must be at least 1"));
        }
        let margin = (f64::from(limit) * self.headroom).ceil() as u32;
        if u64::from(burst) + u64::from(margin) >= u64::from(limit) {
            return Err(SettingsError::new(
                "burst",
                format!(
                    "burst {burst} plus headroom {margin} leaves nothing of the {limit} requests per {} s window",
                    self.window_secs
                ),
            ));
        }
        Ok(Pacing {
            limit_per_window: limit,
            window: Duration::from_secs(self.window_secs),
            burst,
            paced_per_window: f64::from(limit - burst - margin),
        })
    }

    /// Applies the `SLUICE_*` environment overrides (see [`Self::apply_env_from`]).
    pub fn apply_env(&mut self) -> Result<(), SettingsError> {
        self.apply_env_from(|k| std::env::var(k).ok())
    }

    /// Applies overrides read through `get`: SLUICE_RATE_PER_MINUTE, SLUICE_RATE_WINDOW_SECS,
    /// SLUICE_RATE_BURST, SLUICE_RATE_HEADROOM, SLUICE_ORG_CONCURRENCY,
    /// SLUICE_CONCURRENCY_BUFFER, SLUICE_RETRY_AFTER_JITTER_MS, SLUICE_QUOTA_BREACH_SECS,
    /// SLUICE_ADAPTIVE_ENABLED, SLUICE_ADAPTIVE_THRESHOLD, SLUICE_ADAPTIVE_FACTOR,
    /// SLUICE_ADAPTIVE_HOLD_SECS, SLUICE_ADAPTIVE_FLOOR, SLUICE_ADAPTIVE_RECOVERY_STEP,
    /// SLUICE_ADAPTIVE_RECOVERY_INTERVAL_SECS, SLUICE_ADAPTIVE_WINDOW_SECS,
    /// SLUICE_ADAPTIVE_MIN_SAMPLES, SLUICE_ADAPTIVE_EPISODES. Then validates.
    pub fn apply_env_from(
        &mut self,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<(), SettingsError> {
        fn parse<T: std::str::FromStr>(
            get: &impl Fn(&str) -> Option<String>,
            var: &str,
            target: &mut T,
        ) -> Result<(), SettingsError> {
            if let Some(v) = get(var) {
                *target = v
                    .trim()
                    .parse()
                    .map_err(|_| SettingsError::new(var, format!("cannot parse {v:?}")))?;
            }
            Ok(())
        }
        parse(&get, "SLUICE_RATE_PER_MINUTE", &mut self.rate_per_minute)?;
        parse(&get, "SLUICE_RATE_WINDOW_SECS", &mut self.window_secs)?;
        if let Some(v) = get("SLUICE_RATE_BURST") {
            let b: u32 = v.trim().parse().map_err(|_| {
                SettingsError::new("SLUICE_RATE_BURST", format!("cannot parse {v:?}"))
            })?;
            self.burst = Some(b);
        }
        parse(&get, "SLUICE_RATE_HEADROOM", &mut self.headroom)?;
        parse(&get, "SLUICE_ORG_CONCURRENCY", &mut self.org_concurrency)?;
        parse(
            &get,
            "SLUICE_CONCURRENCY_BUFFER",
            &mut self.concurrency_buffer,
        )?;
        parse(
            &get,
            "SLUICE_RETRY_AFTER_JITTER_MS",
            &mut self.retry_after_jitter_ms,
        )?;
        parse(
            &get,
            "SLUICE_QUOTA_BREACH_SECS",
            &mut self.quota_breach_secs,
        )?;
        let a = &mut self.adaptive;
        parse(&get, "SLUICE_ADAPTIVE_ENABLED", &mut a.enabled)?;
        parse(&get, "SLUICE_ADAPTIVE_THRESHOLD", &mut a.threshold)?;
        parse(&get, "SLUICE_ADAPTIVE_FACTOR", &mut a.factor)?;
        parse(&get, "SLUICE_ADAPTIVE_HOLD_SECS", &mut a.hold_secs)?;
        parse(&get, "SLUICE_ADAPTIVE_FLOOR", &mut a.floor)?;
        parse(&get, "SLUICE_ADAPTIVE_RECOVERY_STEP", &mut a.recovery_step)?;
        parse(
            &get,
            "SLUICE_ADAPTIVE_RECOVERY_INTERVAL_SECS",
            &mut a.recovery_interval_secs,
        )?;
        parse(&get, "SLUICE_ADAPTIVE_WINDOW_SECS", &mut a.window_secs)?;
        parse(&get, "SLUICE_ADAPTIVE_MIN_SAMPLES", &mut a.min_samples)?;
        parse(&get, "SLUICE_ADAPTIVE_EPISODES", &mut a.episodes)?;
        self.validate().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pace_below_the_limit_and_use_98_percent() {
        let s = RateLimiterSettings::default();
        let p = s.validate().unwrap();
        assert_eq!(p.limit_per_window, 300);
        assert_eq!(p.burst, 3);
        assert_eq!(p.paced_per_window, 294.0);
        assert_eq!(s.concurrency_cap(), 8);
        // Worst window: b + W/T.
        let w_over_t = p.window.as_secs_f64() / p.interval(1.0).as_secs_f64();
        assert!(f64::from(p.burst) + w_over_t.floor() <= 300.0);
    }

    #[test]
    fn env_overrides_apply_and_bad_values_name_the_setting() {
        let mut s = RateLimiterSettings::default();
        let env = |k: &str| match k {
            "SLUICE_RATE_PER_MINUTE" => Some("360".to_owned()),
            "SLUICE_ORG_CONCURRENCY" => Some("6".to_owned()),
            "SLUICE_ADAPTIVE_FACTOR" => Some("0.5".to_owned()),
            _ => None,
        };
        s.apply_env_from(env).unwrap();
        assert_eq!(s.rate_per_minute, 360);
        assert_eq!(s.concurrency_cap(), 4);
        assert_eq!(s.adaptive.factor, 0.5);

        let err = RateLimiterSettings::default()
            .apply_env_from(|k| (k == "SLUICE_RATE_PER_MINUTE").then(|| "lots".to_owned()))
            .unwrap_err();
        assert_eq!(err.setting, "SLUICE_RATE_PER_MINUTE");

        let err = RateLimiterSettings::default()
            .apply_env_from(|k| (k == "SLUICE_CONCURRENCY_BUFFER").then(|| "10".to_owned()))
            .unwrap_err();
        assert_eq!(err.setting, "concurrency_buffer");
        assert!(err.to_string().contains("concurrency_buffer"));
    }

    #[test]
    fn invalid_values_are_rejected() {
        let s = RateLimiterSettings {
            rate_per_minute: 0,
            ..Default::default()
        };
        assert_eq!(s.validate().unwrap_err().setting, "rate_per_minute");
        let mut s = RateLimiterSettings::default();
        s.adaptive.factor = 1.2;
        assert_eq!(s.validate().unwrap_err().setting, "adaptive.factor");
        let s = RateLimiterSettings {
            burst: Some(299),
            ..Default::default()
        };
        assert_eq!(s.validate().unwrap_err().setting, "burst");
    }

    #[test]
    fn config_file_keys_deserialize() {
        let s: RateLimiterSettings = toml::from_str(
            "rate_per_minute = 200\norg_concurrency = 5\nconcurrency_buffer = 1\n[adaptive]\nthreshold = 0.02\n",
        )
        .unwrap();
        assert_eq!(s.rate_per_minute, 200);
        assert_eq!(s.concurrency_cap(), 4);
        assert_eq!(s.adaptive.threshold, 0.02);
        assert_eq!(s.adaptive.factor, 0.8);
        assert!(toml::from_str::<RateLimiterSettings>("rate_per_minut = 1").is_err());
    }
}
