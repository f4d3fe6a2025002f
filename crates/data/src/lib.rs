//! finetune-data (work in progress).
