//! `bert-embedding`: a BERT encoder (e.g. all-MiniLM-L6-v2) turning text into sentence
//! embeddings: tokenize (HuggingFace `tokenizer.json`) → group rows by token length → encoder →
//! masked mean pooling → L2 normalisation. Weights are the upstream safetensors file, its keys
//! remapped onto this module tree.

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use tokenizers::{Tokenizer, TruncationParams};

use super::attention::{attention, AttentionShape, KeyMask};
use super::bert_config::MAX_CONFIG_BYTES;
use super::kernels::gelu;
use super::on_backend;
use crate::error::ModelError;
use crate::input::{take_texts, ModelOutput};
use crate::jail::{Jail, Symlinks};
use crate::load::{LoadBudget, LoadContext, LoadLimits, MemoryEstimate};
use crate::model::InferenceModel;
use crate::spec::ModelSpec;
use crate::tensor::{DataType, NamedTensor};
use crate::weights::{self, LoadOptions};

/// The longest `tokenizer.json` read (the largest HuggingFace tokenizers are tens of MiB).
pub const MAX_TOKENIZER_BYTES: u64 = 256 << 20;

/// Bytes a parsed tokenizer holds per byte of its `tokenizer.json`, for the memory estimate
/// (vocabularies and merges as hash maps).
pub const TOKENIZER_BYTES_PER_FILE_BYTE: u64 = 16;

/// Longest input, in tokens, when `params.max_tokens` is absent (sentence-transformers'
/// `max_seq_length` for all-MiniLM-L6-v2).
pub const DEFAULT_MAX_TOKENS: usize = 256;

/// The cost of one extra forward pass, in padded-token equivalents, when rows are grouped by
/// length: a group is split off only when that saves more padding than this.
pub const GROUP_OVERHEAD_TOKENS: usize = 16;

/// Most attention-score cells per head (rows × tokens²) in one forward pass; a single row always
/// fits. Session 7 capped it at 16,384 because long texts in groups ran slower per text than one
/// by one. With the masking done on same-shape tensors and 2-D linears (session 8), 32 long texts
/// (133 tokens) in passes of 14 (262,144 cells) ran 5% faster than one by one (74.2 vs 70.4
/// sentences/s, `benches/minilm.rs`), but a flood of 256-token texts then left the server 90 MiB
/// larger (`tests/flood.rs`: 271 vs 180 MiB; glibc keeps what the larger passes took). 65,536
/// (3 texts of 133 tokens, one of 256) keeps most of the gain for 3 MiB of scores a layer.
pub const ATTENTION_CELLS_PER_PASS: usize = 65_536;

pub use super::bert_config::BertConfig;

/// A LayerNorm over the hidden size, with the config's epsilon.
fn norm<B: Backend>(config: &BertConfig, device: &B::Device) -> LayerNorm<B> {
    LayerNormConfig::new(config.hidden_size)
        .with_epsilon(config.layer_norm_eps)
        .init(device)
}

/// Word + position + token-type embeddings, then LayerNorm.
#[derive(Module, Debug)]
pub struct Embeddings<B: Backend> {
    word_embeddings: Embedding<B>,
    position_embeddings: Embedding<B>,
    token_type_embeddings: Embedding<B>,
    layer_norm: LayerNorm<B>,
}

impl<B: Backend> Embeddings<B> {
    fn new(config: &BertConfig, device: &B::Device) -> Self {
        let h = config.hidden_size;
        Self {
            word_embeddings: EmbeddingConfig::new(config.vocab_size, h).init(device),
            position_embeddings: EmbeddingConfig::new(config.max_position_embeddings, h)
                .init(device),
            token_type_embeddings: EmbeddingConfig::new(config.type_vocab_size, h).init(device),
            layer_norm: norm(config, device),
        }
    }

    /// `[b, s]` ids and token types → `[b, s, hidden]`.
    fn forward(&self, ids: Tensor<B, 2, Int>, types: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [_, seq] = ids.dims();
        let positions = Tensor::<B, 1, Int>::arange(0..seq as i64, &ids.device()).reshape([1, seq]);
        let x = self.word_embeddings.forward(ids)
            + self.position_embeddings.forward(positions)
            + self.token_type_embeddings.forward(types);
        self.layer_norm.forward(x)
    }
}

