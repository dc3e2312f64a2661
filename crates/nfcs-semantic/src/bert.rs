//! The BERT encoder of all-MiniLM-L6-v2, on packed tokens and reused buffers.
//!
//! A batch of texts of different lengths is usually padded to its longest text, and every
//! layer then computes the padding too. Here every row is a real token: the texts' tokens are
//! packed one after another, and attention, which must see each text's tokens together, runs
//! text by text on its own rows. The matrix products go straight to `gemm` with the bias (and
//! the residual) preloaded in the output, and the buffers of a forward pass are kept for the
//! next one (a fresh buffer per operation cost 7 to 12 % of the time in page faults and
//! zeroing). Products of few rows (a short query on its own) run instead in a kernel of our
//! own over a second copy of each layer's weights laid out in column strips (42 MB beside the
//! model's 90 MB): `gemm` reads row-major weights a cache line per row and, with few rows to
//! reuse each line, waits for memory. That kernel allocates per product: the rows of `a`
//! interleaved by groups of four (at most 80 rows × 1,536 values) and, on two threads, each
//! thread's buffer of its own columns; moving them into the kept buffers is still to do. The
//! GELU and the softmax use an `erf` and an `exp` the compiler vectorises instead of libm's
//! scalar ones, and like the layer norms they are compiled for AVX-512 and AVX2 beside the
//! baseline (`at_level!`). With fewer texts than threads, attention runs head by head.

use std::collections::HashMap;

use candle_core::{DType, Tensor};
use rayon::prelude::*;

/// What the encoder needs from `config.json`.
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct BertConfig {
    hidden_size: usize,
    num_attention_heads: usize,
    num_hidden_layers: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    layer_norm_eps: f64,
    #[serde(default = "gelu")]
    hidden_act: String,
}

fn gelu() -> String {
    "gelu".to_owned()
}

fn invalid(message: String) -> candle_core::Error {
    candle_core::Error::Msg(message)
}

/// The tensors of `model.safetensors`, taken out one by one with their shapes checked.
struct Weights(HashMap<String, Tensor>);

impl Weights {
    /// The tensor `name` (or `bert.{name}`), whose dimensions must match `shape` (`None`: any).
    fn take(&mut self, name: &str, shape: &[Option<usize>]) -> candle_core::Result<Tensor> {
        let tensor = self
            .0
            .remove(name)
            .or_else(|| self.0.remove(&format!("bert.{name}")))
            .ok_or_else(|| invalid(format!("tensor {name} is missing from the weights")))?
            .to_dtype(DType::F32)?;
        let fits = tensor.dims().len() == shape.len()
            && tensor
                .dims()
                .iter()
                .zip(shape)
                .all(|(dim, expected)| expected.is_none_or(|expected| expected == *dim));
        if !fits {
            return Err(invalid(format!(
                "tensor {name} has shape {:?}, expected {shape:?}",
                tensor.dims()
            )));
        }
        Ok(tensor)
    }

    /// A linear layer's weight (stored `out × in`) as its contiguous transpose (`in × out`),
    /// which the matrix multiply reads in place, and its bias.
    fn linear(
        &mut self,
        name: &str,
        inputs: usize,
        outputs: usize,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let weight = self
            .take(&format!("{name}.weight"), &[Some(outputs), Some(inputs)])?
            .t()?
            .contiguous()?;
        let bias = self.take(&format!("{name}.bias"), &[Some(outputs)])?;
        Ok((weight, bias))
    }
}

struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// A linear layer's weights (`inputs × outputs`) in the two layouts the products read.
struct Linear {
    /// Row-major, for `gemm` (many rows).
    row_major: Vec<f32>,
    /// Strips of [`BLOCK_COLUMNS`] output columns, each strip's `inputs` rows of
    /// [`BLOCK_COLUMNS`] values one after another (the last strip padded with zeros), for
    /// [`small_matmul`] (few rows): a strip streams from memory in order, where the row-major
    /// layout has one cache line per row of it, `outputs` values apart.
    strips: Vec<f32>,
}

impl Linear {
    fn new(row_major: Vec<f32>, inputs: usize, outputs: usize) -> Linear {
        let count = outputs.div_ceil(BLOCK_COLUMNS);
        let mut strips = vec![0.0; count * inputs * BLOCK_COLUMNS];
        for (index, strip) in strips.chunks_exact_mut(inputs * BLOCK_COLUMNS).enumerate() {
            let first = index * BLOCK_COLUMNS;
            let last = (first + BLOCK_COLUMNS).min(outputs);
            for (row, packed) in row_major
                .chunks_exact(outputs)
                .zip(strip.chunks_exact_mut(BLOCK_COLUMNS))
            {
                packed[..last - first].copy_from_slice(&row[first..last]);
            }
        }
        Linear { row_major, strips }
    }
}

struct Layer {
    /// Query, key and value projections side by side: `hidden × 3·hidden`.
    qkv: Linear,
    qkv_bias: Vec<f32>,
    output: Linear,
    output_bias: Vec<f32>,
    attention_norm: Norm,
    intermediate: Linear,
    intermediate_bias: Vec<f32>,
    feed_forward: Linear,
    feed_forward_bias: Vec<f32>,
    output_norm: Norm,
}

/// Sets of buffers [`Bert`] keeps between passes, at most: more passes at once allocate their
/// own and drop them.
const KEPT_SCRATCH: usize = 4;

/// The buffers of a forward pass, kept for the next one.
#[derive(Default)]
struct Scratch {
    states: Vec<f32>,
    qkv: Vec<f32>,
    context: Vec<f32>,
    attended: Vec<f32>,
    inner: Vec<f32>,
}

/// The encoder: token ids in, one hidden state per token out.
pub(crate) struct Bert {
    words: Vec<f32>,
    vocabulary: usize,
    positions: Vec<f32>,
    /// Every token is of type 0.
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    hidden: usize,
    intermediate: usize,
    max_positions: usize,
    eps: f32,
    /// The buffers of earlier passes, taken by a pass and given back at its end: one per pass
    /// that ran at the same time (at most [`KEPT_SCRATCH`]). The lock is held only to take or
    /// give back, never during a pass, which runs rayon jobs: a pass that blocked a pool
    /// thread on a lock held by another pass could wait for work queued behind itself.
    scratch: parking_lot::Mutex<Vec<Scratch>>,
}

fn values(tensor: &Tensor) -> candle_core::Result<Vec<f32>> {
    tensor.flatten_all()?.to_vec1::<f32>()
}

