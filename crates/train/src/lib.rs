//! finetune-train (work in progress).
