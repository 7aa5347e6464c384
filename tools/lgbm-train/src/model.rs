//! A thin, safe wrapper over LightGBM's C API (lightgbm3-sys: LightGBM 4.7.0 built from
//! its vendored source), doing what Python's `lgb.train` does: the same parameter
//! string for the datasets and the booster, a validation set binned like the training
//! set, and early stopping on the first metric with a strict improvement rule — so a
//! fold trained here and in Python LightGBM gives the same trees.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, c_char, c_void};
use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use lightgbm3_sys as sys;
use serde::Deserialize;

/// LightGBM parameters as `key=value` pairs, sorted (so the string is deterministic).
pub type Params = BTreeMap<String, String>;

fn last_error() -> String {
    // SAFETY: LightGBM returns a pointer to a thread-local, NUL-terminated message.
    unsafe { CStr::from_ptr(sys::LGBM_GetLastError()) }
        .to_string_lossy()
        .into_owned()
}

fn check(code: i32, what: &str) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        bail!("LightGBM {what}: {}", last_error())
    }
}

pub fn param_string(p: &Params) -> String {
    p.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

struct Dataset(sys::DatasetHandle);

impl Drop for Dataset {
    fn drop(&mut self) {
        // SAFETY: a handle LightGBM gave us, freed once.
        unsafe { sys::LGBM_DatasetFree(self.0) };
    }
}

impl Dataset {
    /// Row-major `x` (rows × `ncol`) with labels `y`.
    fn new(
        x: &[f64],
        y: &[f32],
        ncol: usize,
        params: &CString,
        reference: Option<&Dataset>,
        names: &[String],
    ) -> Result<Dataset> {
        let nrow = y.len();
        if nrow == 0 || x.len() != nrow * ncol {
            bail!(
                "a dataset needs rows: {} values for {nrow} rows x {ncol} features",
                x.len()
            );
        }
        let mut h: sys::DatasetHandle = std::ptr::null_mut();
        // SAFETY: x outlives the call (LightGBM copies it into its bins); sizes match.
        check(
            unsafe {
                sys::LGBM_DatasetCreateFromMat(
                    x.as_ptr() as *const c_void,
                    sys::C_API_DTYPE_FLOAT64 as i32,
                    i32::try_from(nrow)?,
                    i32::try_from(ncol)?,
                    1,
                    params.as_ptr(),
                    reference.map_or(std::ptr::null_mut(), |r| r.0),
                    &mut h,
                )
            },
            "dataset",
        )?;
        let d = Dataset(h);
        let label = CString::new("label")?;
        // SAFETY: y has nrow f32 values.
        check(
            unsafe {
                sys::LGBM_DatasetSetField(
                    d.0,
                    label.as_ptr(),
                    y.as_ptr() as *const c_void,
                    nrow as i32,
                    sys::C_API_DTYPE_FLOAT32 as i32,
                )
            },
            "labels",
        )?;
        let cs: Vec<CString> = names
            .iter()
            .map(|n| CString::new(n.as_str()))
            .collect::<Result<_, _>>()?;
        let mut ptrs: Vec<*const c_char> = cs.iter().map(|c| c.as_ptr()).collect();
        // SAFETY: ncol names, alive for the call.
        check(
            unsafe { sys::LGBM_DatasetSetFeatureNames(d.0, ptrs.as_mut_ptr(), ptrs.len() as i32) },
            "feature names",
        )?;
        Ok(d)
    }
}

/// A trained model, cut at its best iteration.
pub struct Model {
    handle: sys::BoosterHandle,
    pub best_iteration: i32,
    pub iterations_run: i32,
    /// Validation metric after each iteration.
    pub valid_curve: Vec<f64>,
    ncol: usize,
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: a handle LightGBM gave us, freed once.
        unsafe { sys::LGBM_BoosterFree(self.handle) };
    }
}

/// Train on (x, y) for at most `rounds` iterations, stopping when the validation metric
/// has not strictly improved for `early_stop` iterations (Python's `early_stopping`
/// callback). The model keeps trees up to the best iteration.
#[allow(clippy::too_many_arguments)]
pub fn train(
    params: &Params,
    names: &[String],
    x: &[f64],
    y: &[f32],
    vx: &[f64],
    vy: &[f32],
    rounds: usize,
    early_stop: usize,
) -> Result<Model> {
    let ncol = names.len();
    let ps = CString::new(param_string(params))?;
    let train = Dataset::new(x, y, ncol, &ps, None, names)?;
    let valid = Dataset::new(vx, vy, ncol, &ps, Some(&train), names)?;
    let mut h: sys::BoosterHandle = std::ptr::null_mut();
    // SAFETY: datasets are alive; LightGBM keeps its own references.
    check(
        unsafe { sys::LGBM_BoosterCreate(train.0, ps.as_ptr(), &mut h) },
        "booster",
    )?;
    let mut m = Model {
        handle: h,
        best_iteration: 0,
        iterations_run: 0,
        valid_curve: Vec::new(),
        ncol,
    };
    check(
        unsafe { sys::LGBM_BoosterAddValidData(m.handle, valid.0) },
        "validation data",
    )?;
    let mut best = f64::INFINITY;
    for it in 1..=rounds as i32 {
        let mut finished = 0;
        check(
            unsafe { sys::LGBM_BoosterUpdateOneIter(m.handle, &mut finished) },
            "training",
        )?;
        if finished != 0 {
            break;
        }
        m.iterations_run = it;
        let mut n = 0;
        let mut out = [0f64; 8];
        check(
            unsafe { sys::LGBM_BoosterGetEvalCounts(m.handle, &mut n) },
            "metrics",
        )?;
        if n < 1 || n > 8 {
            bail!("expected one validation metric, LightGBM reports {n}");
        }
        check(
            unsafe { sys::LGBM_BoosterGetEval(m.handle, 1, &mut n, out.as_mut_ptr()) },
            "metrics",
        )?;
        let s = out[0];
        m.valid_curve.push(s);
        if s < best {
            best = s;
            m.best_iteration = it;
        } else if (it - m.best_iteration) as usize >= early_stop {
            break;
        }
    }
    if m.best_iteration == 0 {
        m.best_iteration = m.iterations_run;
    }
    // The validation data goes with `valid`; the booster no longer needs it.
    drop(valid);
    drop(train);
    Ok(m)
}