impl Weights {
    /// A linear layer as `in × out` row-major (the file stores `out × in`) and its bias.
    fn dense(
        &mut self,
        name: &str,
        inputs: usize,
        outputs: usize,
    ) -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
        let (weight, bias) = self.linear(name, inputs, outputs)?;
        Ok((values(&weight)?, values(&bias)?))
    }

    fn norm(&mut self, name: &str, hidden: usize) -> candle_core::Result<Norm> {
        Ok(Norm {
            weight: values(&self.take(&format!("{name}.weight"), &[Some(hidden)])?)?,
            bias: values(&self.take(&format!("{name}.bias"), &[Some(hidden)])?)?,
        })
    }
}

impl Bert {
    /// The encoder from the tensors of `model.safetensors` and the configuration.
    pub(crate) fn load(
        tensors: HashMap<String, Tensor>,
        config: &BertConfig,
    ) -> candle_core::Result<Bert> {
        if config.hidden_act != "gelu" {
            return Err(invalid(format!(
                "activation {:?} is not supported (all-MiniLM-L6-v2 uses gelu)",
                config.hidden_act
            )));
        }
        let hidden = config.hidden_size;
        let heads = config.num_attention_heads;
        if heads == 0 || !hidden.is_multiple_of(heads) {
            return Err(invalid(format!(
                "{hidden} hidden units do not split into {heads} heads"
            )));
        }
        let intermediate = config.intermediate_size;
        let mut weights = Weights(tensors);
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for index in 0..config.num_hidden_layers {
            let prefix = format!("encoder.layer.{index}");
            let (query, query_bias) =
                weights.linear(&format!("{prefix}.attention.self.query"), hidden, hidden)?;
            let (key, key_bias) =
                weights.linear(&format!("{prefix}.attention.self.key"), hidden, hidden)?;
            let (value, value_bias) =
                weights.linear(&format!("{prefix}.attention.self.value"), hidden, hidden)?;
            let (output, output_bias) =
                weights.dense(&format!("{prefix}.attention.output.dense"), hidden, hidden)?;
            let (intermediate_weight, intermediate_bias) = weights.dense(
                &format!("{prefix}.intermediate.dense"),
                hidden,
                intermediate,
            )?;
            let (feed_forward, feed_forward_bias) =
                weights.dense(&format!("{prefix}.output.dense"), intermediate, hidden)?;
            layers.push(Layer {
                qkv: Linear::new(
                    values(&Tensor::cat(&[&query, &key, &value], 1)?)?,
                    hidden,
                    3 * hidden,
                ),
                qkv_bias: values(&Tensor::cat(&[&query_bias, &key_bias, &value_bias], 0)?)?,
                output: Linear::new(output, hidden, hidden),
                output_bias,
                attention_norm: weights
                    .norm(&format!("{prefix}.attention.output.LayerNorm"), hidden)?,
                intermediate: Linear::new(intermediate_weight, hidden, intermediate),
                intermediate_bias,
                feed_forward: Linear::new(feed_forward, intermediate, hidden),
                feed_forward_bias,
                output_norm: weights.norm(&format!("{prefix}.output.LayerNorm"), hidden)?,
            });
        }
        let words = weights.take("embeddings.word_embeddings.weight", &[None, Some(hidden)])?;
        let vocabulary = words.dims()[0];
        let positions = weights.take(
            "embeddings.position_embeddings.weight",
            &[Some(config.max_position_embeddings), Some(hidden)],
        )?;
        let token_type = weights
            .take(
                "embeddings.token_type_embeddings.weight",
                &[None, Some(hidden)],
            )?
            .get(0)?;
        let embedding_norm = weights.norm("embeddings.LayerNorm", hidden)?;
        Ok(Bert {
            words: values(&words)?,
            vocabulary,
            positions: values(&positions)?,
            token_type: values(&token_type)?,
            embedding_norm,
            layers,
            heads,
            hidden,
            intermediate,
            max_positions: config.max_position_embeddings,
            eps: config.layer_norm_eps as f32,
            scratch: parking_lot::Mutex::new(Vec::new()),
        })
    }

    /// The hidden states of every token of every text, packed: text after text, `[CLS]` to
    /// `[SEP]`, `hidden` values a token.
    pub(crate) fn forward(&self, texts: &[&[u32]]) -> Result<Vec<f32>, String> {
        let hidden = self.hidden;
        if let Some(long) = texts.iter().find(|ids| ids.len() > self.max_positions) {
            return Err(format!(
                "{} tokens is more than the model's {} positions",
                long.len(),
                self.max_positions
            ));
        }
        if let Some(id) = texts
            .iter()
            .flat_map(|ids| ids.iter())
            .find(|&&id| id as usize >= self.vocabulary)
        {
            return Err(format!(
                "token {id} is outside the vocabulary of {}",
                self.vocabulary
            ));
        }
        let total: usize = texts.iter().map(|ids| ids.len()).sum();
        let mut kept = self.scratch.lock().pop().unwrap_or_default();
        let scratch = &mut kept;
        let states = &mut scratch.states;
        states.clear();
        states.resize(total * hidden, 0.0);
        let mut row = 0;
        for ids in texts {
            for (position, &id) in ids.iter().enumerate() {
                let out = &mut states[row * hidden..(row + 1) * hidden];
                let word = &self.words[id as usize * hidden..(id as usize + 1) * hidden];
                let place = &self.positions[position * hidden..(position + 1) * hidden];
                for (((out, word), place), kind) in
                    out.iter_mut().zip(word).zip(place).zip(&self.token_type)
                {
                    *out = word + place + kind;
                }
                row += 1;
            }
        }
        layer_norm(states, &self.embedding_norm, self.eps, hidden);
        let lengths: Vec<usize> = texts.iter().map(|ids| ids.len()).collect();
        for layer in &self.layers {
            // Query, key and value of every token.
            preload(&mut scratch.qkv, total, &layer.qkv_bias, None);
            matmul(
                states,
                &layer.qkv,
                &mut scratch.qkv,
                total,
                hidden,
                3 * hidden,
            );
            // Attention, text by text, head by head (every value of `context` is written).
            scratch.context.resize(total * hidden, 0.0);
            attention(
                &scratch.qkv,
                &mut scratch.context,
                &lengths,
                self.heads,
                hidden,
            );
            // Output projection with the residual, then the norm.
            preload(
                &mut scratch.attended,
                total,
                &layer.output_bias,
                Some(states),
            );
            matmul(
                &scratch.context,
                &layer.output,
                &mut scratch.attended,
                total,
                hidden,
                hidden,
            );
            layer_norm(
                &mut scratch.attended,
                &layer.attention_norm,
                self.eps,
                hidden,
            );
            // Feed-forward with the residual, then the norm.
            preload(&mut scratch.inner, total, &layer.intermediate_bias, None);
            matmul(
                &scratch.attended,
                &layer.intermediate,
                &mut scratch.inner,
                total,
                hidden,
                self.intermediate,
            );
            gelu_erf(&mut scratch.inner);
            preload(
                states,
                total,
                &layer.feed_forward_bias,
                Some(&scratch.attended),
            );
            matmul(
                &scratch.inner,
                &layer.feed_forward,
                states,
                total,
                self.intermediate,
                hidden,
            );
            layer_norm(states, &layer.output_norm, self.eps, hidden);
        }
        let states = states.clone();
        let mut spare = self.scratch.lock();
        if spare.len() < KEPT_SCRATCH {
            spare.push(kept);
        }
        Ok(states)
    }
}

