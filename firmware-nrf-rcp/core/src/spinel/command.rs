//! Spinel command ids, `shared/reference/spinel.md` §3 (spinel.h `SPINEL_CMD_*`).

enum_with_unknown! {
    /// A Spinel command (packed uint after the header).
    pub enum Command(u32) {
        /// No operation; the RCP answers `LAST_STATUS OK`.
        Noop = 0,
        /// Reset; optional `C` payload, see [`ResetType`].
        Reset = 1,
        PropValueGet = 2,
        PropValueSet = 3,
        PropValueInsert = 4,
        PropValueRemove = 5,
        /// Response / notification carrying a property value.
        PropValueIs = 6,
        PropValueInserted = 7,
        PropValueRemoved = 8,
        Peek = 18,
        PeekRet = 19,
        Poke = 20,
        PropValueMultiGet = 21,
        PropValueMultiSet = 22,
        PropValuesAre = 23,
    }
}

impl Command {
    /// Commands whose payload is `PROP_ID (packed) | value` (GET … REMOVED).
    pub fn has_property(self) -> bool {
        matches!(u32::from(self), 2..=8)
    }
}

enum_with_unknown! {
    /// The optional `C` payload of `CMD_RESET` (`SPINEL_RESET_*`).
    pub enum ResetType(u8) {
        Platform = 1,
        /// The default when the payload is absent.
        Stack = 2,
        Bootloader = 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for n in 0..64u32 {
            assert_eq!(u32::from(Command::from(n)), n);
        }
        assert_eq!(Command::from(99), Command::Unknown(99));
        assert!(Command::PropValueGet.has_property());
        assert!(Command::PropValueRemoved.has_property());
        assert!(!Command::Reset.has_property());
        assert!(!Command::PropValueMultiGet.has_property());
        for n in 0..=255u8 {
            assert_eq!(u8::from(ResetType::from(n)), n);
        }
    }
}