/// `linear` over the last dimension of `[b, s, in]` as one 2-D matmul over `b·s` rows: one
/// large GEMM parallelises inside (burn-flex), where `b` small ones run one core each.
fn linear_rows<B: Backend>(linear: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [b, s, h] = x.dims();
    let out = linear.forward(x.reshape([b * s, h]));
    let width = out.dims()[1];
    out.reshape([b, s, width])
}

/// Multi-head self-attention projections (`attention.self.*` and `attention.output.dense`).
///
/// Loaded as the file has them (`query`, `key`, `value`); [`SelfAttention::fuse`] then puts
/// the three into one `[h, 3h]` linear (`qkv`, q's part scaled by 1/√d), so that a pass runs
/// one GEMM for them instead of three and the weights are held once.
#[derive(Module, Debug)]
pub struct SelfAttention<B: Backend> {
    query: Option<Linear<B>>,
    key: Option<Linear<B>>,
    value: Option<Linear<B>>,
    qkv: Option<Linear<B>>,
    output: Linear<B>,
    heads: usize,
}

impl<B: Backend> SelfAttention<B> {
    /// Replaces `query`, `key` and `value` by one linear over their concatenated outputs,
    /// `[q/√d | k | v]` (a no-op once fused).
    fn fuse(&mut self) {
        let (Some(query), Some(key), Some(value)) =
            (self.query.take(), self.key.take(), self.value.take())
        else {
            return;
        };
        let h = query.weight.dims()[0];
        let scale = 1.0 / ((h / self.heads) as f64).sqrt();
        let bias = |linear: &Linear<B>| {
            linear.bias.as_ref().map(|b| b.val()).unwrap_or_else(|| {
                Tensor::zeros([linear.weight.dims()[1]], &linear.weight.device())
            })
        };
        let weight = Tensor::cat(
            vec![
                query.weight.val().mul_scalar(scale),
                key.weight.val(),
                value.weight.val(),
            ],
            1,
        );
        let bias = Tensor::cat(
            vec![bias(&query).mul_scalar(scale), bias(&key), bias(&value)],
            0,
        );
        self.qkv = Some(Linear {
            weight: Param::from_tensor(weight),
            bias: Some(Param::from_tensor(bias)),
        });
    }

    /// `[b·s, h]` → the fused projections `[b·s, 3h]` (q scaled by 1/√d).
    fn project(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        if let Some(qkv) = &self.qkv {
            return qkv.forward(x);
        }
        // Not fused (a network built without loading): the three projections, concatenated.
        let d = x.dims()[1] / self.heads;
        let part = |linear: &Option<Linear<B>>| {
            linear
                .as_ref()
                .map(|linear| linear.forward(x.clone()))
                .expect("an unfused SelfAttention holds query, key and value")
        };
        Tensor::cat(
            vec![
                part(&self.query).div_scalar((d as f64).sqrt()),
                part(&self.key),
                part(&self.value),
            ],
            1,
        )
    }

    /// `[b, s, h]` and, when some row is padded, the `[b·s]` key mask (1 real, 0 padding)
    /// → `[b, s, h]`. The projections stay `[b·s, 3h]` rows; [`attention`] reads the heads out
    /// of them in place on the CPU backend.
    fn forward(&self, x: Tensor<B, 3>, key_mask: KeyMask<'_>) -> Tensor<B, 3> {
        let [b, s, h] = x.dims();
        let shape = AttentionShape {
            batch: b,
            seq: s,
            heads: self.heads,
            head_dim: h / self.heads,
        };
        let context = attention(self.project(x.reshape([b * s, h])), shape, key_mask);
        self.output.forward(context).reshape([b, s, h])
    }
}