/// Fills `out` with `rows` copies of `bias`, plus `residual` when given (of the same shape).
fn preload(out: &mut Vec<f32>, rows: usize, bias: &[f32], residual: Option<&[f32]>) {
    let width = bias.len();
    match residual {
        Some(residual) => {
            out.clear();
            out.extend_from_slice(&residual[..rows * width]);
            for row in out.chunks_exact_mut(width) {
                for (value, bias) in row.iter_mut().zip(bias) {
                    *value += bias;
                }
            }
        }
        None => {
            out.clear();
            for _ in 0..rows {
                out.extend_from_slice(bias);
            }
        }
    }
}

/// Products with at most this many rows (tokens) run in [`small_matmul`] on the weights'
/// strips instead of `gemm`, which for few rows reads the row-major weights a cache line per
/// row, each `outputs` values from the last, and spends its time waiting for memory. Measured
/// on one thread (`examples/embed_loop.rs`, one text a call, against `gemm` for every
/// product): about 14 tokens 1.7-1.9x, 50 tokens 1.2x, 62 tokens 1.1x, 90 tokens level.
/// That was on an AVX2 machine; for the AVX-512 kernel see [`SMALL_ROWS_AVX512`].
const SMALL_ROWS: usize = 80;
/// [`SMALL_ROWS`] where the AVX-512 kernel runs. Measured on a Xeon with AVX-512 (2 MiB of L2
/// a core, where `gemm`'s AVX-512 path reads the weights well), one thread, against `gemm`
/// for every product: 12 tokens 1.1x, 22 tokens 1.2x, 42 tokens level, 66 tokens 0.85x.
const SMALL_ROWS_AVX512: usize = 48;

/// `out += a · weights` for row-major `a` (`m × k`) and `out` (`m × n`), on every thread of
/// rayon's pool.
fn matmul(a: &[f32], weights: &Linear, out: &mut [f32], m: usize, k: usize, n: usize) {
    let small_rows = if kernel_level() == KernelLevel::Avx512Fma {
        SMALL_ROWS_AVX512
    } else {
        SMALL_ROWS
    };
    if m <= small_rows {
        small_matmul(a, &weights.strips, out, m, k, n);
        return;
    }
    let threads = rayon::current_num_threads();
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let product = Product {
        m,
        n,
        k,
        accumulate: true,
        parallelism,
    };
    product.run((out, n), (a, k, 1), (&weights.row_major, n, 1));
}

/// Rows and columns of one register block of [`small_block_body`]: 4 rows of 16 (eight AVX2
/// registers), or [`WIDE_BLOCK_ROWS`] of 16 with AVX-512 (eight of its registers, enough
/// independent sums to keep both FMA units busy).
const BLOCK_ROWS: usize = 4;
const BLOCK_COLUMNS: usize = 16;
/// Rows of a register block of the AVX-512 version.
const WIDE_BLOCK_ROWS: usize = 8;

/// `out += a · b` as [`matmul`], for few rows, with `b` in strips ([`Linear::strips`]): one
/// strip (`k × 16` values, 24 KiB for `k = 384`) at a time, which stays in L1 while every
/// group of [`BLOCK_ROWS`] rows passes over it. With more than one thread in rayon's pool the
/// strips are split between the threads, each accumulating into its own copy of its columns.
fn small_matmul(a: &[f32], strips: &[f32], out: &mut [f32], m: usize, k: usize, n: usize) {
    small_matmul_at(kernel_level(), a, strips, out, (m, k, n));
}

/// [`small_matmul`] with the kernel's version `level` (the baseline where this CPU does not
/// run `level`).
fn small_matmul_at(
    level: KernelLevel,
    a: &[f32],
    strips: &[f32],
    out: &mut [f32],
    shape: (usize, usize, usize),
) {
    if level == KernelLevel::Avx512Fma && level.supported() {
        small_matmul_rows::<WIDE_BLOCK_ROWS>(level, a, strips, out, shape);
    } else {
        small_matmul_rows::<BLOCK_ROWS>(level, a, strips, out, shape);
    }
}

/// The height of the group of rows that starts with `left` rows still to do: `ROWS`, or
/// [`BLOCK_ROWS`] (half the registers' work) where at most that many are left.
fn group_height<const ROWS: usize>(left: usize) -> usize {
    if left <= BLOCK_ROWS { BLOCK_ROWS } else { ROWS }
}

/// [`small_matmul_at`] with register blocks of `ROWS` rows.
fn small_matmul_rows<const ROWS: usize>(
    level: KernelLevel,
    a: &[f32],
    strips: &[f32],
    out: &mut [f32],
    (m, k, n): (usize, usize, usize),
) {
    // The rows of `a` in groups of `group_height` rows, each interleaved (for every inner
    // index, the group's values side by side) so that the kernel's inner loop reads both
    // operands in order. The last group is padded with rows of zeros, which add nothing to
    // the real rows' sums and cost less than running the last rows one by one. A group from
    // row `r` on is `interleaved[r * k..(r + height) * k]`.
    let mut interleaved = vec![0.0_f32; (m + ROWS) * k];
    let mut row = 0;
    while row < m {
        let height = group_height::<ROWS>(m - row);
        let real = height.min(m - row);
        let packed = &mut interleaved[row * k..(row + height) * k];
        for (r, values) in a[row * k..(row + real) * k].chunks_exact(k).enumerate() {
            for (inner, value) in values.iter().enumerate() {
                packed[inner * height + r] = *value;
            }
        }
        row += height;
    }
    let a = interleaved.as_slice();
    let threads = rayon::current_num_threads();
    let count = n.div_ceil(BLOCK_COLUMNS);
    let parts = threads.min(count);
    if parts <= 1 || m == 0 {
        small_block_at::<ROWS>(level, a, strips, out, (m, k, n), 0..count);
        return;
    }
    // Parts of whole strips: with 4 strips on 3 threads, 2 parts of 2 (none is left empty).
    let per_part = count.div_ceil(parts);
    let parts = count.div_ceil(per_part);
    let results: Vec<(usize, Vec<f32>)> = (0..parts)
        .into_par_iter()
        .map(|part| {
            let first = part * per_part;
            let last = (first + per_part).min(count);
            let (from, to) = (first * BLOCK_COLUMNS, (last * BLOCK_COLUMNS).min(n));
            let mut local = Vec::with_capacity(m * (to - from));
            for row in out.chunks_exact(n).take(m) {
                local.extend_from_slice(&row[from..to]);
            }
            small_block_at::<ROWS>(level, a, strips, &mut local, (m, k, n), first..last);
            (from, local)
        })
        .collect();
    for (from, local) in results {
        let width = local.len() / m;
        if width == 0 {
            continue;
        }
        for (row, values) in out.chunks_exact_mut(n).zip(local.chunks_exact(width)) {
            row[from..from + width].copy_from_slice(values);
        }
    }
}

