//! The layers a transformer block is built from. Each file holds a layer's
//! inference forward, its training forward and its backward side by side,
//! with shapes in the doc comments (letters of the crate docs).

pub mod attention;
pub mod embedding;
pub mod exp;
pub mod head;
pub mod linear;
pub mod mlp;
pub mod norm;
pub mod rope;
pub mod softmax;