/// One transformer layer: attention, residual + LayerNorm, GELU feed-forward, residual +
/// LayerNorm (post-norm, as BERT).
#[derive(Module, Debug)]
pub struct Layer<B: Backend> {
    attention: SelfAttention<B>,
    attention_norm: LayerNorm<B>,
    intermediate: Linear<B>,
    output: Linear<B>,
    output_norm: LayerNorm<B>,
}

impl<B: Backend> Layer<B> {
    fn new(config: &BertConfig, device: &B::Device) -> Self {
        let (h, i) = (config.hidden_size, config.intermediate_size);
        let linear = |a, b| LinearConfig::new(a, b).init(device);
        Self {
            attention: SelfAttention {
                query: Some(linear(h, h)),
                key: Some(linear(h, h)),
                value: Some(linear(h, h)),
                qkv: None,
                output: linear(h, h),
                heads: config.num_attention_heads,
            },
            attention_norm: norm(config, device),
            intermediate: linear(h, i),
            output: linear(i, h),
            output_norm: norm(config, device),
        }
    }

    fn forward(&self, x: Tensor<B, 3>, key_mask: KeyMask<'_>) -> Tensor<B, 3> {
        let attended = self
            .attention_norm
            .forward(self.attention.forward(x.clone(), key_mask) + x);
        let hidden = gelu(linear_rows(&self.intermediate, attended.clone()));
        self.output_norm
            .forward(linear_rows(&self.output, hidden) + attended)
    }
}

#[derive(Module, Debug)]
pub struct Encoder<B: Backend> {
    layers: Vec<Layer<B>>,
}

/// The BERT encoder with the upstream parameter tree (after key remapping).
#[derive(Module, Debug)]
pub struct Bert<B: Backend> {
    embeddings: Embeddings<B>,
    encoder: Encoder<B>,
}

impl<B: Backend> Bert<B> {
    pub fn new(config: &BertConfig, device: &B::Device) -> Self {
        Self {
            embeddings: Embeddings::new(config, device),
            encoder: Encoder {
                layers: (0..config.num_hidden_layers)
                    .map(|_| Layer::new(config, device))
                    .collect(),
            },
        }
    }

    /// Puts each layer's q, k and v projections into one linear (after loading the file's
    /// weights, which name them apart): see [`SelfAttention::fuse`].
    pub fn fuse_projections(&mut self) {
        for layer in &mut self.encoder.layers {
            layer.attention.fuse();
        }
    }

    /// `[b, s]` token ids and a `[b, s]` mask (1 real, 0 padding) → `[b, s, hidden]`.
    /// `padded: false` says every mask value is 1 (no row shorter than `s`): the masking is
    /// skipped (always so for one row, often after grouping by length).
    pub fn forward(
        &self,
        ids: Tensor<B, 2, Int>,
        mask: Tensor<B, 2>,
        padded: bool,
    ) -> Tensor<B, 3> {
        let [b, s] = ids.dims();
        let types = Tensor::<B, 2, Int>::zeros([b, s], &ids.device());
        // Padding keys get a large negative score, so softmax gives them no weight.
        let key_mask: Option<Vec<f32>> = padded.then(|| mask.into_data().iter::<f32>().collect());
        let x = self.embeddings.forward(ids, types);
        self.encoder
            .layers
            .iter()
            .fold(x, |x, layer| layer.forward(x, key_mask.as_deref()))
    }

    /// Masked mean over real tokens, then (optionally) L2 normalisation: `[b, hidden]`.
    pub fn embed(
        &self,
        ids: Tensor<B, 2, Int>,
        mask: Tensor<B, 2>,
        normalize: bool,
    ) -> Tensor<B, 2> {
        self.embed_padded(ids, mask, true, normalize)
    }