/// A compiled version of [`small_block_body`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum KernelLevel {
    /// Plain multiplies and adds, for the x86-64 baseline (SSE2) or another architecture.
    Baseline,
    /// AVX2 with FMA.
    Avx2Fma,
    /// AVX-512F with FMA: a strip's row of 16 values is one register.
    Avx512Fma,
}

impl KernelLevel {
    /// Whether this CPU runs this version (detected once).
    pub(crate) fn supported(self) -> bool {
        static DETECTED: std::sync::OnceLock<(bool, bool)> = std::sync::OnceLock::new();
        let (avx2, avx512) = *DETECTED.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                let avx2 = std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma");
                (avx2, avx2 && std::arch::is_x86_feature_detected!("avx512f"))
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                (false, false)
            }
        });
        match self {
            KernelLevel::Baseline => true,
            KernelLevel::Avx2Fma => avx2,
            KernelLevel::Avx512Fma => avx512,
        }
    }
}

/// The widest [`KernelLevel`] this CPU runs, chosen once. `NFCS_SEMANTIC_KERNEL=avx2` or
/// `=baseline` caps it (for comparing the versions on one machine).
pub(crate) fn kernel_level() -> KernelLevel {
    static LEVEL: std::sync::OnceLock<KernelLevel> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let widest = [
            KernelLevel::Avx512Fma,
            KernelLevel::Avx2Fma,
            KernelLevel::Baseline,
        ];
        let cap = match std::env::var("NFCS_SEMANTIC_KERNEL").as_deref() {
            Ok("baseline") => 2,
            Ok("avx2") => 1,
            _ => 0,
        };
        widest[cap..]
            .iter()
            .copied()
            .find(|level| level.supported())
            .unwrap_or(KernelLevel::Baseline)
    })
}

/// `out += a · b` over the strips `strips` of `b`, where `out` holds only those strips'
/// columns (`m` rows), in the version `level` of [`small_block_body`] (the baseline version
/// where this CPU does not run `level`). The AVX2 and AVX-512 versions add in the same order with fused multiply-adds,
/// so they give the same bits.
#[allow(unsafe_code)]
fn small_block_at<const ROWS: usize>(
    level: KernelLevel,
    a: &[f32],
    strips: &[f32],
    out: &mut [f32],
    shape: (usize, usize, usize),
    range: std::ops::Range<usize>,
) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn avx2_fma<const ROWS: usize>(
            a: &[f32],
            strips: &[f32],
            out: &mut [f32],
            shape: (usize, usize, usize),
            range: std::ops::Range<usize>,
        ) {
            small_block_body::<true, ROWS, false>(a, strips, out, shape, range);
        }
        #[target_feature(enable = "avx512f,avx2,fma")]
        fn avx512_fma<const ROWS: usize>(
            a: &[f32],
            strips: &[f32],
            out: &mut [f32],
            shape: (usize, usize, usize),
            range: std::ops::Range<usize>,
        ) {
            small_block_body::<true, ROWS, true>(a, strips, out, shape, range);
        }
        if level.supported() {
            match level {
                KernelLevel::Avx512Fma => {
                    // SAFETY: `supported` detected AVX-512F, AVX2 and FMA on this CPU.
                    return unsafe { avx512_fma::<ROWS>(a, strips, out, shape, range) };
                }
                KernelLevel::Avx2Fma => {
                    // SAFETY: `supported` detected AVX2 and FMA on this CPU.
                    return unsafe { avx2_fma::<ROWS>(a, strips, out, shape, range) };
                }
                KernelLevel::Baseline => {}
            }
        }
    }
    let _ = level;
    small_block_body::<false, ROWS, false>(a, strips, out, shape, range);
}

/// `x · y + z`, fused (one rounding) where `FUSED`, which is compiled only with FMA enabled.
#[inline(always)]
fn multiply_add<const FUSED: bool>(x: f32, y: f32, z: f32) -> f32 {
    if FUSED { x.mul_add(y, z) } else { x * y + z }
}

/// The loops of [`small_block_at`]: for each strip (two side by side in the AVX-512
/// version) and each group of `ROWS` rows (then of [`BLOCK_ROWS`], then the rows left), a
/// block of accumulators kept in registers, summed over `k` in order and then added to `out`.
#[inline(always)]
#[allow(unsafe_code)]
fn small_block_body<const FUSED: bool, const ROWS: usize, const AVX512: bool>(
    interleaved: &[f32],
    strips: &[f32],
    out: &mut [f32],
    (m, k, n): (usize, usize, usize),
    range: std::ops::Range<usize>,
) {
    let from = range.start * BLOCK_COLUMNS;
    let width = (range.end * BLOCK_COLUMNS).min(n) - from;
    let strip_at = |index: usize| {
        let strip = &strips[index * k * BLOCK_COLUMNS..(index + 1) * k * BLOCK_COLUMNS];
        let (strip, _) = strip.as_chunks::<BLOCK_COLUMNS>();
        (
            strip,
            index * BLOCK_COLUMNS - from,
            BLOCK_COLUMNS.min(n - index * BLOCK_COLUMNS),
        )
    };
    let mut index = range.start;
    while index < range.end {
        let (strip, first, strip_width) = strip_at(index);
        // The AVX-512 version takes two strips at a time: 2 x ROWS registers of sums, two
        // weight loads and ROWS broadcasts for every 2 x ROWS multiply-adds.
        // A last strip left alone is paired with itself (and the copy's sums dropped), so
        // that it too runs in the intrinsics; MiniLM's widths are all even numbers of strips.
        let pair = AVX512.then(|| {
            strip_at(if index + 1 < range.end {
                index + 1
            } else {
                index
            })
        });
        let step = if AVX512 && index + 1 < range.end {
            2
        } else {
            1
        };
        let mut row = 0;
        while row < m {
            let height = group_height::<ROWS>(m - row);
            let real = height.min(m - row);
            let scales = &interleaved[row * k..(row + height) * k];
            let at = row * width;
            if let Some((second, second_first, second_width)) = pair {
                let mut add_pair = |x: &[[f32; BLOCK_COLUMNS]], y: &[[f32; BLOCK_COLUMNS]]| {
                    add_rows(&x[..real], &mut out[at + first..], width, strip_width);
                    if step == 2 {
                        add_rows(
                            &y[..real],
                            &mut out[at + second_first..],
                            width,
                            second_width,
                        );
                    }
                };
                if height == ROWS {
                    // SAFETY: only the AVX-512 version (`avx512_fma` in `small_block_at`,
                    // run after AVX-512F was detected) passes `AVX512 = true`.
                    let (x, y) = unsafe { pair_block_avx512::<ROWS>(strip, second, scales) };
                    add_pair(&x, &y);
                } else {
                    // SAFETY: as above.
                    let (x, y) = unsafe { pair_block_avx512::<BLOCK_ROWS>(strip, second, scales) };
                    add_pair(&x, &y);
                }
            } else if height == ROWS {
                let block = interleaved_block::<FUSED, ROWS>(strip, scales);
                add_rows(&block[..real], &mut out[at + first..], width, strip_width);
            } else {
                let block = interleaved_block::<FUSED, BLOCK_ROWS>(strip, scales);
                add_rows(&block[..real], &mut out[at + first..], width, strip_width);
            }
            row += height;
        }
        index += step;
    }
}

