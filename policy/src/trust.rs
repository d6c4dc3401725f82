//! Trust documents (in progress).