    /// [`Bert::embed`], told whether any row is padded (see [`Bert::forward`]).
    pub fn embed_padded(
        &self,
        ids: Tensor<B, 2, Int>,
        mask: Tensor<B, 2>,
        padded: bool,
        normalize: bool,
    ) -> Tensor<B, 2> {
        let [b, s] = ids.dims();
        let hidden = self.forward(ids, mask.clone(), padded);
        let h = hidden.dims()[2];
        let mask = mask.reshape([b, s, 1]);
        let summed = (hidden * mask.clone()).sum_dim(1).reshape([b, h]);
        let counts = mask.sum_dim(1).reshape([b, 1]).clamp_min(1e-9);
        let mean = summed / counts;
        if !normalize {
            return mean;
        }
        let norm = mean
            .clone()
            .powi_scalar(2)
            .sum_dim(1)
            .sqrt()
            .clamp_min(1e-12);
        mean / norm
    }
}

/// How rows sorted by token length are cut into forward passes: `order` lists row indices by
/// length, each group is a range of `order` padded to its longest row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LengthGroups {
    pub order: Vec<usize>,
    pub groups: Vec<std::ops::Range<usize>>,
}

impl LengthGroups {
    /// Optimal grouping (dynamic programming over the sorted lengths) minimising padded tokens
    /// plus `overhead` per extra forward pass, with at most `max_cells` attention cells
    /// (rows × longest²) per pass unless the pass holds one row.
    pub fn plan(lengths: &[usize], overhead: usize, max_cells: usize) -> Self {
        let mut order: Vec<usize> = (0..lengths.len()).collect();
        order.sort_by_key(|&i| (lengths[i], i));
        let sorted: Vec<usize> = order.iter().map(|&i| lengths[i]).collect();
        let n = sorted.len();
        // best[j]: least cost of the first j sorted rows; cut[j]: where its last group starts.
        let mut best = vec![0usize; n + 1];
        let mut cut = vec![0usize; n + 1];
        for j in 1..=n {
            let longest = sorted[j - 1];
            let (start, cost) = (0..j)
                .filter(|&i| j - i == 1 || (j - i) * longest * longest <= max_cells)
                .map(|i| (i, best[i] + (j - i) * longest + overhead))
                .min_by_key(|&(i, cost)| (cost, i))
                .unwrap_or((0, 0));
            best[j] = cost;
            cut[j] = start;
        }
        let mut groups = Vec::new();
        let mut end = n;
        while end > 0 {
            groups.push(cut[end]..end);
            end = cut[end];
        }
        groups.reverse();
        Self { order, groups }
    }

    /// Every row in one forward pass, in input order (grouping off).
    pub fn single(rows: usize) -> Self {
        Self {
            order: (0..rows).collect(),
            groups: (rows > 0).then_some(0..rows).into_iter().collect(),
        }
    }

    /// Tokens the forward passes compute, padding included.
    pub fn padded_tokens(&self, lengths: &[usize]) -> usize {
        self.groups
            .iter()
            .map(|g| {
                g.len()
                    * self.order[g.clone()]
                        .iter()
                        .map(|&i| lengths[i])
                        .max()
                        .unwrap_or(0)
            })
            .sum()
    }
}

/// Real and padded tokens computed so far (padding waste = padded / real − 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    pub real: u64,
    pub padded: u64,
    pub forward_passes: u64,
}

/// Bytes of text kept per token of `max_tokens` before tokenizing. Tokenizing costs time and
/// memory in the text's whole length while only `max_tokens` tokens are used: a 1 MB text took
/// 0.46 s. WordPiece tokens of ordinary text average 4–6 bytes, so 64 per token keeps every
/// token that could be used (a text is cut only where its first `max_tokens` tokens lie well
/// before the cut; a cut can change them only for text that is mostly whitespace or one
/// giant word).
pub const BYTES_PER_TOKEN: usize = 64;

/// `text` cut to at most `max_bytes` bytes, at a character boundary.
pub fn cut_text(mut text: String, max_bytes: usize) -> String {
    if text.len() > max_bytes {
        let mut end = max_bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.shrink_to_fit();
    }
    text
}

/// A sentence-embedding model: tokenizer + BERT encoder + pooling, on one device.
pub struct TextEmbedder<B: Backend> {
    bert: Bert<B>,
    tokenizer: Tokenizer,
    /// Texts are cut to this many bytes before tokenizing (see [`BYTES_PER_TOKEN`]).
    max_text_bytes: usize,
    device: B::Device,
    hidden: usize,
    normalize: bool,
    group_by_length: bool,
    counts: TokenCounts,
    /// The output's name (the spec's).
    output_name: String,
}

