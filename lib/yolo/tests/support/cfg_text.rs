//! Small textual edits of Darknet cfg files for the tests.

/// CFG with `width=` and `height=` of the `[net]` section set to W and H
/// (both must already be there, as in every stock cfg).
pub(crate) fn with_input_size(cfg: &str, width: usize, height: usize) -> String {
    let mut in_net = false;
    let (mut set_w, mut set_h) = (false, false);
    let mut out = String::with_capacity(cfg.len());
    for line in cfg.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_net = trimmed == "[net]" || trimmed == "[network]";
        }
        let key = trimmed.split('=').next().unwrap_or("").trim();
        if in_net && !trimmed.starts_with('#') && trimmed.contains('=') && key == "width" {
            out.push_str(&format!("width={width}\n"));
            set_w = true;
        } else if in_net && !trimmed.starts_with('#') && trimmed.contains('=') && key == "height" {
            out.push_str(&format!("height={height}\n"));
            set_h = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(set_w && set_h, "the cfg's [net] lacks width= or height=");
    out
}
