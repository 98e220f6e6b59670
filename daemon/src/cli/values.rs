//! Value parsers of arguments clap cannot check alone (devices, losses).

/// Checks a `--device` spelling when the command line is read, so a typo fails before any job.
pub(super) fn parse_device(s: &str) -> Result<String, String> {
    crate::config::device_request(s).map(|_| s.to_string())
}

/// [`parse_device`] for a comma list of devices (data-parallel training).
pub(super) fn parse_devices(s: &str) -> Result<String, String> {
    s.split(',')
        .try_for_each(|one| parse_device(one.trim()).map(|_| ()))?;
    Ok(s.to_string())
}

/// `name:weight` (weight 1 when left out).
pub(super) fn parse_loss(s: &str) -> Result<(String, f32), String> {
    match s.split_once(':') {
        Some((name, w)) => w
            .trim()
            .parse::<f32>()
            .map(|w| (name.trim().to_string(), w))
            .map_err(|_| format!("{w:?} is not a weight; write e.g. ms_ssim:1.0")),
        None => Ok((s.trim().to_string(), 1.0)),
    }
}