impl<B: Backend> TextEmbedder<B> {
    /// Builds the model `spec` describes from the files in `dir` (its own jail, default limits,
    /// no deadline: tools, tests and benches).
    pub fn load(spec: &ModelSpec, dir: &Path, device: B::Device) -> Result<Self, ModelError> {
        let jail = Jail::open(dir, Symlinks::Inside)?;
        let budget = LoadBudget::unlimited();
        let ctx = LoadContext::new(
            spec,
            dir,
            crate::Device::Cpu,
            &jail,
            LoadLimits::default(),
            &budget,
        );
        Self::load_in(&ctx, device)
    }

    /// Builds the model of a load's context on `device`: `config.json` and `tokenizer.json`
    /// read and verified against their pins, the weights verified, every size of `config.json`
    /// compared with the tensors the weights hold, the memory estimate admitted, and only then
    /// the encoder built and loaded, the deadline checked between the steps.
    pub fn load_in(ctx: &LoadContext, device: B::Device) -> Result<Self, ModelError> {
        let spec = ctx.spec;
        spec.require_single("bert-embedding", &[DataType::Bytes], DataType::F32)?;
        let config_file: String = spec.param("config", "config.json".to_string())?;
        let tokenizer_file: String = spec.param("tokenizer", "tokenizer.json".to_string())?;
        let max_tokens: usize = spec.param("max_tokens", DEFAULT_MAX_TOKENS)?;
        let normalize: bool = spec.param("normalize", true)?;
        let group_by_length: bool = spec.param("group_by_length", true)?;
        let config_bytes = ctx.read("params.config", &config_file, MAX_CONFIG_BYTES)?;
        let config = BertConfig::from_bytes(&config_bytes, &config_file)?;
        let tokenizer_bytes = ctx.read("params.tokenizer", &tokenizer_file, MAX_TOKENIZER_BYTES)?;
        let weights = ctx.weights("bert-embedding")?;
        config.check_weights(&weights.header, &config_file)?;
        if max_tokens < 2 || max_tokens > config.max_position_embeddings {
            return Err(ModelError::Load(format!(
                "params.max_tokens {max_tokens} must be within 2..={}",
                config.max_position_embeddings
            )));
        }
        if spec.output().shape != [config.hidden_size as i64] {
            return Err(ModelError::Load(format!(
                "output.shape {:?} does not match the encoder's hidden size {}",
                spec.output().shape,
                config.hidden_size
            )));
        }
        ctx.admit(&MemoryEstimate {
            other: tokenizer_bytes.len() as u64 * TOKENIZER_BYTES_PER_FILE_BYTE,
            ..ctx.estimate(
                weights.header.loaded_bytes(),
                config.working_bytes(
                    spec.batching.max_batch_size,
                    max_tokens,
                    group_by_length.then_some(ATTENTION_CELLS_PER_PASS),
                ),
            )
        })?;
        ctx.check()?;
        let tokenizer = load_tokenizer(&tokenizer_bytes, &tokenizer_file, max_tokens)?;
        drop(tokenizer_bytes);
        let tokens = tokenizer.get_vocab_size(true);
        if tokens > config.vocab_size {
            return Err(ModelError::Load(format!(
                "{tokenizer_file} holds {tokens} tokens; {config_file} vocab_size = {} (the \
                 embeddings have a row per token)",
                config.vocab_size
            )));
        }
        ctx.check()?;
        let mut bert = Bert::<B>::new(&config, &device);
        ctx.check()?;
        weights::load_safetensors_with(&mut bert, &weights.path, &huggingface_bert())?;
        ctx.check()?;
        bert.fuse_projections();
        Ok(Self {
            bert,
            tokenizer,
            max_text_bytes: max_tokens * BYTES_PER_TOKEN,
            device,
            hidden: config.hidden_size,
            normalize,
            group_by_length,
            counts: TokenCounts::default(),
            output_name: spec.output().name.clone(),
        })
    }

