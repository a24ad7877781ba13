/// Declares a C-like enum over a numeric code space with an `Unknown(n)` catch-all, plus
/// lossless `From` conversions both ways (the smoltcp `enum_with_unknown!` habit).
///
/// `Unknown(n)` is only produced for codes that have no named variant, so
/// `Enum::from(u) -> raw` always returns the original number.
macro_rules! enum_with_unknown {
    (
        $(#[$enum_attr:meta])*
        pub enum $name:ident($ty:ty) {
            $( $(#[$variant_attr:meta])* $variant:ident = $value:literal ),+ $(,)?
        }
    ) => {
        #[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Clone, Copy)]
        $(#[$enum_attr])*
        pub enum $name {
            $( $(#[$variant_attr])* $variant, )+
            /// A code point this crate has no name for; kept as-is so it round-trips.
            Unknown($ty),
        }

        impl ::core::convert::From<$ty> for $name {
            fn from(value: $ty) -> Self {
                match value {
                    $( $value => $name::$variant, )+
                    other => $name::Unknown(other),
                }
            }
        }

        impl ::core::convert::From<$name> for $ty {
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => $value, )+
                    $name::Unknown(other) => other,
                }
            }
        }

        impl $name {
            /// Every named variant, in declaration order (for tests and tables).
            #[allow(dead_code)]
            pub const KNOWN: &'static [$name] = &[ $( $name::$variant, )+ ];
        }
    };
}
