//! The Naive Bayes classifier (NBC): does a direction have the rhythm of a
//! voice or video call?
//!
//! Each completed 30-message window of a direction ([`WindowFeatures`]) is
//! scored by a two-class Gaussian Naive Bayes model of its kind (voice
//! windows and video windows have a model each, [`WindowKind`]), media
//! versus other, fitted with `linfa-bayes`. The score is the log-odds of the
//! two classes' joint log-likelihoods, computed here from the model's plain
//! parameters (the same formula as
//! `linfa_bayes::GaussianNb::joint_log_likelihood`, and a test holds them
//! equal) so that scoring a window allocates nothing and stays finite far
//! from the training data, where `predict_proba` overflows. A direction
//! adds its windows' log-odds in Wald's sequential probability ratio test
//! ([`NbcScore`]), which decides media or other as soon as the sum crosses
//! a boundary.

#[cfg(feature = "train")]
use linfa::traits::Fit;
#[cfg(feature = "train")]
use linfa::DatasetBase;
#[cfg(feature = "train")]
use linfa_bayes::{GaussianNb, NaiveBayes};
#[cfg(feature = "train")]
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::config::NbcConfig;
use crate::features::{WindowFeatures, WindowKind};

/// Label of the media class in the fitted model.
pub const MEDIA: usize = 1;
/// Label of the other class in the fitted model.
pub const OTHER: usize = 0;

/// The fitted parameters of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaussianClass {
    /// Training windows of this class.
    pub count: usize,
    /// Prior probability.
    pub prior: f64,
    /// Per-feature mean.
    pub mean: Vec<f64>,
    /// Per-feature variance (with linfa's smoothing added).
    pub variance: Vec<f64>,
}

impl GaussianClass {
    fn check(&self, name: &str) -> Result<(), String> {
        if self.mean.len() != WindowFeatures::LEN || self.variance.len() != WindowFeatures::LEN {
            return Err(format!(
                "class {name}: expected {} means and variances, found {} and {}",
                WindowFeatures::LEN,
                self.mean.len(),
                self.variance.len()
            ));
        }
        if !(self.prior > 0.0 && self.prior <= 1.0) {
            return Err(format!(
                "class {name}: prior {} is not in (0, 1]",
                self.prior
            ));
        }
        if self.mean.iter().any(|m| !m.is_finite()) {
            return Err(format!("class {name}: a mean is not finite"));
        }
        if self.variance.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(format!("class {name}: a variance is not a positive number"));
        }
        Ok(())
    }

    /// The joint log-likelihood of `x` under this class (prior included).
    fn joint_log_likelihood(&self, x: &[f64; WindowFeatures::LEN]) -> f64 {
        let mut norm = 0.0;
        let mut dist = 0.0;
        for ((&xi, &mean), &var) in x.iter().zip(self.mean.iter()).zip(self.variance.iter()) {
            norm += (2.0 * std::f64::consts::PI * var).ln();
            let d = xi - mean;
            dist += d * d / var;
        }
        self.prior.ln() - 0.5 * norm - 0.5 * dist
    }
}

/// A fitted two-class Gaussian Naive Bayes model of one window kind:
/// plain data that serializes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowModel {
    /// Names of the features, in order (for people reading the model file).
    pub features: Vec<String>,
    /// The media class (voice and video windows of calls).
    pub media: GaussianClass,
    /// Every other window.
    pub other: GaussianClass,
}

/// The rhythm model: one window model per window kind. Plain data that
/// serializes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NbcModel {
    /// Voice windows (UDP messages under 400 bytes, TCP segments).
    pub voice: WindowModel,
    /// Video windows (UDP messages of 400 bytes or more).
    pub video: WindowModel,
}

impl NbcModel {
    /// The model of a window kind.
    pub fn of(&self, kind: WindowKind) -> &WindowModel {
        match kind {
            WindowKind::Voice => &self.voice,
            WindowKind::Video => &self.video,
        }
    }

    /// The log-odds of media over other for a window of `kind`.
    #[inline]
    pub fn log_odds(&self, kind: WindowKind, x: &WindowFeatures) -> f64 {
        self.of(kind).log_odds(x)
    }

    /// Checks both models.
    pub fn check(&self) -> Result<(), String> {
        self.voice.check().map_err(|e| format!("voice: {e}"))?;
        self.video.check().map_err(|e| format!("video: {e}"))
    }
}