/// One register block: `R` rows' sums over a strip, from their interleaved values `scales`
/// (for every inner index, the `R` rows' values side by side), each summed in order.
#[inline(always)]
fn interleaved_block<const FUSED: bool, const R: usize>(
    strip: &[[f32; BLOCK_COLUMNS]],
    scales: &[f32],
) -> [[f32; BLOCK_COLUMNS]; R] {
    let mut block = [[0.0_f32; BLOCK_COLUMNS]; R];
    let (scales, _) = scales.as_chunks::<R>();
    for (weights, scales) in strip.iter().zip(scales) {
        for (sums, scale) in block.iter_mut().zip(scales) {
            for (sum, weight) in sums.iter_mut().zip(weights) {
                *sum = multiply_add::<FUSED>(*scale, *weight, *sum);
            }
        }
    }
    block
}

/// Two strips' [`interleaved_block`]s (fused) at once in AVX-512 registers, one per row and
/// strip, written with the intrinsics: left to itself, the compiler unrolls the 16 columns
/// and then vectorises across the rows with gathers and scatters (seven times slower,
/// measured). Each sum is the same chain of fused multiply-adds in `k` order, so the bits
/// equal the AVX2 version's.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(unsafe_code)]
fn pair_block_avx512<const R: usize>(
    first: &[[f32; BLOCK_COLUMNS]],
    second: &[[f32; BLOCK_COLUMNS]],
    scales: &[f32],
) -> ([[f32; BLOCK_COLUMNS]; R], [[f32; BLOCK_COLUMNS]; R]) {
    use std::arch::x86_64::{__m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps};
    use std::arch::x86_64::{_mm512_setzero_ps, _mm512_storeu_ps};
    let mut x: [__m512; R] = [_mm512_setzero_ps(); R];
    let mut y: [__m512; R] = [_mm512_setzero_ps(); R];
    let (scales, _) = scales.as_chunks::<R>();
    for ((a, b), scales) in first.iter().zip(second).zip(scales) {
        // SAFETY: `a` and `b` are 16 initialised f32s each, the width of one unaligned load.
        let (a, b) = unsafe { (_mm512_loadu_ps(a.as_ptr()), _mm512_loadu_ps(b.as_ptr())) };
        for ((x, y), scale) in x.iter_mut().zip(y.iter_mut()).zip(scales) {
            let scale = _mm512_set1_ps(*scale);
            *x = _mm512_fmadd_ps(scale, a, *x);
            *y = _mm512_fmadd_ps(scale, b, *y);
        }
    }
    let mut blocks = ([[0.0_f32; BLOCK_COLUMNS]; R], [[0.0_f32; BLOCK_COLUMNS]; R]);
    for (row, sum) in blocks.0.iter_mut().zip(x).chain(blocks.1.iter_mut().zip(y)) {
        // SAFETY: `row` is 16 f32s, the width of one unaligned store.
        unsafe { _mm512_storeu_ps(row.as_mut_ptr(), sum) };
    }
    blocks
}

/// Stands in for the AVX-512 block off x86-64, where `AVX512` is never set.
#[cfg(not(target_arch = "x86_64"))]
#[allow(unsafe_code)]
// SAFETY: nothing in it is unsafe; it is `unsafe` only so that its callers read as on x86-64.
unsafe fn pair_block_avx512<const R: usize>(
    first: &[[f32; BLOCK_COLUMNS]],
    second: &[[f32; BLOCK_COLUMNS]],
    scales: &[f32],
) -> ([[f32; BLOCK_COLUMNS]; R], [[f32; BLOCK_COLUMNS]; R]) {
    (
        interleaved_block::<true, R>(first, scales),
        interleaved_block::<true, R>(second, scales),
    )
}

/// Adds a block's rows to `out`, whose rows are `width` apart, the first `strip_width`
/// values of each.
#[inline(always)]
fn add_rows(block: &[[f32; BLOCK_COLUMNS]], out: &mut [f32], width: usize, strip_width: usize) {
    for (r, sums) in block.iter().enumerate() {
        let start = r * width;
        for (value, sum) in out[start..start + strip_width].iter_mut().zip(sums) {
            *value += sum;
        }
    }
}

/// One matrix product `out (+)= lhs · rhs` of `m × k` by `k × n`, each operand a slice with
/// its row and column strides (the output's column stride is 1).
struct Product {
    m: usize,
    n: usize,
    k: usize,
    /// Whether `out` is added to (`true`) or overwritten.
    accumulate: bool,
    parallelism: gemm::Parallelism,
}

