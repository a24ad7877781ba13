//! Logging shim: the same macro calls go to `defmt` (RTT) when the `defmt` feature is on, and
//! compile to nothing otherwise, so release images carry no format strings. The host-side
//! crates log through `log`/`tracing`; nothing in the RCP core logs.
#![allow(unused_macros)]

macro_rules! debug {
    ($($x:tt)*) => {{
        #[cfg(feature = "defmt")]
        ::defmt::debug!($($x)*);
    }};
}

macro_rules! info {
    ($($x:tt)*) => {{
        #[cfg(feature = "defmt")]
        ::defmt::info!($($x)*);
    }};
}

macro_rules! warn {
    ($($x:tt)*) => {{
        #[cfg(feature = "defmt")]
        ::defmt::warn!($($x)*);
    }};
}

macro_rules! error {
    ($($x:tt)*) => {{
        #[cfg(feature = "defmt")]
        ::defmt::error!($($x)*);
    }};
}
