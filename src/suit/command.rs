//! SUIT command and parameter code points (draft-ietf-suit-manifest-37 §8.4.8 parameters,
//! §8.4.9 conditions, §8.4.10 directives, IANA "SUIT Commands"/"SUIT Parameters"; draft-09
//! §8.4.7-§8.4.10 for RIOT). The two encodings agree on most numbers but not all:
//!
//! | command              | draft-37 | draft-09 |
//! |----------------------|----------|----------|
//! | set-parameters       | –        | 19       |
//! | directive-swap       | 31       | 32       |
//! | run-sequence         | 32       | 30       |
//!
//! Every code point round-trips: what we do not name is kept as `Unknown(n)`.

use super::Format;

/// A condition or directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    ConditionVendorIdentifier,
    ConditionClassIdentifier,
    ConditionImageMatch,
    /// draft-37 component-slot, draft-09 component-offset.
    ConditionComponentSlot,
    ConditionAbort,
    SetComponentIndex,
    TryEach,
    /// draft-09 only: sets parameters that are not set yet.
    SetParameters,
    OverrideParameters,
    Fetch,
    Copy,
    /// draft-37 invoke, draft-09 run.
    Invoke,
    Swap,
    RunSequence,
    Unknown(i64),
}

/// (command, draft-37 code, draft-09 code); `None` where the encoding lacks it.
const COMMANDS: &[(Command, Option<i64>, Option<i64>)] = &[
    (Command::ConditionVendorIdentifier, Some(1), Some(1)),
    (Command::ConditionClassIdentifier, Some(2), Some(2)),
    (Command::ConditionImageMatch, Some(3), Some(3)),
    (Command::ConditionComponentSlot, Some(5), Some(5)),
    (Command::ConditionAbort, Some(14), Some(14)),
    (Command::SetComponentIndex, Some(12), Some(12)),
    (Command::TryEach, Some(15), Some(15)),
    (Command::SetParameters, None, Some(19)),
    (Command::OverrideParameters, Some(20), Some(20)),
    (Command::Fetch, Some(21), Some(21)),
    (Command::Copy, Some(22), Some(22)),
    (Command::Invoke, Some(23), Some(23)),
    (Command::Swap, Some(31), Some(32)),
    (Command::RunSequence, Some(32), Some(30)),
];

fn column(format: Format, row: &(Command, Option<i64>, Option<i64>)) -> Option<i64> {
    match format {
        Format::Ietf => row.1,
        Format::Riot => row.2,
    }
}

impl Command {
    pub fn from_code(format: Format, code: i64) -> Self {
        COMMANDS.iter().find(|row| column(format, row) == Some(code)).map_or(Command::Unknown(code), |row| row.0)
    }

    /// The code in `format`; `None` if the encoding has no such command.
    pub fn code(self, format: Format) -> Option<i64> {
        match self {
            Command::Unknown(n) => Some(n),
            cmd => COMMANDS.iter().find(|row| row.0 == cmd).and_then(|row| column(format, row)),
        }
    }
}

/// A SUIT parameter; both encodings use the same numbers for these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Parameter {
    VendorIdentifier,
    ClassIdentifier,
    ImageDigest,
    /// draft-37 component-slot, draft-09 component-offset.
    ComponentSlot,
    ImageSize,
    Uri,
    SourceComponent,
    Unknown(i64),
}

const PARAMETERS: &[(Parameter, i64)] = &[
    (Parameter::VendorIdentifier, 1),
    (Parameter::ClassIdentifier, 2),
    (Parameter::ImageDigest, 3),
    (Parameter::ComponentSlot, 5),
    (Parameter::ImageSize, 14),
    (Parameter::Uri, 21),
    (Parameter::SourceComponent, 22),
];

impl Parameter {
    pub fn from_code(code: i64) -> Self {
        PARAMETERS.iter().find(|(_, c)| *c == code).map_or(Parameter::Unknown(code), |(p, _)| *p)
    }

    pub fn code(self) -> i64 {
        match self {
            Parameter::Unknown(n) => n,
            p => PARAMETERS.iter().find(|(q, _)| *q == p).map_or(0, |(_, c)| *c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_in_both_encodings() {
        for f in [Format::Ietf, Format::Riot] {
            for n in -40..=40 {
                let c = Command::from_code(f, n);
                assert_eq!(c.code(f), Some(n), "{f:?} {n} -> {c:?}");
                assert_eq!(Parameter::from_code(n).code(), n);
            }
        }
    }

    #[test]
    fn the_encodings_differ_where_the_drafts_do() {
        assert_eq!(Command::from_code(Format::Ietf, 32), Command::RunSequence);
        assert_eq!(Command::from_code(Format::Riot, 32), Command::Swap);
        assert_eq!(Command::from_code(Format::Riot, 30), Command::RunSequence);
        assert_eq!(Command::from_code(Format::Ietf, 19), Command::Unknown(19));
        assert_eq!(Command::SetParameters.code(Format::Ietf), None);
    }
}
