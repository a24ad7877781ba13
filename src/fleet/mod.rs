//! Devices, owners, groups and leases; learned duty cycles and the mesh topology.

pub mod commission;
pub mod device;
pub mod duty_cycle;
pub mod owners;
pub mod rights;
pub mod topology;

pub use device::{Device, Eui64, Known, Lifecycle, LinkQuality, Parent, Position, Source};
pub use duty_cycle::{DutyCycle, DutyCycleError};
pub use owners::{load_owner_dir, EffectiveSettings, OwnerFile, OwnerSettings, RejectReason, Rejection};
pub use topology::{InMemoryTopology, Topology};
