//! The BERT encoder of all-MiniLM-L6-v2, run on packed tokens.
//!
//! A batch of texts of different lengths is usually padded to its longest text, and every
//! layer then computes the padding too. Here the linear layers, the layer norms and the GELU
//! (nearly all of the work) run on the real tokens only, packed one after another; only the
//! attention, which must see each text's tokens together, runs on the padded layout, reached
//! by a gather and left by the inverse gather. The GELU uses an `erf` the compiler vectorises
//! instead of libm's scalar one.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
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

    fn norm(&mut self, name: &str, hidden: usize) -> candle_core::Result<Norm> {
        Ok(Norm {
            weight: self.take(&format!("{name}.weight"), &[Some(hidden)])?,
            bias: self.take(&format!("{name}.bias"), &[Some(hidden)])?,
        })
    }
}

struct Norm {
    weight: Tensor,
    bias: Tensor,
}

impl Norm {
    fn forward(&self, xs: &Tensor, eps: f32) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(xs, &self.weight, &self.bias, eps)
    }
}

struct Layer {
    /// Query, key and value projections side by side: `hidden × 3·hidden`.
    qkv: Tensor,
    qkv_bias: Tensor,
    output: Tensor,
    output_bias: Tensor,
    attention_norm: Norm,
    intermediate: Tensor,
    intermediate_bias: Tensor,
    feed_forward: Tensor,
    feed_forward_bias: Tensor,
    output_norm: Norm,
}

/// The encoder: token ids in, one hidden state per token out.
pub(crate) struct Bert {
    words: Tensor,
    positions: Tensor,
    /// Every token is of type 0.
    token_type: Tensor,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    hidden: usize,
    max_positions: usize,
    eps: f32,
    device: Device,
}

