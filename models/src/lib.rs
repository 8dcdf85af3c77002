//! Model files and architectures.
