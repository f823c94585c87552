//! Files in direct style, mirroring `std::fs` (work in progress).
