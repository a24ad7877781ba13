//! Devices, owners, groups and leases.

pub mod owners;

pub use owners::{load_owner_dir, EffectiveSettings, OwnerFile, OwnerSettings, RejectReason, Rejection};