#[cfg(feature = "train")]
/// Why a model could not be fitted.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    /// One class has no window.
    #[error("no {kind} training windows of class {class}: the labels give no {class} flow with 30 {kind} messages in a direction", kind = .0.as_str(), class = .1)]
    EmptyClass(WindowKind, &'static str),
    /// linfa refused the data.
    #[error("linfa-bayes could not fit the model: {0}")]
    Linfa(String),
    /// The fitted parameters could not be read back.
    #[error("could not read the fitted parameters: {0}")]
    Parameters(String),
}

impl WindowModel {
    /// Checks the parameters: sizes, finite values, positive variances.
    pub fn check(&self) -> Result<(), String> {
        if self.features.len() != WindowFeatures::LEN {
            return Err(format!(
                "expected {} feature names, found {}",
                WindowFeatures::LEN,
                self.features.len()
            ));
        }
        self.media.check("media")?;
        self.other.check("other")
    }

    /// The log-odds of media over other for one window (natural log):
    /// positive when the window looks like a call.
    #[inline]
    pub fn log_odds(&self, x: &WindowFeatures) -> f64 {
        self.media.joint_log_likelihood(&x.0) - self.other.joint_log_likelihood(&x.0)
    }
}

#[cfg(feature = "train")]
impl WindowModel {
    /// Fits the model on windows and their labels (`true` = media) with
    /// `linfa_bayes::GaussianNb`, then sets equal class priors: the decision
    /// rests on the likelihood ratio, not on how many windows of each class
    /// the training captures happened to hold (Tstat's models also use equal
    /// priors). Deterministic: the same windows in the same order give the
    /// same parameters, bit for bit.
    /// Each class's variances are floored at `min_variance`.
    pub fn fit(
        kind: WindowKind,
        windows: &[WindowFeatures],
        media: &[bool],
        min_variance: f64,
    ) -> Result<WindowModel, FitError> {
        let mut m = Self::fit_with_count_priors(kind, windows, media)?;
        for c in [&mut m.media, &mut m.other] {
            c.prior = 0.5;
            for v in c.variance.iter_mut() {
                *v = v.max(min_variance);
            }
        }
        Ok(m)
    }

    /// Fits the model keeping linfa's priors (class shares of the windows).
    pub fn fit_with_count_priors(
        kind: WindowKind,
        windows: &[WindowFeatures],
        media: &[bool],
    ) -> Result<WindowModel, FitError> {
        if !media.iter().any(|&m| m) {
            return Err(FitError::EmptyClass(kind, "media"));
        }
        if media.iter().all(|&m| m) {
            return Err(FitError::EmptyClass(kind, "other"));
        }
        let n = windows.len().min(media.len());
        let mut x = Array2::<f64>::zeros((n, WindowFeatures::LEN));
        for (r, w) in windows.iter().take(n).enumerate() {
            for c in 0..WindowFeatures::LEN {
                x[(r, c)] = w.0[c];
            }
        }
        let y: Array1<usize> = media
            .iter()
            .take(n)
            .map(|&m| if m { MEDIA } else { OTHER })
            .collect();
        let data = DatasetBase::new(x, y);
        let fitted: GaussianNb<f64, usize> = GaussianNb::params()
            .fit(&data)
            .map_err(|e| FitError::Linfa(e.to_string()))?;
        Self::from_linfa(kind, &fitted)
    }

    /// Reads the parameters of a fitted `linfa_bayes::GaussianNb` (through
    /// its serde form: linfa keeps them private).
    pub fn from_linfa(
        kind: WindowKind,
        model: &GaussianNb<f64, usize>,
    ) -> Result<WindowModel, FitError> {
        let v = serde_json::to_value(model).map_err(|e| FitError::Parameters(e.to_string()))?;
        let class = |label: usize| -> Result<GaussianClass, FitError> {
            let c = v
                .get("class_info")
                .and_then(|ci| ci.get(label.to_string()))
                .ok_or_else(|| FitError::Parameters(format!("class {label} missing")))?;
            let arr = |name: &str| -> Result<Vec<f64>, FitError> {
                c.get(name)
                    .and_then(|a| a.get("data"))
                    .and_then(|d| d.as_array())
                    .map(|d| d.iter().filter_map(|x| x.as_f64()).collect())
                    .ok_or_else(|| FitError::Parameters(format!("class {label}: {name} missing")))
            };
            Ok(GaussianClass {
                count: c.get("class_count").and_then(|x| x.as_u64()).unwrap_or(0) as usize,
                prior: c
                    .get("prior")
                    .and_then(|x| x.as_f64())
                    .ok_or_else(|| FitError::Parameters(format!("class {label}: prior missing")))?,
                mean: arr("theta")?,
                variance: arr("sigma")?,
            })
        };
        let m = WindowModel {
            features: kind.feature_names().iter().map(|s| s.to_string()).collect(),
            media: class(MEDIA)?,
            other: class(OTHER)?,
        };
        m.check().map_err(FitError::Parameters)?;
        Ok(m)
    }

