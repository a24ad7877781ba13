//! Devices, owners, groups and leases.