impl Product {
    /// `gemm::gemm` takes raw pointers and strides, hence one of the crate's two `unsafe` blocks:
    /// calling it directly (instead of through candle's tensors) lets the output hold the bias
    /// and the residual beforehand, be reused between passes, and lets attention read the
    /// heads in place.
    #[allow(unsafe_code)]
    fn run(
        &self,
        (out, out_row): (&mut [f32], usize),
        (lhs, lhs_row, lhs_column): (&[f32], usize, usize),
        (rhs, rhs_row, rhs_column): (&[f32], usize, usize),
    ) {
        let Product { m, n, k, .. } = *self;
        if m == 0 || n == 0 || k == 0 {
            return;
        }
        // The last element each operand's strides reach must lie inside its slice.
        let last = |rows: usize, row: usize, columns: usize, column: usize| {
            (rows - 1) * row + (columns - 1) * column
        };
        assert!(
            last(m, lhs_row, k, lhs_column) < lhs.len(),
            "lhs out of bounds"
        );
        assert!(
            last(k, rhs_row, n, rhs_column) < rhs.len(),
            "rhs out of bounds"
        );
        assert!(last(m, out_row, n, 1) < out.len(), "output out of bounds");
        let stride = |value: usize| isize::try_from(value).unwrap_or(isize::MAX);
        // The assertions above show that every element the strides address lies inside its
        // slice; `out` is a unique borrow, so it aliases neither input; the slices outlive
        // the call, which returns only when every thread it started has finished.
        // SAFETY: in-bounds strides over live slices, and a destination that aliases nothing.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                out.as_mut_ptr(),
                1,
                stride(out_row),
                self.accumulate,
                lhs.as_ptr(),
                stride(lhs_column),
                stride(lhs_row),
                rhs.as_ptr(),
                stride(rhs_column),
                stride(rhs_row),
                1.0,
                1.0,
                false,
                false,
                false,
                self.parallelism,
            );
        }
    }
}

/// Scaled dot-product attention of each text over its own tokens, head by head: `qkv` holds
/// a token's query, key and value side by side (`3 × hidden` a row), `context` receives a
/// token's `hidden` values. Texts run on rayon's pool; each head's two products read the
/// query, key and value columns in place.
fn attention(qkv: &[f32], context: &mut [f32], lengths: &[usize], heads: usize, hidden: usize) {
    let head = hidden / heads;
    let scale = 1.0 / (head as f32).sqrt();
    let row = 3 * hidden;
    // Split the rows by text, so that texts can run on different threads.
    let mut texts: Vec<(&[f32], &mut [f32], usize)> = Vec::with_capacity(lengths.len());
    let (mut qkv_rest, mut context_rest) = (qkv, context);
    for &length in lengths {
        let (qkv_text, qkv_next) = qkv_rest.split_at(length * row);
        let (context_text, context_next) = context_rest.split_at_mut(length * hidden);
        texts.push((qkv_text, context_text, length));
        qkv_rest = qkv_next;
        context_rest = context_next;
    }
    let level = kernel_level();
    let threads = rayon::current_num_threads();
    if texts.len() >= threads {
        texts.into_par_iter().for_each(|(qkv, context, length)| {
            let mut scores = vec![0.0_f32; length * length];
            for h in 0..heads {
                let shape = AttentionShape {
                    length,
                    head,
                    hidden,
                    scale,
                };
                attend_head(
                    level,
                    shape,
                    qkv,
                    h,
                    &mut scores,
                    (&mut context[h * head..], hidden),
                );
            }
        });
        return;
    }
    // Fewer texts than threads (a query on its own): the heads of each text run on the pool,
    // each into a buffer of its own columns, copied into place after.
    let items: Vec<(usize, usize)> = (0..texts.len())
        .flat_map(|text| (0..heads).map(move |h| (text, h)))
        .collect();
    let results: Vec<Vec<f32>> = items
        .par_iter()
        .map(|&(text, h)| {
            let (qkv, _, length) = &texts[text];
            let length = *length;
            let mut scores = vec![0.0_f32; length * length];
            let mut out = vec![0.0_f32; length * head];
            let shape = AttentionShape {
                length,
                head,
                hidden,
                scale,
            };
            attend_head(level, shape, qkv, h, &mut scores, (&mut out, head));
            out
        })
        .collect();
    for (&(text, h), out) in items.iter().zip(&results) {
        let context = &mut texts[text].1;
        for (row, values) in context.chunks_exact_mut(hidden).zip(out.chunks_exact(head)) {
            row[h * head..(h + 1) * head].copy_from_slice(values);
        }
    }
}

/// The sizes of one text's attention.
#[derive(Clone, Copy)]
struct AttentionShape {
    /// Tokens of the text.
    length: usize,
    /// Values of a head.
    head: usize,
    /// Values of a token (all heads).
    hidden: usize,
    /// `1 / √head`.
    scale: f32,
}

/// Head `h` of one text's attention: `out` (`length` rows, `out_row` apart, the head's
/// `head` values each) = softmax(Q·Kᵀ·scale)·V, with Q, K and V read in place from the
/// text's rows of `qkv`; `scores` is `length × length` scratch.
fn attend_head(
    level: KernelLevel,
    AttentionShape {
        length,
        head,
        hidden,
        scale,
    }: AttentionShape,
    qkv: &[f32],
    h: usize,
    scores: &mut [f32],
    (out, out_row): (&mut [f32], usize),
) {
    let row = 3 * hidden;
    let column = h * head;
    // scores = Q · Kᵀ: the keys' row stride is the column stride of Kᵀ.
    Product {
        m: length,
        n: length,
        k: head,
        accumulate: false,
        parallelism: gemm::Parallelism::None,
    }
    .run(
        (scores, length),
        (&qkv[column..], row, 1),
        (&qkv[hidden + column..], 1, row),
    );
    softmax_rows(level, scores, length, scale);
    // out = softmax(scores) · V.
    Product {
        m: length,
        n: head,
        k: length,
        accumulate: false,
        parallelism: gemm::Parallelism::None,
    }
    .run(
        (out, out_row),
        (scores, length, 1),
        (&qkv[2 * hidden + column..], row, 1),
    );
}

/// Defines `fn $name(level: KernelLevel, $args)`, which runs `$body($args)` compiled for
/// `level` (AVX-512F, or AVX2 and FMA, so that its loops use the widest registers; the
/// baseline where this CPU does not run `level`). The bodies use no `mul_add`, and Rust fuses
/// no multiply and add by itself, so every version computes the same bits.
macro_rules! at_level {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $type:ty),*) $(-> $ret:ty)? => $body:ident) => {
        $(#[$doc])*
        #[allow(unsafe_code)]
        fn $name(level: $crate::bert::KernelLevel, $($arg: $type),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                fn avx512($($arg: $type),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $type),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if level.supported() {
                    match level {
                        $crate::bert::KernelLevel::Avx512Fma => {
                            // SAFETY: `supported` detected AVX-512F, AVX2 and FMA on this CPU.
                            return unsafe { avx512($($arg),*) };
                        }
                        $crate::bert::KernelLevel::Avx2Fma => {
                            // SAFETY: `supported` detected AVX2 and FMA on this CPU.
                            return unsafe { avx2($($arg),*) };
                        }
                        $crate::bert::KernelLevel::Baseline => {}
                    }
                }
            }
            let _ = level;
            $body($($arg),*)
        }
    };
}
pub(crate) use at_level;

