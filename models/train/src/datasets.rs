//! Datasets read from local files, never downloaded: Fashion-MNIST from the IDX files of
//! Debian's `dataset-fashion-mnist` package (`scripts/install-datasets.sh` installs it).

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use burnserve_models::ModelError;

/// Where Debian's package puts the files; `FASHION_MNIST_DIR` overrides it.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// The ten classes, in label order.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
pub const IMAGE_SIDE: usize = 28;
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// Images as `u8` pixels, row-major `[n, 28, 28]`, and their labels.
#[derive(Debug, Clone)]
pub struct FashionMnist {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
}

pub fn fashion_mnist_dir() -> PathBuf {
    std::env::var_os("FASHION_MNIST_DIR")
        .map_or_else(|| PathBuf::from(FASHION_MNIST_DIR), PathBuf::from)
}

/// Whether the dataset files are installed.
pub fn fashion_mnist_available() -> bool {
    let dir = fashion_mnist_dir();
    ["train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"]
        .iter()
        .all(|f| dir.join(f).is_file())
}

fn read_gz(path: &Path) -> Result<Vec<u8>, ModelError> {
    let file = std::fs::File::open(path).map_err(|e| {
        ModelError::Load(format!(
            "{}: {e} (run scripts/install-datasets.sh)",
            path.display()
        ))
    })?;
    let mut bytes = Vec::new();
    GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .map_err(|e| ModelError::Load(format!("{}: {e}", path.display())))?;
    Ok(bytes)
}

/// Parses an IDX file of unsigned bytes: magic `0x0000_08_<dims>`, big-endian dimensions, data.
pub fn parse_idx_u8(bytes: &[u8]) -> Result<(Vec<usize>, Vec<u8>), String> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 {
        return Err("not an IDX file of unsigned bytes".into());
    }
    let ndims = bytes[3] as usize;
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err("truncated IDX header".into());
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|i| {
            u32::from_be_bytes([
                bytes[4 + 4 * i],
                bytes[5 + 4 * i],
                bytes[6 + 4 * i],
                bytes[7 + 4 * i],
            ]) as usize
        })
        .collect();
    let len: usize = dims.iter().product();
    if bytes.len() != header + len {
        return Err(format!(
            "IDX data has {} bytes, dimensions {dims:?} need {len}",
            bytes.len() - header
        ));
    }
    Ok((dims, bytes[header..].to_vec()))
}

impl FashionMnist {
    pub fn load(split: Split) -> Result<Self, ModelError> {
        let dir = fashion_mnist_dir();
        let prefix = match split {
            Split::Train => "train",
            Split::Test => "t10k",
        };
        let read = |kind: &str| -> Result<(Vec<usize>, Vec<u8>), ModelError> {
            let path = dir.join(format!("{prefix}-{kind}-ubyte.gz"));
            parse_idx_u8(&read_gz(&path)?)
                .map_err(|e| ModelError::Load(format!("{}: {e}", path.display())))
        };
        let (image_dims, images) = read("images-idx3")?;
        let (label_dims, labels) = read("labels-idx1")?;
        if image_dims[1..] != [IMAGE_SIDE, IMAGE_SIDE] || label_dims[0] != image_dims[0] {
            return Err(ModelError::Load(format!(
                "unexpected dimensions {image_dims:?} / {label_dims:?}"
            )));
        }
        Ok(Self { images, labels })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image(&self, index: usize) -> &[u8] {
        &self.images[index * IMAGE_PIXELS..(index + 1) * IMAGE_PIXELS]
    }

    /// Image `index` scaled to `[0, 1]`, as the models take it.
    pub fn normalised(&self, index: usize) -> Vec<f32> {
        self.image(index)
            .iter()
            .map(|&p| f32::from(p) / 255.0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_idx_headers_and_rejects_bad_ones() {
        let mut bytes = vec![0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3];
        bytes.extend([1, 2, 3, 4, 5, 6]);
        assert_eq!(
            parse_idx_u8(&bytes).unwrap(),
            (vec![2, 3], vec![1, 2, 3, 4, 5, 6])
        );
        assert!(parse_idx_u8(&bytes[..15]).unwrap_err().contains("need 6"));
        assert!(parse_idx_u8(&[0, 0, 9, 1]).is_err());
    }
}
