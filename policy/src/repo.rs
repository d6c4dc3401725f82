//! Repository builder (in progress).