/// Lanes of the partial sums of [`lane_sum`]: one AVX-512 register, two of AVX2.
const LANES: usize = 16;

/// The sum of `f(x)` over `values`, in [`LANES`] partial sums (element `i` into sum `i mod
/// LANES`, the tail added last): a fixed order, which the compiler can keep in registers
/// (a plain `sum()` must add one value after the other, which does not vectorise).
#[inline(always)]
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0_f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&x| f(x)).sum();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += f(x);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The largest of `values` as `f32::max` folds them (`-inf` for none; a NaN is passed over),
/// in [`LANES`] lanes.
#[inline(always)]
fn lane_max(values: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |top, &x| top.max(x));
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane = lane.max(x);
        }
    }
    lanes.iter().fold(tail, |top, &x| top.max(x))
}

/// The softmax of each row of `length` scores times `scale`, in place.
#[inline(always)]
fn softmax_body(scores: &mut [f32], length: usize, scale: f32) {
    for weights in scores.chunks_exact_mut(length) {
        let top = lane_max(weights);
        for weight in weights.iter_mut() {
            *weight = exp((*weight - top) * scale);
        }
        let inverse = 1.0 / lane_sum(weights, |x| x);
        weights.iter_mut().for_each(|weight| *weight *= inverse);
    }
}

at_level! {
    /// [`softmax_body`] in the version `level`.
    fn softmax_rows(scores: &mut [f32], length: usize, scale: f32) => softmax_body
}

/// Layer normalisation of each row of `width` values of `block`, in place.
#[inline(always)]
fn layer_norm_body(block: &mut [f32], norm: &Norm, eps: f32, width: usize) {
    for row in block.chunks_exact_mut(width) {
        let mean = lane_sum(row, |x| x) / width as f32;
        let variance = lane_sum(row, |x| (x - mean) * (x - mean)) / width as f32;
        let inverse = 1.0 / (variance + eps).sqrt();
        for ((x, weight), bias) in row.iter_mut().zip(&norm.weight).zip(&norm.bias) {
            *x = (*x - mean) * inverse * weight + bias;
        }
    }
}

at_level! {
    /// [`layer_norm_body`] in the version `level`.
    fn layer_norm_at(block: &mut [f32], norm: &Norm, eps: f32, width: usize) => layer_norm_body
}

/// Layer normalisation of each row of `width` values, in place, on rayon's pool.
fn layer_norm(rows: &mut [f32], norm: &Norm, eps: f32, width: usize) {
    let level = kernel_level();
    rows.par_chunks_mut(width * 64)
        .for_each(|block| layer_norm_at(level, block, norm, eps, width));
}

