//! A tokenizer in front of an ONNX graph (`params.tokenizer`): each request's BYTES texts
//! become the graph's `input_ids`, `attention_mask` and `token_type_ids` (padded to the batch's
//! longest), and the graph's hidden states are pooled over the real tokens (`params.pooling`:
//! `mean`, `cls`, or `none` when the graph pools itself) and optionally L2-normalised
//! (`params.normalize`), as sentence-transformers does.

use tokenizers::{Tokenizer, TruncationParams};

use super::signature::GraphTensor;
use crate::arch::bert::{cut_text, BYTES_PER_TOKEN};
use crate::error::ModelError;
use crate::spec::{ModelSpec, TensorSpec};
use crate::tensor::DataType;

/// Longest input, in tokens, when `params.max_tokens` is absent.
pub const DEFAULT_MAX_TOKENS: usize = 256;
/// The longest `params.max_tokens`.
pub const MAX_TOKENS: usize = 8192;
/// The largest `tokenizer.json` read.
pub const MAX_TOKENIZER_BYTES: u64 = 64 << 20;

/// How the hidden states of a text become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The mean over the real (unmasked) tokens.
    Mean,
    /// The first token's state.
    Cls,
    /// The graph's outputs as they are.
    None,
}

/// What `model.toml` says of the text front, read from `params`.
#[derive(Debug, Clone)]
pub struct TextParams {
    pub tokenizer: String,
    pub max_tokens: usize,
    pub pooling: Pooling,
    pub normalize: bool,
    /// Graph input names of the token ids, the mask and the token types.
    pub ids: String,
    pub mask: String,
    pub types: String,
    /// The graph output pooled (default: the first).
    pub hidden: Option<String>,
}

impl TextParams {
    /// `None` when the version declares no tokenizer.
    pub fn from_spec(spec: &ModelSpec) -> Result<Option<Self>, ModelError> {
        let Some(tokenizer) = spec.param::<Option<String>>("tokenizer", None)? else {
            return Ok(None);
        };
        let max_tokens: usize = spec.param("max_tokens", DEFAULT_MAX_TOKENS)?;
        if !(2..=MAX_TOKENS).contains(&max_tokens) {
            return Err(ModelError::Load(format!(
                "params.max_tokens {max_tokens} must be within 2..={MAX_TOKENS}"
            )));
        }
        let pooling = match spec.param::<String>("pooling", "mean".into())?.as_str() {
            "mean" => Pooling::Mean,
            "cls" => Pooling::Cls,
            "none" => Pooling::None,
            other => {
                return Err(ModelError::Load(format!(
                    "params.pooling '{other}': expected mean, cls or none"
                )))
            }
        };
        Ok(Some(Self {
            tokenizer,
            max_tokens,
            pooling,
            normalize: spec.param("normalize", false)?,
            ids: spec.param("input_ids", "input_ids".to_string())?,
            mask: spec.param("attention_mask", "attention_mask".to_string())?,
            types: spec.param("token_type_ids", "token_type_ids".to_string())?,
            hidden: spec.param::<Option<String>>("hidden_output", None)?,
        }))
    }

    /// Whether graph input `name` is fed by the tokenizer.
    pub fn feeds(&self, name: &str) -> bool {
        name == self.ids || name == self.mask || name == self.types
    }