    /// Token ids of one text (special tokens included, truncated at `max_tokens`).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let text = cut_text(text.to_string(), self.max_text_bytes);
        self.tokenizer
            .encode(text, true)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| ModelError::InvalidInput(format!("cannot tokenize: {e}")))
    }

    /// Switches length grouping (`params.group_by_length`, on by default); off runs each batch
    /// as one pass padded to its longest row.
    pub fn set_group_by_length(&mut self, on: bool) {
        self.group_by_length = on;
    }

    /// Real and padded tokens computed since load.
    pub fn token_counts(&self) -> TokenCounts {
        self.counts
    }

    /// One embedding per text, rows grouped by length into forward passes.
    pub fn embed(&mut self, texts: Vec<String>) -> Result<(Vec<f32>, Vec<usize>), ModelError> {
        let texts: Vec<String> = texts
            .into_iter()
            .map(|text| cut_text(text, self.max_text_bytes))
            .collect();
        let encodings = self
            .tokenizer
            .encode_batch(texts, true)
            .map_err(|e| ModelError::Inference(format!("cannot tokenize: {e}")))?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        let lengths: Vec<usize> = ids.iter().map(|i| i.len()).collect();
        let plan = if self.group_by_length {
            LengthGroups::plan(&lengths, GROUP_OVERHEAD_TOKENS, ATTENTION_CELLS_PER_PASS)
        } else {
            LengthGroups::single(lengths.len())
        };
        let mut values = vec![0f32; ids.len() * self.hidden];
        for group in &plan.groups {
            let rows = &plan.order[group.clone()];
            let seq = rows.iter().map(|&r| lengths[r]).max().unwrap_or(0);
            let mut flat_ids = vec![0i64; rows.len() * seq];
            let mut mask = vec![0f32; rows.len() * seq];
            for (slot, &row) in rows.iter().enumerate() {
                for (t, &id) in ids[row].iter().enumerate() {
                    flat_ids[slot * seq + t] = i64::from(id);
                    mask[slot * seq + t] = 1.0;
                }
            }
            let ids_tensor = Tensor::<B, 2, Int>::from_data(
                TensorData::new(flat_ids, [rows.len(), seq]),
                &self.device,
            );
            let mask_tensor =
                Tensor::<B, 2>::from_data(TensorData::new(mask, [rows.len(), seq]), &self.device);
            let padded = rows.iter().any(|&r| lengths[r] < seq);
            let pooled = self
                .bert
                .embed_padded(ids_tensor, mask_tensor, padded, self.normalize)
                .into_data()
                .into_vec::<f32>()
                .map_err(|e| ModelError::Inference(format!("reading output: {e:?}")))?;
            for (slot, &row) in rows.iter().enumerate() {
                values[row * self.hidden..(row + 1) * self.hidden]
                    .copy_from_slice(&pooled[slot * self.hidden..(slot + 1) * self.hidden]);
            }
            self.counts.padded += (rows.len() * seq) as u64;
            self.counts.forward_passes += 1;
        }
        self.counts.real += lengths.iter().sum::<usize>() as u64;
        Ok((values, lengths))
    }
}

impl<B: Backend> InferenceModel for TextEmbedder<B>
where
    B::Device: Send,
{
    fn forward(
        &mut self,
        inputs: Vec<NamedTensor>,
        rows: usize,
    ) -> Result<ModelOutput, ModelError> {
        let texts = take_texts(inputs)?;
        if texts.len() != rows {
            return Err(ModelError::Inference(format!(
                "batch has {} texts for {rows} rows",
                texts.len()
            )));
        }
        let (values, tokens) = self.embed(texts)?;
        let mut output = ModelOutput::f32(&self.output_name, rows, &[self.hidden], values);
        output.tokens = tokens;
        Ok(output)
    }

    fn weight_bytes(&self) -> usize {
        self.bert.num_params() * std::mem::size_of::<f32>()
    }

    fn share(&self) -> Option<Box<dyn InferenceModel>> {
        Some(Box::new(Self {
            bert: self.bert.clone(),
            tokenizer: self.tokenizer.clone(),
            max_text_bytes: self.max_text_bytes,
            device: self.device.clone(),
            hidden: self.hidden,
            normalize: self.normalize,
            group_by_length: self.group_by_length,
            counts: TokenCounts::default(),
            output_name: self.output_name.clone(),
        }))
    }
}

