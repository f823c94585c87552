//! Signals in direct style (work in progress).
