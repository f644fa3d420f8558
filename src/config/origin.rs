//! The shape of a `cors.allowed_origins` entry.

/// Checks one `cors.allowed_origins` entry; the message explains what is wrong.
pub(crate) fn check_origin(entry: &str) -> Result<(), String> {
    let (candidate, any_port) = match entry.strip_suffix(":*") {
        Some(head) => (head, true),
        None => (entry, false),
    };
    let url = url::Url::parse(candidate).map_err(|_| format!("{entry:?} is not an origin"))?;
    let canonical = url.origin().ascii_serialization();
    let shape_ok = matches!(url.scheme(), "http" | "https")
        && canonical == candidate
        && !(any_port && url.port().is_some());
    if shape_ok {
        Ok(())
    } else {
        Err(format!(
            "{entry:?} must be an origin exactly as browsers send it: scheme://host[:port] in lower case, \
             no path or trailing slash (or scheme://host:* for any port)"
        ))
    }
}
