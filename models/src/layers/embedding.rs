//! The token embedding: `x[t] = token_embd[tokens[t]]`, each row dequantized
//! from the file (`token_embd` is [V, C]). Both passes read it here. It has
//! no backward: the embedding is never an adapter target, so training's
//! gradient stops at the first block's input.

use crate::error::Result;
use crate::formats::files::{ModelFiles, TensorRef};

/// Writes the embedding row of each token into consecutive C-wide rows of
/// `x` (at least T * C long). Token ids are checked against V by the caller.
pub fn embed<'a>(
    files: &ModelFiles,
    token_embd: &TensorRef,
    n_embd: usize,
    tokens: impl IntoIterator<Item = &'a u32>,
    x: &mut [f32],
) -> Result<()> {
    let row_bytes = token_embd.ty.row_bytes(n_embd).expect("checked at load");
    let data = files.bytes(token_embd);
    for (t, &tok) in tokens.into_iter().enumerate() {
        let off = tok as usize * row_bytes;
        srl_quant::dequantize_row(
            token_embd.ty,
            &data[off..off + row_bytes],
            &mut x[t * n_embd..(t + 1) * n_embd],
        )?;
    }
    Ok(())
}