/// GELU with the exact (erf) form, `x/2 · (1 + erf(x/√2))`, in place.
#[inline(always)]
fn gelu_body(values: &mut [f32]) {
    for x in values {
        *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

at_level! {
    /// [`gelu_body`] in the version `level`.
    fn gelu_at(values: &mut [f32]) => gelu_body
}

/// [`gelu_body`] on rayon's pool.
fn gelu_erf(values: &mut [f32]) {
    let level = kernel_level();
    values
        .par_chunks_mut(8192)
        .for_each(|chunk| gelu_at(level, chunk));
}

/// The error function to about 1.2e-7: `sign(x) · (1 − t·exp(−x² + P(t)))` with
/// `t = 1/(1 + |x|/2)` and `P` of degree 9 (the Chebyshev fit of `erfc` in Numerical Recipes,
/// fractional error below 1.2e-7 everywhere), branch-free so that the loop above vectorises.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204
                                + t * (1.488_515_9 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * exp(poly);
    (1.0 - erfc).copysign(x)
}

/// `e^x` for `x` from -87 to 87, relative error about 1e-7, without libm (whose scalar call
/// would keep the loop from vectorising): `e^x = 2^n · e^f` with `n = round(x / ln 2)` (by the
/// 1.5·2^23 trick: no `round` instruction before SSE4.1), `f = x - n ln 2` in two parts
/// (Cody and Waite, Cephes' constants) so that it stays exact, `e^f` for `|f| <= ln 2 / 2` by
/// its Taylor series to the 7th power, and `2^n` built in the exponent bits.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0;
    const LN_2_HIGH: f32 = 0.693_359_4;
    const LN_2_LOW: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 87.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let f = x - n * LN_2_HIGH - n * LN_2_LOW;
    let power = 1.0
        + f * (1.0
            + f * (0.5
                + f * (1.0 / 6.0
                    + f * (1.0 / 24.0
                        + f * (1.0 / 120.0 + f * (1.0 / 720.0 + f * (1.0 / 5040.0)))))));
    // `n` sits in the low mantissa bits of `shifted`: integer arithmetic on the bits gets it
    // without a float-to-integer cast (which Rust saturates element by element).
    let exponent = shifted
        .to_bits()
        .wrapping_sub(ROUND.to_bits())
        .wrapping_add(127);
    let scale = f32::from_bits(exponent << 23);
    power * scale
}

#[cfg(test)]
mod tests {
    use super::{
        KernelLevel, Linear, Norm, erf, gelu_at, layer_norm_at, small_matmul, small_matmul_at,
        softmax_rows,
    };

    const LEVELS: [KernelLevel; 3] = [
        KernelLevel::Baseline,
        KernelLevel::Avx2Fma,
        KernelLevel::Avx512Fma,
    ];

    #[test]
    fn small_products_equal_the_naive_product_on_any_thread_count() {
        // Rows below, at and above a block of 4, columns that are not a multiple of a strip.
        // Every value is a small multiple of 1/32, so every sum is exact in f32 whatever the
        // order of the additions, and the results must be equal, not close.
        for (m, k, n) in [
            (1, 3, 5),
            (4, 16, 16),
            (7, 33, 50),
            (12, 40, 33),
            (13, 20, 37),
            (22, 17, 16),
            (48, 24, 40),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0)
                .collect();
            let bias: Vec<f32> = (0..m * n).map(|i| (i % 64) as f32 / 16.0).collect();
            let mut expected = bias.clone();
            for i in 0..m {
                for j in 0..n {
                    for inner in 0..k {
                        expected[i * n + j] += a[i * k + inner] * b[inner * n + j];
                    }
                }
            }
            let weights = Linear::new(b, k, n);
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("a rayon pool");
                for level in LEVELS {
                    let mut out = bias.clone();
                    pool.install(|| {
                        small_matmul_at(level, &a, &weights.strips, &mut out, (m, k, n));
                    });
                    assert_eq!(
                        out, expected,
                        "{m} x {k} x {n} on {threads} threads, {level:?}"
                    );
                }
                let mut out = bias.clone();
                pool.install(|| small_matmul(&a, &weights.strips, &mut out, m, k, n));
                assert_eq!(out, expected, "{m} x {k} x {n} on {threads} threads");
            }
        }
    }

    #[test]
    fn softmax_layer_norm_and_gelu_give_the_same_bits_in_every_version_and_the_reference_values() {
        let value = |i: usize| {
            let x = (i.wrapping_mul(2_654_435_761) % 10_007) as f32;
            (x / 10_007.0 - 0.5) * 9.0
        };
        // Rows of 67 (four lanes of 16 and a tail of 3) and of 384.
        let (length, width) = (67, 384);
        let scores: Vec<f32> = (0..length * length).map(value).collect();
        let rows: Vec<f32> = (0..3 * width).map(|i| value(i + 5)).collect();
        let norm = Norm {
            weight: (0..width).map(|i| 1.0 + value(i) / 20.0).collect(),
            bias: (0..width).map(|i| value(i + 1) / 10.0).collect(),
        };
        let run = |level| {
            let mut softmax = scores.clone();
            softmax_rows(level, &mut softmax, length, 0.125);
            let mut normed = rows.clone();
            layer_norm_at(level, &mut normed, &norm, 1e-12, width);
            let mut gelu = rows.clone();
            gelu_at(level, &mut gelu);
            [softmax, normed, gelu]
        };
        let bits = |values: &[Vec<f32>; 3]| -> Vec<u32> {
            values.iter().flatten().map(|x| x.to_bits()).collect()
        };
        let baseline = run(KernelLevel::Baseline);
        for level in LEVELS.into_iter().filter(|level| level.supported()) {
            assert_eq!(bits(&run(level)), bits(&baseline), "{level:?}");
        }
        // Against the definitions in f64.
        let [softmax, normed, gelu] = baseline;
        for (row, got) in scores
            .chunks_exact(length)
            .zip(softmax.chunks_exact(length))
        {
            let top = row
                .iter()
                .fold(f64::NEG_INFINITY, |t, &x| t.max(f64::from(x)));
            let sum: f64 = row
                .iter()
                .map(|&x| ((f64::from(x) - top) * 0.125).exp())
                .sum();
            for (&x, &y) in row.iter().zip(got) {
                let exact = ((f64::from(x) - top) * 0.125).exp() / sum;
                assert!(
                    (f64::from(y) - exact).abs() < 1e-6 * exact.max(1e-3),
                    "softmax {y} against {exact}"
                );
            }
        }
        for (row, got) in rows.chunks_exact(width).zip(normed.chunks_exact(width)) {
            let mean = row.iter().map(|&x| f64::from(x)).sum::<f64>() / width as f64;
            let variance = row
                .iter()
                .map(|&x| (f64::from(x) - mean).powi(2))
                .sum::<f64>()
                / width as f64;
            for (i, (&x, &y)) in row.iter().zip(got).enumerate() {
                let exact = (f64::from(x) - mean) / (variance + 1e-12).sqrt()
                    * f64::from(norm.weight[i])
                    + f64::from(norm.bias[i]);
                assert!(
                    (f64::from(y) - exact).abs() < 1e-5,
                    "layer norm {y} against {exact}"
                );
            }
        }
        for (&x, &y) in rows.iter().zip(&gelu) {
            // The formula around `erf`; `erf` itself is checked against reference values in
            // `erf_matches_the_reference_values`.
            let exact =
                0.5 * f64::from(x) * (1.0 + f64::from(erf(x * std::f32::consts::FRAC_1_SQRT_2)));
            assert!(
                (f64::from(y) - exact).abs() < 1e-6 * exact.abs().max(1.0),
                "gelu {y} against {exact}"
            );
        }
    }

    #[test]
    fn the_avx2_and_avx512_kernels_give_the_same_bits() {
        // Values with full mantissas, so that a different order of additions or a multiply
        // and add rounded apart would show. The two fused versions must agree to the bit.
        let (m, k, n) = (13, 384, 70);
        let value = |i: usize, salt: usize| {
            let x = (i.wrapping_mul(2_654_435_761).wrapping_add(salt) % 10_007) as f32;
            (x / 10_007.0 - 0.5) * 1.37
        };
        let a: Vec<f32> = (0..m * k).map(|i| value(i, 17)).collect();
        let b: Vec<f32> = (0..k * n).map(|i| value(i, 91)).collect();
        let weights = Linear::new(b, k, n);
        let run = |level| {
            let mut out = vec![0.25_f32; m * n];
            small_matmul_at(level, &a, &weights.strips, &mut out, (m, k, n));
            out
        };
        let supported: Vec<KernelLevel> = [KernelLevel::Avx2Fma, KernelLevel::Avx512Fma]
            .into_iter()
            .filter(|level| level.supported())
            .collect();
        if supported.len() < 2 {
            eprintln!("skipped: this CPU lacks AVX2+FMA or AVX-512F (found {supported:?})");
            return;
        }
        let (avx2, avx512) = (run(KernelLevel::Avx2Fma), run(KernelLevel::Avx512Fma));
        assert!(
            avx2.iter()
                .zip(&avx512)
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "AVX2 and AVX-512 differ"
        );
        // And they are the product: within f32 rounding of the sums in f64.
        for i in 0..m {
            for j in 0..n {
                let exact: f64 = 0.25
                    + (0..k)
                        .map(|inner| {
                            f64::from(a[i * k + inner])
                                * f64::from(weights.row_major[inner * n + j])
                        })
                        .sum::<f64>();
                let got = f64::from(avx512[i * n + j]);
                assert!(
                    (got - exact).abs() < 1e-4,
                    "({i}, {j}): {got} against {exact}"
                );
            }
        }
    }

    #[test]
    fn erf_matches_the_reference_values() {
        // erf at 0, 0.1, 0.5, 1, 2, 3 (Abramowitz and Stegun, table 7.1), odd symmetry.
        for (x, expected) in [
            (0.0_f32, 0.0_f32),
            (0.1, 0.112_462_92),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (2.0, 0.995_322_3),
            (3.0, 0.999_977_9),
        ] {
            assert!((erf(x) - expected).abs() < 3e-7, "erf({x}) = {}", erf(x));
            assert!((erf(-x) + expected).abs() < 3e-7, "erf(-{x})");
        }
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(erf(-10.0), -1.0);
    }

    #[test]
    fn exp_matches_std_to_3e_7_relative() {
        let mut x = -87.0_f32;
        while x < 87.0 {
            let (ours, exact) = (super::exp(x), x.exp());
            assert!(
                ((ours - exact) / exact).abs() < 3e-7,
                "exp({x}) = {ours}, not {exact}"
            );
            x += 0.137;
        }
    }
}