/// The tokenizer from `tokenizer.json`'s bytes (`name` in messages), with its fixed padding
/// removed (we pad per length group) and truncation at `max_tokens`.
fn load_tokenizer(bytes: &[u8], name: &str, max_tokens: usize) -> Result<Tokenizer, ModelError> {
    let mut tokenizer =
        Tokenizer::from_bytes(bytes).map_err(|e| ModelError::Load(format!("{name}: {e}")))?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_tokens,
            ..Default::default()
        }))
        .map_err(|e| ModelError::Load(format!("{name}: {e}")))?;
    Ok(tokenizer)
}

/// HuggingFace BERT names → this module tree (PyTorch layout: transposed Linear weights,
/// LayerNorm `weight`/`bias`). `pooler.*` and `embeddings.position_ids` are not used for
/// sentence embeddings.
fn huggingface_bert() -> LoadOptions {
    LoadOptions {
        from_pytorch: true,
        remap: vec![
            (r"^embeddings\.LayerNorm\.", "embeddings.layer_norm."),
            (
                r"^encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.",
                "encoder.layers.$1.attention.$2.",
            ),
            (
                r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.",
                "encoder.layers.$1.attention.output.",
            ),
            (
                r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.",
                "encoder.layers.$1.attention_norm.",
            ),
            (
                r"^encoder\.layer\.(\d+)\.intermediate\.dense\.",
                "encoder.layers.$1.intermediate.",
            ),
            (
                r"^encoder\.layer\.(\d+)\.output\.dense\.",
                "encoder.layers.$1.output.",
            ),
            (
                r"^encoder\.layer\.(\d+)\.output\.LayerNorm\.",
                "encoder.layers.$1.output_norm.",
            ),
            // burn-store 0.21 finds LayerNorm `weight`/`bias` under their burn names through the
            // PyTorch adapter but still reports the file's names as unused: rename them here.
            (r"^(.*_norm)\.weight$", "$1.gamma"),
            (r"^(.*_norm)\.bias$", "$1.beta"),
        ],
        ignore_unused: vec!["pooler.", "embeddings.position_ids"],
    }
}

