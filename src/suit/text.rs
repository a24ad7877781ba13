//! SUIT_Text_Map (draft-ietf-suit-manifest-37 §8.4.4 "Manifest Text"; draft-09 §8.4.4).
//!
//! ```text
//! draft-37: SUIT_Text_Map  = { + tstr (language tag) => SUIT_Text_LMap }
//! both:     SUIT_Text_LMap = { ? 1 manifest-description, ? 2 update-description,
//!                              ? 3 json-source, ? 4 yaml-source : tstr,
//!                              * SUIT_Component_Identifier => {
//!                                  ? 1 vendor-name, ? 2 model-name, ? 3 vendor-domain,
//!                                  ? 4 model-info, ? 5 component-description,
//!                                  ? 6 component-version : tstr } }
//! draft-09 has no language level: the text member is one SUIT_Text_LMap.
//! ```
//! Unknown and custom keys are skipped: text is informative only.

use minicbor::data::Type;

use super::cbor::{decode_exact, Reader};
use super::error::{Error, Result};
use super::limits::MAX_TEXT_ENTRIES;
use super::manifest::ComponentId;
use super::Format;

const WHAT: &str = "SUIT_Text_Map";

/// Text for one language.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text {
    /// RFC 5646 language tag (draft-37); `None` for draft-09.
    pub language: Option<String>,
    pub manifest_description: Option<String>,
    pub update_description: Option<String>,
    pub components: Vec<(ComponentId, ComponentText)>,
}

/// Text about one component.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ComponentText {
    pub vendor_name: Option<String>,
    pub model_name: Option<String>,
    pub vendor_domain: Option<String>,
    pub model_info: Option<String>,
    pub description: Option<String>,
    /// `component-version`: the human version string, if the author gave one.
    pub version: Option<String>,
}

impl Text {
    /// Decodes the content of the text member.
    pub(crate) fn decode(bytes: &[u8], format: Format) -> Result<Vec<Text>> {
        decode_exact(bytes, WHAT, |r| match format {
            Format::Riot => Ok(vec![decode_lmap(r, None)?]),
            Format::Ietf => {
                let n = r.map(WHAT, MAX_TEXT_ENTRIES)?;
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    let lang = r.str("language tag")?.to_owned();
                    out.push(decode_lmap(r, Some(lang))?);
                }
                Ok(out)
            }
        })
    }
}

fn decode_lmap(r: &mut Reader<'_>, language: Option<String>) -> Result<Text> {
    const W: &str = "SUIT_Text_LMap";
    let mut t = Text { language, ..Text::default() };
    for _ in 0..r.map(W, MAX_TEXT_ENTRIES)? {
        match r.peek(W)? {
            Type::Array => {
                let id = ComponentId::decode(r)?;
                if t.components.iter().any(|(c, _)| *c == id) {
                    return Err(Error::Invalid { what: W, reason: format!("component {id:?} appears twice") });
                }
                let ct = decode_component(r)?;
                t.components.push((id, ct));
            }
            _ => match r.int_key(W)? {
                1 => t.manifest_description = Some(r.str("manifest-description")?.to_owned()),
                2 => t.update_description = Some(r.str("update-description")?.to_owned()),
                _ => r.skip(W)?,
            },
        }
    }
    Ok(t)
}

fn decode_component(r: &mut Reader<'_>) -> Result<ComponentText> {
    const W: &str = "SUIT_Text_Component_Keys";
    let mut c = ComponentText::default();
    for _ in 0..r.map(W, MAX_TEXT_ENTRIES)? {
        let slot = match r.int_key(W)? {
            1 => &mut c.vendor_name,
            2 => &mut c.model_name,
            3 => &mut c.vendor_domain,
            4 => &mut c.model_info,
            5 => &mut c.description,
            6 => &mut c.version,
            _ => {
                r.skip(W)?;
                continue;
            }
        };
        *slot = Some(r.str(W)?.to_owned());
    }
    Ok(c)
}
