//! The cfg's lexical layer: lines to `[section]`s of `key=value` entries,
//! comments and whitespace stripped. No key is interpreted here.

use super::error::CfgError;

/// A raw section: name, header line and its `key=value` entries.
pub(crate) struct Section {
    pub(crate) name: String,
    pub(crate) line: usize,
    pub(crate) entries: Vec<(String, String, usize)>,
}

/// Splits the text into sections; strips comments (`#`, `;`) and whitespace
/// (Darknet removes all whitespace from a line, so `layers = -1, -2` is valid).
pub(crate) fn split_sections(text: &str) -> Result<Vec<Section>, CfgError> {
    let mut sections: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let without_comment = raw.split('#').next().unwrap_or("");
        let line: String = without_comment
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            match rest.strip_suffix(']') {
                Some(name) if !name.is_empty() => sections.push(Section {
                    name: name.to_string(),
                    line: line_no,
                    entries: Vec::new(),
                }),
                _ => {
                    return Err(CfgError::Syntax {
                        line: line_no,
                        text: raw.trim().to_string(),
                    });
                }
            }
            continue;
        }
        let (key, value) = match (line.split_once('='), sections.last_mut()) {
            (Some((k, v)), Some(_)) if !k.is_empty() => (k.to_string(), v.to_string()),
            _ => {
                return Err(CfgError::Syntax {
                    line: line_no,
                    text: raw.trim().to_string(),
                });
            }
        };
        if let Some(section) = sections.last_mut() {
            section.entries.push((key, value, line_no));
        }
    }
    Ok(sections)
}
