//! The TUF client workflow (in progress).
