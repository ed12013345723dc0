//! Checkpoint round trips and bad-input errors that name the file/tensor.
