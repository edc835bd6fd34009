//! Being written by the SSH helper; replace wholesale.