/// Loads a `bert-embedding` version.
pub fn load(ctx: &LoadContext) -> Result<Box<dyn InferenceModel>, ModelError> {
    fn build<B: Backend>(
        device: B::Device,
        ctx: &LoadContext,
    ) -> Result<Box<dyn InferenceModel>, ModelError>
    where
        B::Device: Send,
    {
        Ok(Box::new(TextEmbedder::<B>::load_in(ctx, device)?))
    }
    on_backend!(ctx.device, build, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_rows_by_length_when_padding_costs_more_than_a_pass() {
        // Two short and two long rows: one pass would pad 2×(100−5) = 190 tokens.
        let lengths = [100, 5, 98, 6];
        let plan = LengthGroups::plan(&lengths, 16, usize::MAX);
        assert_eq!(plan.order, vec![1, 3, 2, 0]);
        assert_eq!(plan.groups, vec![0..2, 2..4]);
        assert_eq!(plan.padded_tokens(&lengths), 2 * 6 + 2 * 100);
        // Similar lengths stay in one pass.
        let close = [10, 12, 11, 9];
        let plan = LengthGroups::plan(&close, 16, usize::MAX);
        assert_eq!(plan.groups, vec![0..4]);
        assert_eq!(plan.padded_tokens(&close), 48);
        assert_eq!(
            LengthGroups::plan(&[], 16, usize::MAX).groups,
            Vec::<std::ops::Range<usize>>::new()
        );
    }

    #[test]
    fn passes_hold_at_most_the_attention_budget_but_always_one_row() {
        // Equal lengths would share one pass; 4 × 10² = 400 cells, budget 200: pairs.
        let plan = LengthGroups::plan(&[10, 10, 10, 10], 16, 200);
        assert_eq!(plan.groups, vec![0..2, 2..4]);
        // A row over the budget on its own still runs, alone.
        let plan = LengthGroups::plan(&[30, 30], 16, 200);
        assert_eq!(plan.groups, vec![0..1, 1..2]);
        // The shipped budget: 32 short texts share a pass, long ones go 3 at a time.
        let short = LengthGroups::plan(&[16; 32], 16, ATTENTION_CELLS_PER_PASS);
        assert_eq!(short.groups, vec![0..32]);
        let long = LengthGroups::plan(&[133; 32], 16, ATTENTION_CELLS_PER_PASS);
        assert_eq!(long.groups.iter().map(|g| g.len()).max(), Some(3));
    }

    #[test]
    fn encoder_runs_on_random_weights_and_pools_to_unit_vectors() {
        type B = crate::arch::CpuBackend;
        let config = BertConfig {
            vocab_size: 50,
            hidden_size: 8,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            intermediate_size: 16,
            max_position_embeddings: 16,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_act: "gelu".into(),
        };
        let device = Default::default();
        let bert = Bert::<B>::new(&config, &device);
        let ids = Tensor::<B, 2, Int>::from_data(
            TensorData::new(vec![1i64, 7, 9, 2, 1, 7, 9, 0], [2, 4]),
            &device,
        );
        let mask = Tensor::<B, 2>::from_data(
            TensorData::new(vec![1f32, 1., 1., 1., 1., 1., 1., 0.], [2, 4]),
            &device,
        );
        let out = bert
            .embed(ids, mask, true)
            .into_data()
            .into_vec::<f32>()
            .unwrap();
        assert_eq!(out.len(), 16);
        for row in out.chunks(8) {
            let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        }
        // Padding must not change a row: row 2 alone (3 real tokens) equals its padded form.
        let ids =
            Tensor::<B, 2, Int>::from_data(TensorData::new(vec![1i64, 7, 9], [1, 3]), &device);
        let mask = Tensor::<B, 2>::from_data(TensorData::new(vec![1f32; 3], [1, 3]), &device);
        let alone = bert
            .embed(ids, mask, true)
            .into_data()
            .into_vec::<f32>()
            .unwrap();
        for (a, b) in alone.iter().zip(&out[8..]) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn fused_projections_give_the_unfused_networks_embeddings() {
        type B = crate::arch::CpuBackend;
        let config = BertConfig {
            vocab_size: 50,
            hidden_size: 24,
            num_hidden_layers: 2,
            num_attention_heads: 3,
            intermediate_size: 32,
            max_position_embeddings: 16,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_act: "gelu".into(),
        };
        let device = Default::default();
        let unfused = Bert::<B>::new(&config, &device);
        let params = unfused.num_params();
        let mut fused = unfused.clone();
        fused.fuse_projections();
        fused.fuse_projections(); // twice is once
        assert!(fused
            .encoder
            .layers
            .iter()
            .all(|l| l.attention.qkv.is_some() && l.attention.query.is_none()));
        assert_eq!(fused.num_params(), params, "weights held once");
        let run = |bert: &Bert<B>| {
            let ids = Tensor::<B, 2, Int>::from_data(
                TensorData::new(vec![1i64, 7, 9, 2, 1, 7, 9, 0, 3, 0, 0, 0], [3, 4]),
                &device,
            );
            let mask = Tensor::<B, 2>::from_data(
                TensorData::new(
                    vec![1f32, 1., 1., 1., 1., 1., 1., 0., 1., 0., 0., 0.],
                    [3, 4],
                ),
                &device,
            );
            bert.embed(ids, mask, false)
                .into_data()
                .into_vec::<f32>()
                .unwrap()
        };
        let (a, b) = (run(&unfused), run(&fused));
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "fused differs by {worst}");
    }
}
