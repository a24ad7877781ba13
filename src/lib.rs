//! ferry: a border-router daemon that ferries verified software updates to the constrained
//! devices behind a home router. See `DESIGN.md` in the shared folder for the map of rooms.

pub mod border;
pub mod cli;
pub mod coap;
pub mod config;
pub mod control;
pub mod daemon;
pub mod deliver;
pub mod fleet;
pub mod metrics;
pub mod net;
pub mod radio;
pub mod repo;
pub mod schedule;
pub mod seeded;
pub mod sim;
pub mod store;
pub mod suit;
