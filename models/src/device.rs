//! `Device`: where a model version runs, parsed from `cpu` or `cuda:N`.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    #[default]
    Cpu,
    Cuda(usize),
}

impl Device {
    /// Whether this build can run on the device (`cuda:N` needs the `cuda` feature).
    pub fn is_supported(&self) -> bool {
        match self {
            Device::Cpu => true,
            Device::Cuda(_) => cfg!(feature = "cuda"),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(index) => write!(f, "cuda:{index}"),
        }
    }
}

impl FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "cpu" {
            return Ok(Device::Cpu);
        }
        if let Some(index) = s.strip_prefix("cuda:") {
            return index
                .parse()
                .map(Device::Cuda)
                .map_err(|_| format!("device '{s}': expected cuda:N with N a GPU index"));
        }
        if s == "cuda" {
            return Ok(Device::Cuda(0));
        }
        Err(format!("device '{s}': expected 'cpu' or 'cuda:N'"))
    }
}

/// Settings name devices as text (`device = "cuda:0"`).
impl<'de> serde::Deserialize<'de> for Device {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_devices() {
        assert_eq!("cpu".parse::<Device>(), Ok(Device::Cpu));
        assert_eq!("cuda:1".parse::<Device>(), Ok(Device::Cuda(1)));
        assert_eq!("cuda".parse::<Device>(), Ok(Device::Cuda(0)));
        assert!("cuda:x".parse::<Device>().is_err());
        assert!("tpu".parse::<Device>().is_err());
        assert_eq!(Device::Cuda(3).to_string(), "cuda:3");
        assert!(Device::Cpu.is_supported());
    }
}