    /// The graph output that is pooled.
    pub fn hidden_of<'a>(&self, outputs: &'a [GraphTensor]) -> Result<&'a GraphTensor, ModelError> {
        match &self.hidden {
            Some(name) => outputs.iter().find(|o| o.name == *name).ok_or_else(|| {
                ModelError::Load(format!(
                    "params.hidden_output '{name}' is not a graph output"
                ))
            }),
            None => outputs
                .first()
                .ok_or_else(|| ModelError::Load("the graph has no outputs".into())),
        }
    }

    /// Fills the signature of a text version: one BYTES input per row, and the pooled vector
    /// (or the graph's outputs when it pools itself).
    pub fn complete(
        &self,
        spec: &mut ModelSpec,
        inputs: &[GraphTensor],
        outputs: &[GraphTensor],
    ) -> Result<(), ModelError> {
        if !inputs.iter().any(|i| i.name == self.ids) {
            return Err(ModelError::Load(format!(
                "the tokenizer feeds '{}', which is not a graph input (params.input_ids)",
                self.ids
            )));
        }
        if let Some(other) = inputs.iter().find(|i| !self.feeds(&i.name)) {
            return Err(ModelError::Load(format!(
                "graph input '{}' is not fed by the tokenizer (input_ids, attention_mask, \
                 token_type_ids; params.input_ids etc. rename them)",
                other.name
            )));
        }
        if spec.inputs.is_empty() {
            spec.inputs = vec![TensorSpec::new("text", DataType::Bytes, &[1])];
        }
        if spec.inputs.len() != 1 || spec.inputs[0].datatype != DataType::Bytes {
            return Err(ModelError::Load(
                "a version with a tokenizer takes one BYTES input (the texts)".into(),
            ));
        }
        if spec.outputs.is_empty() {
            if self.pooling == Pooling::None {
                spec.outputs = outputs
                    .iter()
                    .map(|o| {
                        let mut t = TensorSpec::new(&o.name, o.datatype, &[]);
                        t.shape = o.dims[1..]
                            .iter()
                            .map(|d| d.map_or(-1, |d| d as i64))
                            .collect();
                        t
                    })
                    .collect();
            } else {
                let hidden = self.hidden_of(outputs)?;
                let width = hidden.dims.last().copied().flatten().ok_or_else(|| {
                    ModelError::Load(format!(
                        "graph output '{}' has no fixed last dimension to pool",
                        hidden.name
                    ))
                })?;
                spec.outputs = vec![TensorSpec::new("embedding", DataType::F32, &[width])];
            }
        }
        if spec.batching.max_batch_size == 0 {
            return Err(ModelError::Load(
                "a version with a tokenizer batches texts: batching.max_batch_size must be > 0"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// The loaded tokenizer and what to do around the graph.
pub struct TextFront {
    pub params: TextParams,
    tokenizer: Tokenizer,
}

/// One batch of texts as the graph's token inputs.
pub struct Tokens {
    pub rows: usize,
    pub seq: usize,
    pub ids: Vec<i64>,
    pub mask: Vec<i64>,
    /// Real tokens per row.
    pub lengths: Vec<usize>,
}

impl TextFront {
    pub fn new(params: TextParams, bytes: &[u8]) -> Result<Self, ModelError> {
        let name = &params.tokenizer;
        let mut tokenizer =
            Tokenizer::from_bytes(bytes).map_err(|e| ModelError::Load(format!("{name}: {e}")))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: params.max_tokens,
                ..Default::default()
            }))
            .map_err(|e| ModelError::Load(format!("{name}: {e}")))?;
        Ok(Self { params, tokenizer })
    }

    /// Tokenizes `texts` (long texts cut first: only `max_tokens` tokens are used).
    pub fn tokenize(&self, texts: Vec<String>) -> Result<Tokens, ModelError> {
        let max_bytes = self.params.max_tokens * BYTES_PER_TOKEN;
        let texts: Vec<String> = texts.into_iter().map(|t| cut_text(t, max_bytes)).collect();
        let encodings = self
            .tokenizer
            .encode_batch(texts, true)
            .map_err(|e| ModelError::InvalidInput(format!("cannot tokenize: {e}")))?;
        let rows = encodings.len();
        let lengths: Vec<usize> = encodings.iter().map(|e| e.get_ids().len()).collect();
        let seq = lengths.iter().copied().max().unwrap_or(0).max(1);
        let mut ids = vec![0i64; rows * seq];
        let mut mask = vec![0i64; rows * seq];
        for (r, e) in encodings.iter().enumerate() {
            for (t, &id) in e.get_ids().iter().enumerate() {
                ids[r * seq + t] = i64::from(id);
                mask[r * seq + t] = 1;
            }
        }
        Ok(Tokens {
            rows,
            seq,
            ids,
            mask,
            lengths,
        })
    }

    /// Pools hidden states `[rows, seq, width]` (row-major) over each row's real tokens.
    pub fn pool(&self, hidden: &[f32], tokens: &Tokens, width: usize) -> Vec<f32> {
        let mut out = vec![0f32; tokens.rows * width];
        for r in 0..tokens.rows {
            let row = &mut out[r * width..(r + 1) * width];
            let len = tokens.lengths[r].max(1);
            match self.params.pooling {
                Pooling::Cls | Pooling::None => {
                    let at = r * tokens.seq * width;
                    row.copy_from_slice(&hidden[at..at + width]);
                }
                Pooling::Mean => {
                    for t in 0..tokens.lengths[r] {
                        let at = (r * tokens.seq + t) * width;
                        for (o, h) in row.iter_mut().zip(&hidden[at..at + width]) {
                            *o += h;
                        }
                    }
                    for o in row.iter_mut() {
                        *o /= len as f32;
                    }
                }
            }
            if self.params.normalize {
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                for o in row.iter_mut() {
                    *o /= norm;
                }
            }
        }
        out
    }
}