impl Model {
    /// Predictions for row-major `x`, using trees up to the best iteration.
    pub fn predict(&self, x: &[f64]) -> Result<Vec<f64>> {
        let nrow = x.len() / self.ncol.max(1);
        if nrow == 0 {
            return Ok(Vec::new());
        }
        let mut out = vec![0f64; nrow];
        let mut len: i64 = 0;
        let empty = CString::new("")?;
        // SAFETY: x has nrow × ncol values, out has room for nrow results.
        check(
            unsafe {
                sys::LGBM_BoosterPredictForMat(
                    self.handle,
                    x.as_ptr() as *const c_void,
                    sys::C_API_DTYPE_FLOAT64 as i32,
                    nrow as i32,
                    self.ncol as i32,
                    1,
                    sys::C_API_PREDICT_NORMAL as i32,
                    0,
                    self.best_iteration,
                    empty.as_ptr(),
                    &mut len,
                    out.as_mut_ptr(),
                )
            },
            "prediction",
        )?;
        if len as usize != nrow {
            return Err(anyhow!(
                "LightGBM returned {len} predictions for {nrow} rows"
            ));
        }
        Ok(out)
    }

    /// The model in LightGBM's text format (what Python's `lgb.Booster(model_file=…)`
    /// loads), trees up to the best iteration.
    pub fn to_text(&self) -> Result<String> {
        let mut len: i64 = 0;
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..2 {
            // SAFETY: buf has buf.len() bytes; LightGBM reports the length it needs.
            check(
                unsafe {
                    sys::LGBM_BoosterSaveModelToString(
                        self.handle,
                        0,
                        self.best_iteration,
                        sys::C_API_FEATURE_IMPORTANCE_SPLIT as i32,
                        buf.len() as i64,
                        &mut len,
                        buf.as_mut_ptr() as *mut c_char,
                    )
                },
                "saving the model",
            )?;
            if (len as usize) <= buf.len() {
                break;
            }
            buf = vec![0u8; len as usize];
        }
        let s = CStr::from_bytes_until_nul(&buf).map_err(|e| anyhow!("model text: {e}"))?;
        Ok(s.to_string_lossy().into_owned())
    }

    /// Total gain and split counts per feature, up to the best iteration.
    pub fn importance(&self) -> Result<(Vec<f64>, Vec<f64>)> {
        let mut gain = vec![0f64; self.ncol];
        let mut split = vec![0f64; self.ncol];
        check(
            unsafe {
                sys::LGBM_BoosterFeatureImportance(
                    self.handle,
                    self.best_iteration,
                    sys::C_API_FEATURE_IMPORTANCE_GAIN as i32,
                    gain.as_mut_ptr(),
                )
            },
            "importance",
        )?;
        check(
            unsafe {
                sys::LGBM_BoosterFeatureImportance(
                    self.handle,
                    self.best_iteration,
                    sys::C_API_FEATURE_IMPORTANCE_SPLIT as i32,
                    split.as_mut_ptr(),
                )
            },
            "importance",
        )?;
        Ok((gain, split))
    }
}

/// A YAML scalar of a `--params` file, as LightGBM's parameter string spells it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => format!("{f:?}"),
            Scalar::Str(s) => s.clone(),
        }
    }
}

/// LightGBM parameters (the defaults, then `file`'s YAML mapping), the boosting rounds
/// and the early-stopping patience.
pub fn params(seed: u64, file: Option<&Path>) -> Result<(Params, usize, usize)> {
    let mut p: Params = [
        ("objective", "regression"),
        ("metric", "l2"),
        ("learning_rate", "0.05"),
        ("num_leaves", "31"),
        ("min_data_in_leaf", "200"),
        ("feature_fraction", "0.8"),
        ("bagging_fraction", "0.8"),
        ("bagging_freq", "1"),
        ("lambda_l2", "1.0"),
        ("deterministic", "true"),
        ("force_row_wise", "true"),
        ("num_threads", "1"),
        ("verbosity", "-1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    p.insert("seed".into(), seed.to_string());
    let (mut rounds, mut patience) = (500usize, 50usize);
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read --params {}", f.display()))?;
        let m: BTreeMap<String, Scalar> = serde_saphyr::from_str(&text).map_err(|e| {
            anyhow!(
                "--params {}: expected a mapping of LightGBM parameters: {e}",
                f.display()
            )
        })?;
        for (k, v) in m {
            let as_count = |what: &str| -> Result<usize> {
                v.text()
                    .parse()
                    .map_err(|_| anyhow!("--params {}: {what} must be a whole number", f.display()))
            };
            match k.as_str() {
                "num_iterations" | "num_boost_round" | "n_estimators" => rounds = as_count(&k)?,
                "early_stopping_round" | "early_stopping_rounds" => patience = as_count(&k)?,
                "metric" if v.text().contains(',') => {
                    bail!(
                        "--params {}: one metric only (early stopping reads the first)",
                        f.display()
                    )
                }
                _ => {
                    p.insert(k, v.text());
                }
            }
        }
    }
    if rounds == 0 || patience == 0 {
        bail!("num_iterations and early_stopping_round must be at least 1");
    }
    Ok((p, rounds, patience))
}
