//! `BertConfig`: the fields of HuggingFace's BERT `config.json` the encoder needs, read from
//! verified bytes, and checked against the tensors the weights' header holds (every size the
//! network is built from must be what the file holds), then against absolute bounds, before
//! any layer is built; and the bound on one instance's working memory.

use std::path::Path;

use serde::Deserialize;

use super::bounds::{self, check as bounded};
use crate::error::ModelError;
use crate::header::{describe_indices, WeightsHeader};

/// The longest `config.json` read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The fields of HuggingFace's BERT `config.json` the encoder needs.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}

/// The file's tensor names (HuggingFace's), before the loader remaps them.
const LAYER: &str = "encoder.layer.";

impl BertConfig {
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path)
            .map_err(|e| ModelError::Load(format!("cannot read {}: {e}", path.display())))?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses `config.json`'s bytes (`name` names the file in messages) and checks what needs
    /// no weights: the activation, the epsilon, heads dividing the hidden size.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Self, ModelError> {
        let config: BertConfig =
            serde_json::from_slice(bytes).map_err(|e| ModelError::Load(format!("{name}: {e}")))?;
        let fail = |what: String| Err(ModelError::Load(format!("{name}: {what}")));
        if config.hidden_act != "gelu" {
            return fail(format!(
                "hidden_act '{}' is not supported (gelu only)",
                config.hidden_act
            ));
        }
        if !(config.layer_norm_eps.is_finite()
            && config.layer_norm_eps > 0.0
            && config.layer_norm_eps < 1.0)
        {
            return fail(format!(
                "layer_norm_eps = {} must be within (0, 1)",
                config.layer_norm_eps
            ));
        }
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return fail(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                config.hidden_size, config.num_attention_heads
            ));
        }
        Ok(config)
    }

    /// Compares every size with the tensors the weights hold (HuggingFace names), then with the
    /// absolute bounds ([`bounds`]); `name` names `config.json` in messages. Heads do not
    /// appear in any shape: they are bounded and must divide `hidden_size`.
    pub fn check_weights(&self, header: &WeightsHeader, name: &str) -> Result<(), ModelError> {
        let fail = |what: String| Err(ModelError::Load(format!("{name}: {what}")));
        let held = header.indices(LAYER);
        let layers = self.num_hidden_layers;
        if held.len() != layers || (layers > 0 && held.last() != Some(&(layers - 1))) {
            return fail(format!(
                "num_hidden_layers = {layers}, but the weights hold {} layers",
                describe_indices(LAYER, &held)
            ));
        }
        // The sizes the embeddings' tables say, each named with the tensor that holds it.
        let tables = [
            ("vocab_size", self.vocab_size, "word_embeddings", 0),
            ("hidden_size", self.hidden_size, "word_embeddings", 1),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                "position_embeddings",
                0,
            ),
            (
                "type_vocab_size",
                self.type_vocab_size,
                "token_type_embeddings",
                0,
            ),
        ];
        for (key, value, table, dim) in tables {
            let tensor = format!("embeddings.{table}.weight");
            match header.shape(&tensor) {
                Some(shape) if shape.len() == 2 && shape[dim] == value => {}
                Some(shape) => {
                    return fail(format!(
                        "{key} = {value}, but the weights hold '{tensor}' of shape {shape:?}"
                    ))
                }
                None => return fail(format!("the weights hold no '{tensor}' ({key} = {value})")),
            }
        }
        let first_ffn = format!("{LAYER}0.intermediate.dense.weight");
        if let Some(shape) = header.shape(&first_ffn) {
            if shape.first() != Some(&self.intermediate_size) {
                return fail(format!(
                    "intermediate_size = {}, but the weights hold '{first_ffn}' of shape {shape:?}",
                    self.intermediate_size
                ));
            }
        }
        let (h, i) = (self.hidden_size, self.intermediate_size);
        let because = || {
            format!(
                "{name}: hidden_size = {h}, intermediate_size = {i}, num_hidden_layers = {layers}"
            )
        };
        for norm in ["weight", "bias"] {
            header.expect_shape(&format!("embeddings.LayerNorm.{norm}"), &[h], &because)?;
        }
        for n in 0..layers {
            let at = |rest: &str| format!("{LAYER}{n}.{rest}");
            for projection in ["self.query", "self.key", "self.value", "output.dense"] {
                header.expect_shape(
                    &at(&format!("attention.{projection}.weight")),
                    &[h, h],
                    &because,
                )?;
                header.expect_shape(
                    &at(&format!("attention.{projection}.bias")),
                    &[h],
                    &because,
                )?;
            }
            header.expect_shape(&at("intermediate.dense.weight"), &[i, h], &because)?;
            header.expect_shape(&at("intermediate.dense.bias"), &[i], &because)?;
            header.expect_shape(&at("output.dense.weight"), &[h, i], &because)?;
            header.expect_shape(&at("output.dense.bias"), &[h], &because)?;
            for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
                header.expect_shape(&at(&format!("{norm}.weight")), &[h], &because)?;
                header.expect_shape(&at(&format!("{norm}.bias")), &[h], &because)?;
            }
        }
        let key = |k: &str| format!("{name}: {k}");
        bounded(&key("num_hidden_layers"), layers, bounds::MAX_LAYERS)?;
        bounded(&key("hidden_size"), h, bounds::MAX_WIDTH)?;
        bounded(&key("intermediate_size"), i, bounds::MAX_INTERMEDIATE)?;
        bounded(&key("vocab_size"), self.vocab_size, bounds::MAX_VOCAB)?;
        bounded(
            &key("max_position_embeddings"),
            self.max_position_embeddings,
            bounds::MAX_POSITIONS,
        )?;
        bounded(
            &key("type_vocab_size"),
            self.type_vocab_size,
            bounds::MAX_TYPE_VOCAB,
        )?;
        bounded(
            &key("num_attention_heads"),
            self.num_attention_heads,
            bounds::MAX_HEADS,
        )?;
        Ok(())
    }

    /// A bound on one instance's working memory: the largest forward pass of a batch of `rows`
    /// texts of at most `max_tokens` tokens. Grouped by length, a pass holds at most
    /// `cells` attention cells (rows × tokens², [`super::bert::ATTENTION_CELLS_PER_PASS`])
    /// unless it is one row; otherwise it is the whole batch padded to `max_tokens`. Each token
    /// holds a layer's activations (hidden-sized ones, the fused projections, the
    /// feed-forward's: 10 × hidden + 2 × intermediate values), each row one head's scores.
    pub fn working_bytes(&self, rows: usize, max_tokens: usize, cells: Option<usize>) -> u64 {
        let (rows, max_tokens) = (rows.max(1) as u64, max_tokens.max(1) as u64);
        let pass = |rows: u64, seq: u64| {
            let per_token = 10 * self.hidden_size as u64 + 2 * self.intermediate_size as u64;
            let scores = rows.saturating_mul(seq).saturating_mul(seq);
            rows.saturating_mul(seq)
                .saturating_mul(per_token)
                .saturating_add(scores)
                .saturating_mul(4)
        };
        match cells {
            None => pass(rows, max_tokens),
            // The largest pass the grouping allows, over every length up to `max_tokens`.
            Some(cells) => (1..=max_tokens.min(1 << 16))
                .map(|seq| {
                    let fit = (cells as u64 / (seq * seq)).clamp(1, rows);
                    pass(fit, seq)
                })
                .max()
                .unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::tests::write;

    /// A BERT header of `layers` layers, hidden 8, intermediate 16, 30 tokens, 12 positions.
    fn bert_weights(path: &Path, layers: usize) {
        let mut entries: Vec<(String, Vec<usize>)> = vec![
            ("embeddings.word_embeddings.weight".into(), vec![30, 8]),
            ("embeddings.position_embeddings.weight".into(), vec![12, 8]),
            ("embeddings.token_type_embeddings.weight".into(), vec![2, 8]),
            ("embeddings.LayerNorm.weight".into(), vec![8]),
            ("embeddings.LayerNorm.bias".into(), vec![8]),
        ];
        for n in 0..layers {
            let at = |rest: &str| format!("encoder.layer.{n}.{rest}");
            for p in ["self.query", "self.key", "self.value", "output.dense"] {
                entries.push((at(&format!("attention.{p}.weight")), vec![8, 8]));
                entries.push((at(&format!("attention.{p}.bias")), vec![8]));
            }
            entries.push((at("intermediate.dense.weight"), vec![16, 8]));
            entries.push((at("intermediate.dense.bias"), vec![16]));
            entries.push((at("output.dense.weight"), vec![8, 16]));
            entries.push((at("output.dense.bias"), vec![8]));
            for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
                entries.push((at(&format!("{norm}.weight")), vec![8]));
                entries.push((at(&format!("{norm}.bias")), vec![8]));
            }
        }
        let refs: Vec<(&str, &str, &[usize])> = entries
            .iter()
            .map(|(n, s)| (n.as_str(), "F32", s.as_slice()))
            .collect();
        write(path, &refs);
    }

    fn config(extra: &str) -> Result<BertConfig, ModelError> {
        let text = format!(
            r#"{{"vocab_size": 30, "hidden_size": 8, "num_attention_heads": 2,
                "intermediate_size": 16, "max_position_embeddings": 12{extra}}}"#
        );
        BertConfig::from_bytes(text.as_bytes(), "config.json")
    }

    #[test]
    fn every_size_must_be_what_the_weights_hold() {
        let dir = std::env::temp_dir().join(format!("burnserve-bert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("w.safetensors");
        bert_weights(&path, 2);
        let header = WeightsHeader::read(&path).expect("header");
        let layers = |n: &str| config(&format!(", \"num_hidden_layers\": {n}")).expect("config");
        assert!(layers("2").check_weights(&header, "config.json").is_ok());
        for lie in ["0", "1", "3", "20000", "1000000", "18446744073709551615"] {
            let err = layers(lie)
                .check_weights(&header, "config.json")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("num_hidden_layers = {lie}"))
                    && err.contains("2 (encoder.layer.0 … encoder.layer.1) layers"),
                "{lie}: {err}"
            );
        }
        for (key, value, says) in [
            (
                "vocab_size",
                31,
                "vocab_size = 31, but the weights hold 'embeddings.word_embeddings.weight' of \
                 shape [30, 8]",
            ),
            ("hidden_size", 16, "hidden_size = 16"),
            (
                "max_position_embeddings",
                512,
                "max_position_embeddings = 512",
            ),
            ("type_vocab_size", 1, "type_vocab_size = 1"),
            ("intermediate_size", 32, "intermediate_size = 32"),
        ] {
            let mut json = serde_json::json!({
                "vocab_size": 30, "hidden_size": 8, "num_attention_heads": 2,
                "intermediate_size": 16, "max_position_embeddings": 12, "num_hidden_layers": 2,
            });
            json[key] = value.into();
            let lie =
                BertConfig::from_bytes(json.to_string().as_bytes(), "config.json").expect("config");
            let err = lie
                .check_weights(&header, "config.json")
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{key}: {err}");
        }
        // Heads are not in the weights: bounded, and must divide hidden_size.
        let with = |key: &str, value: serde_json::Value| {
            let mut json = serde_json::json!({
                "vocab_size": 30, "hidden_size": 8, "num_attention_heads": 2,
                "intermediate_size": 16, "max_position_embeddings": 12, "num_hidden_layers": 2,
            });
            json[key] = value;
            BertConfig::from_bytes(json.to_string().as_bytes(), "config.json")
        };
        let err = with("num_attention_heads", 3.into())
            .unwrap_err()
            .to_string();
        assert!(err.contains("num_attention_heads 3"), "{err}");
        let err = with("layer_norm_eps", (-1.0).into())
            .unwrap_err()
            .to_string();
        assert!(err.contains("layer_norm_eps"), "{err}");
        let err = with("hidden_act", "relu".into()).unwrap_err().to_string();
        assert!(err.contains("hidden_act 'relu'"), "{err}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn working_memory_is_the_largest_pass_and_never_wraps() {
        let config = config(", \"num_hidden_layers\": 2").expect("config");
        // hidden 8, intermediate 16: 112 values a token.
        let one = config.working_bytes(1, 256, None);
        assert_eq!(one, (256 * 112 + 256 * 256) * 4);
        assert_eq!(config.working_bytes(32, 256, None), 32 * one);
        // Grouped under 65,536 cells, 32 rows of 256 tokens run one at a time; 32 rows of 45
        // tokens fit one pass (the largest of all).
        let grouped = config.working_bytes(32, 256, Some(65_536));
        assert_eq!(grouped, (32 * 45 * 112 + 32 * 45 * 45) * 4);
        assert!(grouped < config.working_bytes(32, 256, None));
        assert_eq!(config.working_bytes(usize::MAX, usize::MAX, None), u64::MAX);
        assert!(config.working_bytes(usize::MAX, usize::MAX, Some(65_536)) > 0);
    }
}