    /// Builds the equivalent `linfa_bayes::GaussianNb`, e.g. to cross-check
    /// [`WindowModel::log_odds`] against linfa's own `joint_log_likelihood`.
    pub fn to_linfa(&self) -> Result<GaussianNb<f64, usize>, String> {
        let arr = |v: &[f64]| serde_json::json!({"v": 1, "dim": [v.len()], "data": v});
        let class = |c: &GaussianClass| {
            serde_json::json!({
                "class_count": c.count,
                "prior": c.prior,
                "theta": arr(&c.mean),
                "sigma": arr(&c.variance),
            })
        };
        let v = serde_json::json!({"class_info": {
            MEDIA.to_string(): class(&self.media),
            OTHER.to_string(): class(&self.other),
        }});
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    /// linfa's joint log-likelihoods of (media, other) for windows, for tests
    /// and evaluation (allocates).
    pub fn linfa_log_odds(&self, windows: &[WindowFeatures]) -> Result<Vec<f64>, String> {
        let model = self.to_linfa()?;
        let mut x = Array2::<f64>::zeros((windows.len(), WindowFeatures::LEN));
        for (r, w) in windows.iter().enumerate() {
            for c in 0..WindowFeatures::LEN {
                x[(r, c)] = w.0[c];
            }
        }
        let jll = model.joint_log_likelihood(x.view());
        let media = jll.get(&MEDIA).ok_or("no media class")?;
        let other = jll.get(&OTHER).ok_or("no other class")?;
        Ok(media.iter().zip(other.iter()).map(|(m, o)| m - o).collect())
    }
}

/// Where a direction's sequential rhythm test stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NbcDecision {
    /// Neither boundary crossed yet.
    #[default]
    Pending,
    /// The sum reached the media boundary.
    Media,
    /// The sum fell to the other boundary: the rhythm is not a call's.
    Other,
}

impl NbcDecision {
    /// "pending", "media" or "other".
    pub fn as_str(self) -> &'static str {
        match self {
            NbcDecision::Pending => "pending",
            NbcDecision::Media => "media",
            NbcDecision::Other => "other",
        }
    }
}

/// The running rhythm test of one direction: Wald's sequential probability
/// ratio test over its windows' log-odds, each clamped to
/// `+-window_log_odds_clamp`. The decision, once made, stands.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NbcScore {
    /// Completed windows.
    pub windows: u16,
    /// Windows whose log-odds were positive.
    pub passed: u16,
    /// Sum of the windows' clamped log-odds.
    pub sum_log_odds: f32,
    /// The test's decision.
    pub decision: NbcDecision,
}

impl NbcScore {
    /// Adds one window's log-odds; returns whether the decision changed.
    #[inline]
    pub fn add(&mut self, log_odds: f64, config: &NbcConfig) -> bool {
        self.windows = self.windows.saturating_add(1);
        if log_odds >= 0.0 {
            self.passed = self.passed.saturating_add(1);
        }
        let c = config.window_log_odds_clamp;
        let l = if log_odds.is_nan() {
            -c
        } else {
            log_odds.clamp(-c, c)
        };
        self.sum_log_odds += l as f32;
        if self.decision != NbcDecision::Pending {
            return false;
        }
        let sum = f64::from(self.sum_log_odds);
        if sum >= -config.media_alpha.ln() {
            self.decision = NbcDecision::Media;
        } else if sum <= config.other_alpha.ln() {
            self.decision = NbcDecision::Other;
        }
        self.decision != NbcDecision::Pending
    }

    /// Mean log-odds over the windows (0 without windows).
    pub fn mean_log_odds(&self) -> f64 {
        if self.windows == 0 {
            0.0
        } else {
            f64::from(self.sum_log_odds) / f64::from(self.windows)
        }
    }
}

