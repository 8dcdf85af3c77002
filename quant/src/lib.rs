//! GGML element types and kernels.
