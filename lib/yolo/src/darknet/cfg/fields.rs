//! [`Fields`]: one section's entries, read key by key as typed values
//! (integers, flags, activations, layer references), with the errors that
//! name the section, key and value at fault.

use std::collections::HashSet;

use super::error::CfgError;
use super::lexer::Section;
use crate::activation::Activation;

/// The entries of one section, consumed key by key; `finish` rejects leftovers.
pub(crate) struct Fields {
    pub(crate) name: String,
    pub(crate) line: usize,
    entries: Vec<(String, String, usize)>,
}

impl Fields {
    pub(crate) fn new(section: Section) -> Result<Fields, CfgError> {
        let mut seen = HashSet::new();
        for (key, _, key_line) in &section.entries {
            if !seen.insert(key.as_str()) {
                return Err(CfgError::DuplicateKey {
                    section: section.name.clone(),
                    line: section.line,
                    key: key.clone(),
                    key_line: *key_line,
                });
            }
        }
        Ok(Fields {
            name: section.name,
            line: section.line,
            entries: section.entries,
        })
    }

    /// Removes and returns `(value, line)` for `key`.
    pub(crate) fn take(&mut self, key: &str) -> Option<(String, usize)> {
        let pos = self.entries.iter().position(|(k, _, _)| k == key)?;
        let (_, value, line) = self.entries.remove(pos);
        Some((value, line))
    }

    pub(crate) fn bad_value_of(&self, key: &str, value: &str, expected: &str) -> CfgError {
        CfgError::BadValue {
            section: self.name.clone(),
            line: self.line,
            key: key.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }

    pub(crate) fn usize_or(&mut self, key: &str, default: usize) -> Result<usize, CfgError> {
        match self.take(key) {
            None => Ok(default),
            Some((value, _)) => value
                .parse::<usize>()
                .map_err(|_| self.bad_value_of(key, &value, "a non-negative integer")),
        }
    }

    fn positive(&self, key: &str, value: &str) -> Result<usize, CfgError> {
        value
            .parse::<usize>()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| self.bad_value_of(key, value, "a positive integer"))
    }

    pub(crate) fn positive_or(&mut self, key: &str, default: usize) -> Result<usize, CfgError> {
        match self.take(key) {
            None => Ok(default),
            Some((value, _)) => self.positive(key, &value),
        }
    }

    pub(crate) fn positive_required(&mut self, key: &'static str) -> Result<usize, CfgError> {
        match self.take(key) {
            None => Err(CfgError::MissingKey {
                section: self.name.clone(),
                line: self.line,
                key,
            }),
            Some((value, _)) => self.positive(key, &value),
        }
    }

    pub(crate) fn f32_or(&mut self, key: &str, default: f32) -> Result<f32, CfgError> {
        match self.take(key) {
            None => Ok(default),
            Some((value, _)) => value
                .parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| self.bad_value_of(key, &value, "a finite number")),
        }
    }

    pub(crate) fn flag(&mut self, key: &str) -> Result<bool, CfgError> {
        match self.take(key) {
            None => Ok(false),
            Some((value, _)) => match value.as_str() {
                "0" => Ok(false),
                "1" => Ok(true),
                _ => Err(self.bad_value_of(key, &value, "0 or 1")),
            },
        }
    }

    pub(crate) fn activation_or(
        &mut self,
        key: &str,
        default: Activation,
    ) -> Result<Activation, CfgError> {
        match self.take(key) {
            None => Ok(default),
            Some((value, _)) => Activation::from_cfg(&value).ok_or_else(|| {
                self.bad_value_of(key, &value, "one of linear, leaky, mish, logistic")
            }),
        }
    }

    /// Accepts `key` only at its neutral (inference-preserving) value.
    pub(crate) fn neutral(&mut self, key: &str, neutral: f64) -> Result<(), CfgError> {
        if let Some((value, _)) = self.take(key)
            && value.parse::<f64>().ok() != Some(neutral)
        {
            return Err(self.bad_value_of(
                key,
                &value,
                &format!("{neutral} (other values change inference and are not supported)"),
            ));
        }
        Ok(())
    }

    /// Parses a comma-separated list of layer references, resolving negative
    /// (relative) ones against `index` and checking each names an earlier layer.
    pub(crate) fn layer_refs(
        &mut self,
        key: &'static str,
        index: usize,
    ) -> Result<Vec<usize>, CfgError> {
        let Some((value, _)) = self.take(key) else {
            return Err(CfgError::MissingKey {
                section: self.name.clone(),
                line: self.line,
                key,
            });
        };
        let mut out = Vec::new();
        for item in value.split(',').filter(|s| !s.is_empty()) {
            let reference: i64 = item
                .parse()
                .map_err(|_| self.bad_value_of(key, &value, "comma-separated layer indices"))?;
            let resolved = if reference < 0 {
                index as i64 + reference
            } else {
                reference
            };
            if resolved < 0 || resolved >= index as i64 {
                return Err(CfgError::BadLayerRef {
                    section: self.name.clone(),
                    line: self.line,
                    key,
                    reference,
                    resolved,
                    index,
                });
            }
            out.push(resolved as usize);
        }
        if out.is_empty() {
            return Err(self.bad_value_of(key, &value, "at least one layer index"));
        }
        Ok(out)
    }

    /// Fails on the first key neither consumed nor in `ignored`.
    pub(crate) fn finish(&self, ignored: &[&str]) -> Result<(), CfgError> {
        match self
            .entries
            .iter()
            .find(|(k, _, _)| !ignored.contains(&k.as_str()))
        {
            None => Ok(()),
            Some((key, _, key_line)) => Err(CfgError::UnknownKey {
                section: self.name.clone(),
                line: self.line,
                key: key.clone(),
                key_line: *key_line,
            }),
        }
    }
}