#[cfg(all(test, feature = "train"))]
mod tests {
    use super::*;

    fn toy() -> (Vec<WindowFeatures>, Vec<bool>) {
        let mut w = Vec::new();
        let mut y = Vec::new();
        let mut s = 1u64;
        let mut r = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f64) / f64::from(1u32 << 31) - 0.5
        };
        for i in 0..200 {
            let media = i % 3 == 0;
            let base = if media {
                [4.5, 2.0, 3.0, 1.0, 0.0, 1.0]
            } else {
                [6.5, 5.0, 1.0, 2.5, 0.05, 0.2]
            };
            let mut f = [0.0; 6];
            for k in 0..6 {
                f[k] = base[k] + r();
            }
            w.push(WindowFeatures(f));
            y.push(media);
        }
        (w, y)
    }

    #[test]
    fn log_odds_equal_linfa_joint_log_likelihood() {
        let (w, y) = toy();
        let m = WindowModel::fit_with_count_priors(WindowKind::Voice, &w, &y).unwrap();
        let ours: Vec<f64> = w.iter().map(|x| m.log_odds(x)).collect();
        let theirs = m.linfa_log_odds(&w).unwrap();
        for (a, b) in ours.iter().zip(theirs.iter()) {
            assert!((a - b).abs() < 1e-9 * (1.0 + a.abs()), "{a} vs {b}");
        }
        // Separable toy data: the sign is right.
        for (x, &media) in w.iter().zip(y.iter()) {
            assert_eq!(m.log_odds(x) > 0.0, media);
        }
    }

    #[test]
    fn far_from_training_stays_finite() {
        let (w, y) = toy();
        let m = WindowModel::fit(WindowKind::Voice, &w, &y, 0.01).unwrap();
        let far = WindowFeatures([1e6, -1e6, 1e6, 1e6, 1e6, -1e6]);
        let l = m.log_odds(&far);
        assert!(l.is_finite());
        let mut s = NbcScore::default();
        let cfg = NbcConfig::default();
        s.add(l, &cfg);
        assert!(s.mean_log_odds().abs() <= cfg.window_log_odds_clamp);
    }

    #[test]
    fn fitting_is_deterministic_and_round_trips() {
        let (w, y) = toy();
        let a = WindowModel::fit(WindowKind::Voice, &w, &y, 0.01).unwrap();
        let b = WindowModel::fit(WindowKind::Voice, &w, &y, 0.01).unwrap();
        assert!(a.media.variance.iter().all(|&v| v >= 0.01));
        assert_eq!(a.media.prior, 0.5);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        let back: WindowModel = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(a, back);
    }

    #[test]
    fn one_class_is_an_error() {
        let (w, _) = toy();
        let all = vec![true; w.len()];
        assert!(matches!(
            WindowModel::fit(WindowKind::Voice, &w, &all, 0.01),
            Err(FitError::EmptyClass(WindowKind::Voice, "other"))
        ));
    }

    #[test]
    fn sequential_decisions() {
        let cfg = NbcConfig::default();
        // One decisive media window (clamped to 10 >= ln 1000 = 6.9).
        let mut s = NbcScore::default();
        assert!(s.add(25.0, &cfg));
        assert_eq!(s.decision, NbcDecision::Media);
        // It stands.
        assert!(!s.add(-10.0, &cfg));
        assert_eq!(s.decision, NbcDecision::Media);
        // One clearly non-media window cannot reject alone (-13.8 needs
        // two), and media windows after it bring the test back.
        let mut t = NbcScore::default();
        assert!(!t.add(-40.0, &cfg));
        assert_eq!(t.decision, NbcDecision::Pending);
        assert!(!t.add(8.0, &cfg));
        assert!(t.add(5.0, &cfg));
        assert_eq!(t.decision, NbcDecision::Media);
        assert_eq!(t.sum_log_odds, 3.0);
        let mut u = NbcScore::default();
        u.add(-9.0, &cfg);
        assert!(u.add(-9.0, &cfg));
        assert_eq!(u.decision, NbcDecision::Other);
        assert_eq!(u.passed, 0);
        assert_eq!(u.windows, 2);
        // A NaN counts as a clamped non-media window.
        let mut v = NbcScore::default();
        v.add(f64::NAN, &cfg);
        assert_eq!(v.sum_log_odds, -10.0);
    }
}
