//! Child processes in direct style, mirroring `std::process` (work in progress).
