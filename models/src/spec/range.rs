//! The value checks of `model.toml`'s inputs (`finite`, `min`, `max`), checked at validation:
//! a range no value can satisfy (NaN, `min > max`, `min = +inf`, `max = -inf`) would load as
//! ready and then refuse every request, so it is refused at load, naming the input and key.

use super::{ModelSpec, TensorSpec};
use crate::error::ModelError;

/// Checks every input's range.
pub(super) fn validate(spec: &ModelSpec) -> Result<(), ModelError> {
    for tensor in &spec.inputs {
        check(tensor).map_err(ModelError::Load)?;
    }
    Ok(())
}

fn check(tensor: &TensorSpec) -> Result<(), String> {
    let field = format!("input '{}'", tensor.name);
    for (key, value) in [("min", tensor.min), ("max", tensor.max)] {
        match value {
            Some(v) if v.is_nan() => return Err(format!("{field}: {key} is NaN")),
            Some(v) if key == "min" && v == f64::INFINITY => {
                return Err(format!(
                    "{field}: min is +inf: no finite value is at least that"
                ))
            }
            Some(v) if key == "max" && v == f64::NEG_INFINITY => {
                return Err(format!(
                    "{field}: max is -inf: no finite value is at most that"
                ))
            }
            _ => {}
        }
    }
    if let (Some(min), Some(max)) = (tensor.min, tensor.max) {
        if min > max {
            return Err(format!(
                "{field}: min ({min}) is greater than max ({max}): no value is in range"
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
            ("min = nan", "input 'x': min is NaN"),
            ("max = nan", "input 'x': max is NaN"),
            ("min = -nan\nmax = 1.0", "input 'x': min is NaN"),
            (
                "min = 2.0\nmax = 1.0",
                "input 'x': min (2) is greater than max (1)",
            ),
            ("min = inf", "input 'x': min is +inf"),
            ("max = -inf", "input 'x': max is -inf"),
            (
                "datatype = \"BYTES\"\nmin = 0.0",
                "finite, min and max apply to numeric data; its datatype is BYTES",
            ),
            (
                "datatype = \"BOOL\"\nfinite = true",
                "finite, min and max apply to numeric data; its datatype is BOOL",
            ),
        ] {
            let err = spec(lines).map(|_| ()).unwrap_err();
            assert!(err.contains(says), "{lines}: {err}");
        }
        let err = ModelSpec::from_toml(
            "architecture = \"identity\"\n[input]\nname = \"x\"\nshape = [2]\n\
             [output]\nname = \"y\"\nshape = [2]\nmin = 1.0",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("output 'y': optional, finite, min and max apply to inputs"),
            "{err}"
        );
        // Ranges some value satisfies load.
        for lines in [
            "min = 0.0\nmax = 1.0",
            "min = 1.0\nmax = 1.0",
            "min = -inf\nmax = inf",
            "min = -1.0",
            "max = 255.0",
            "finite = true",
        ] {
            let spec = spec(lines).unwrap_or_else(|e| panic!("{lines}: {e}"));
            assert!(spec.input().checks_values());
        }
    }
}
