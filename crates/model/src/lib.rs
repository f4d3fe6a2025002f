//! finetune-model (work in progress).
