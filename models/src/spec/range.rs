//! The value ranges of `model.toml` (`input.min`, `input.max`, and the same keys of `output`),
//! checked at validation: a range no finite value can satisfy (NaN, `min > max`, `min = +inf`,
//! `max = -inf`) or one on a non-numeric datatype would load as ready and then refuse every
//! request, so it is refused at load, naming the key.

use super::{ModelSpec, TensorSpec};
use crate::error::ModelError;
use crate::input::BYTES;

/// Checks `input` and `output`'s ranges.
pub(super) fn validate(spec: &ModelSpec) -> Result<(), ModelError> {
    for (field, tensor) in [("input", &spec.input), ("output", &spec.output)] {
        check(field, tensor).map_err(ModelError::Load)?;
    }
    Ok(())
}

fn check(field: &str, tensor: &TensorSpec) -> Result<(), String> {
    if tensor.min.is_none() && tensor.max.is_none() {
        return Ok(());
    }
    if tensor.datatype == BYTES {
        let key = if tensor.min.is_some() { "min" } else { "max" };
        return Err(format!(
            "{field}.{key} applies to numeric data; {field}.datatype is {BYTES}"
        ));
    }
    for (key, value) in [("min", tensor.min), ("max", tensor.max)] {
        match value {
            Some(v) if v.is_nan() => return Err(format!("{field}.{key} is NaN")),
            Some(v) if key == "min" && v == f32::INFINITY => {
                return Err(format!(
                    "{field}.min is +inf: no finite value is at least that"
                ))
            }
            Some(v) if key == "max" && v == f32::NEG_INFINITY => {
                return Err(format!(
                    "{field}.max is -inf: no finite value is at most that"
                ))
            }
            _ => {}
        }
    }
    if let (Some(min), Some(max)) = (tensor.min, tensor.max) {
        if min > max {
            return Err(format!(
                "{field}.min ({min}) is greater than {field}.max ({max}): no value is in range"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::ModelSpec;

    fn spec(input: &str) -> Result<ModelSpec, String> {
        ModelSpec::from_toml(&format!(
            "architecture = \"identity\"\n[input]\nname = \"x\"\nshape = [2]\n{input}\n\
             [output]\nname = \"y\"\nshape = [2]"
        ))
        .map_err(|e| e.to_string())
    }

    #[test]
    fn ranges_no_value_satisfies_are_refused_naming_the_key() {
        for (lines, says) in [
            ("min = nan", "input.min is NaN"),
            ("max = nan", "input.max is NaN"),
            ("min = -nan\nmax = 1.0", "input.min is NaN"),
            (
                "min = 2.0\nmax = 1.0",
                "input.min (2) is greater than input.max (1)",
            ),
            ("min = inf", "input.min is +inf"),
            ("max = -inf", "input.max is -inf"),
            ("min = 1e39", "input.min is +inf"),
            (
                "datatype = \"BYTES\"\nshape = [1]\nmin = 0.0",
                "input.min applies to numeric data; input.datatype is BYTES",
            ),
        ] {
            // A BYTES input brings its own shape.
            let shape = if lines.contains("shape") {
                ""
            } else {
                "shape = [2]"
            };
            let text = format!(
                "architecture = \"identity\"\n[input]\nname = \"x\"\n{shape}\n{lines}\n\
                 [output]\nname = \"y\"\nshape = [2]"
            );
            let err = ModelSpec::from_toml(&text)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{lines}: {err}");
        }
        let err = ModelSpec::from_toml(
            "architecture = \"identity\"\n[input]\nname = \"x\"\nshape = [2]\n\
             [output]\nname = \"y\"\nshape = [2]\nmin = 1.0\nmax = 0.0",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("output.min (1) is greater than output.max (0)"),
            "{err}"
        );
        // Ranges some value satisfies load.
        for lines in [
            "min = 0.0\nmax = 1.0",
            "min = 1.0\nmax = 1.0",
            "min = -inf\nmax = inf",
            "min = -1.0",
            "max = 255.0",
        ] {
            let spec = spec(lines).unwrap_or_else(|e| panic!("{lines}: {e}"));
            assert!(spec.input.min.is_some() || spec.input.max.is_some());
        }
    }
}
