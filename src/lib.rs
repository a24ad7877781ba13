//! ferry: a border-router daemon that ferries verified software updates to the constrained
//! devices behind a home router. See `DESIGN.md` in the shared folder for the map of rooms.
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod metrics;
pub mod sim;
pub mod store;
