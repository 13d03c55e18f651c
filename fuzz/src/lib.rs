//! Helpers shared by the fuzz targets in `fuzz_targets/`.

use serde_json::Value;

/// Whether two JSON values are equal, floats within a relative 1e-12.
///
/// serde_json (without its `float_roundtrip` feature, which recorder does
/// not enable) may parse the shortest representation of a float it printed
/// itself one unit in the last place away. A profile's unknown fields keep
/// such floats, so an exact comparison would report that as a lost value.
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// The text that libFuzzer handed over, if it is UTF-8.
///
/// recorder never hands anything else to these parsers: profiles are read
/// with `fs::read_to_string` and request lines with `read_line`, which both
/// refuse invalid UTF-8 before parsing. Other inputs are skipped, and
/// libFuzzer keeps none of them in the corpus (they reach no new code).
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}