impl Bert {
    /// The encoder from the tensors of `model.safetensors` and the configuration.
    pub(crate) fn load(
        tensors: HashMap<String, Tensor>,
        config: &BertConfig,
        device: &Device,
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
                weights.linear(&format!("{prefix}.attention.output.dense"), hidden, hidden)?;
            let (intermediate, intermediate_bias) = weights.linear(
                &format!("{prefix}.intermediate.dense"),
                hidden,
                config.intermediate_size,
            )?;
            let (feed_forward, feed_forward_bias) = weights.linear(
                &format!("{prefix}.output.dense"),
                config.intermediate_size,
                hidden,
            )?;
            layers.push(Layer {
                qkv: Tensor::cat(&[&query, &key, &value], 1)?,
                qkv_bias: Tensor::cat(&[&query_bias, &key_bias, &value_bias], 0)?,
                output,
                output_bias,
                attention_norm: weights
                    .norm(&format!("{prefix}.attention.output.LayerNorm"), hidden)?,
                intermediate,
                intermediate_bias,
                feed_forward,
                feed_forward_bias,
                output_norm: weights.norm(&format!("{prefix}.output.LayerNorm"), hidden)?,
            });
        }
        let words = weights.take("embeddings.word_embeddings.weight", &[None, Some(hidden)])?;
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
            words,
            positions,
            token_type,
            embedding_norm,
            layers,
            heads,
            hidden,
            max_positions: config.max_position_embeddings,
            eps: config.layer_norm_eps as f32,
            device: device.clone(),
        })
    }

    /// The hidden states of every token of every text, packed: text after text, `[CLS]` to
    /// `[SEP]`, one row each (`Σ lengths × hidden`).
    pub(crate) fn forward(&self, texts: &[&[u32]]) -> candle_core::Result<Tensor> {
        let batch = texts.len();
        let longest = texts.iter().map(|ids| ids.len()).max().unwrap_or(0);
        if longest > self.max_positions {
            return Err(invalid(format!(
                "{longest} tokens is more than the model's {} positions",
                self.max_positions
            )));
        }
        let total: usize = texts.iter().map(|ids| ids.len()).sum();
        // Packed ids and positions; the gathers between packed rows and the padded layout
        // (row `total` of the packed side is a row of zeros standing in for padding).
        let mut ids = Vec::with_capacity(total);
        let mut positions = Vec::with_capacity(total);
        let mut to_padded = vec![total as u32; batch * longest];
        let mut to_packed = Vec::with_capacity(total);
        let mut mask = vec![0.0_f32; batch * longest];
        for (text, tokens) in texts.iter().enumerate() {
            for (position, &id) in tokens.iter().enumerate() {
                to_padded[text * longest + position] = ids.len() as u32;
                to_packed.push((text * longest + position) as u32);
                ids.push(id);
                positions.push(position as u32);
            }
            for position in tokens.len()..longest {
                mask[text * longest + position] = f32::NEG_INFINITY;
            }
        }
        let device = &self.device;
        let ids = Tensor::from_vec(ids, total, device)?;
        let positions = Tensor::from_vec(positions, total, device)?;
        let to_padded = Tensor::from_vec(to_padded, batch * longest, device)?;
        let to_packed = Tensor::from_vec(to_packed, total, device)?;
        let mask = Tensor::from_vec(mask, (batch, 1, 1, longest), device)?;

        let embedded = self
            .words
            .embedding(&ids)?
            .add(&self.positions.embedding(&positions)?)?
            .broadcast_add(&self.token_type)?;
        let mut states = self.embedding_norm.forward(&embedded, self.eps)?;
        let head = self.hidden / self.heads;
        let scale = 1.0 / (head as f64).sqrt();
        for layer in &self.layers {
            // Attention: projections on the packed rows, scores on the padded layout.
            let qkv = states.matmul(&layer.qkv)?.broadcast_add(&layer.qkv_bias)?;
            let padding = Tensor::zeros((1, 3 * self.hidden), DType::F32, device)?;
            let padded = Tensor::cat(&[&qkv, &padding], 0)?
                .index_select(&to_padded, 0)?
                .reshape((batch, longest, 3, self.heads, head))?;
            let part = |index: usize| -> candle_core::Result<Tensor> {
                padded
                    .narrow(2, index, 1)?
                    .squeeze(2)?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let (query, key, value) = (part(0)?, part(1)?, part(2)?);
            let scores = (query.matmul(&key.t()?)? * scale)?.broadcast_add(&mask)?;
            let weights = candle_nn::ops::softmax_last_dim(&scores)?;
            let context = weights
                .matmul(&value)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((batch * longest, self.hidden))?
                .index_select(&to_packed, 0)?;
            let attended = context
                .matmul(&layer.output)?
                .broadcast_add(&layer.output_bias)?;
            states = layer
                .attention_norm
                .forward(&(attended + &states)?, self.eps)?;
            // Feed-forward, all on the packed rows.
            let inner = states
                .matmul(&layer.intermediate)?
                .broadcast_add(&layer.intermediate_bias)?;
            let inner = gelu_erf(&inner)?;
            let outer = inner
                .matmul(&layer.feed_forward)?
                .broadcast_add(&layer.feed_forward_bias)?;
            states = layer.output_norm.forward(&(outer + &states)?, self.eps)?;
        }
        Ok(states)
    }
}

/// GELU with the exact (erf) form, `x/2 · (1 + erf(x/√2))`, on plain `f32`s with [`erf`].
fn gelu_erf(xs: &Tensor) -> candle_core::Result<Tensor> {
    let shape = xs.shape().clone();
    let mut values = xs.flatten_all()?.to_vec1::<f32>()?;
    // On every thread of rayon's pool, like candle's own element-wise operations.
    values.par_chunks_mut(8192).for_each(|chunk| {
        for x in chunk {
            *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
        }
    });
    Tensor::from_vec(values, shape, xs.device())
}

/// The error function to about 1.2e-7: `sign(x) · (1 − t·exp(−x² + P(t)))` with
/// `t = 1/(1 + |x|/2)` and `P` of degree 9 (the Chebyshev fit of `erfc` in Numerical Recipes,
/// fractional error below 1.2e-7 everywhere), branch-free so that the loop above vectorises.
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
    use super::erf;

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
