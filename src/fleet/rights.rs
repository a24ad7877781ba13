//! Who may change what over the control socket, decided from the peer's uid (SO_PEERCRED).
//!
//! root may do everything. A group's admin owner (the landlord, `[[group]] admin`) may admit and
//! retire the group's devices and approve updates for it. Occupants and everyone else may look
//! but not change.

use crate::config::Config;

/// Why a uid may not do something; the text says who may.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// The uid every right is granted to.
pub const ROOT_UID: u32 = 0;

/// The owner name a uid acts as, for audit rows (`uid:1000 (landlord)`).
pub fn actor_name(config: &Config, uid: u32) -> String {
    let names: Vec<&str> = config.owners.iter().filter(|o| o.uid == uid).map(|o| o.name.as_str()).collect();
    if names.is_empty() {
        format!("uid:{uid}")
    } else {
        format!("uid:{uid} ({})", names.join(", "))
    }
}

/// Whether `uid` is the admin of `group`.
fn administers(config: &Config, uid: u32, group: &str) -> Result<(), Refusal> {
    let Some(g) = config.group(group) else {
        return Err(Refusal(format!("group `{group}` is not in ferry.toml")));
    };
    match config.owner(&g.admin) {
        Some(admin) if admin.uid == uid => Ok(()),
        Some(admin) => Err(Refusal(format!(
            "uid {uid} may not change group `{group}`: only its admin `{}` (uid {}) or root may",
            admin.name, admin.uid
        ))),
        None => Err(Refusal(format!("group `{group}` has no admin owner; only root may change it"))),
    }
}

/// Admitting or retiring a device that is (or is going) in `groups`: root, or the admin of
/// every one of them. A device in no group is root's alone.
pub fn may_manage_device(config: &Config, uid: u32, groups: &[&str]) -> Result<(), Refusal> {
    if uid == ROOT_UID {
        return Ok(());
    }
    if groups.is_empty() {
        return Err(Refusal(format!(
            "uid {uid} may not change a device in no group: only root may (or name a group you administer with --group)"
        )));
    }
    groups.iter().try_for_each(|g| administers(config, uid, g))
}

/// Approving an update for `group`, or (None) for every group: root, or the admin of that group
/// (of every group, for a fleet-wide approval).
pub fn may_approve(config: &Config, uid: u32, group: Option<&str>) -> Result<(), Refusal> {
    if uid == ROOT_UID {
        return Ok(());
    }
    match group {
        Some(g) => administers(config, uid, g),
        None => config.groups.iter().try_for_each(|g| administers(config, uid, &g.name)).map_err(|r| {
            Refusal(format!("{r}; a fleet-wide approval needs root or the admin of every group (use --group G)"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse(
            std::path::Path::new("ferry.toml"),
            r#"
[radio]
url = "sim:home.toml"
[[owner]]
name = "landlord"
uid = 1000
[[owner]]
name = "tenant"
uid = 1001
[[owner]]
name = "other-landlord"
uid = 1002
[[group]]
name = "flat-1"
admin = "landlord"
occupant = "tenant"
[[group]]
name = "shop"
admin = "other-landlord"
"#,
        )
        .expect("valid config")
    }

    #[test]
    fn root_and_the_groups_admin_may_manage_devices() {
        let c = config();
        assert_eq!(may_manage_device(&c, 0, &[]), Ok(()));
        assert_eq!(may_manage_device(&c, 1000, &["flat-1"]), Ok(()));
        let tenant = may_manage_device(&c, 1001, &["flat-1"]).unwrap_err().to_string();
        assert_eq!(tenant, "uid 1001 may not change group `flat-1`: only its admin `landlord` (uid 1000) or root may");
        assert!(may_manage_device(&c, 1000, &["flat-1", "shop"]).is_err(), "moving into another's group");
        assert!(may_manage_device(&c, 1000, &[]).unwrap_err().to_string().contains("only root"));
        assert!(may_manage_device(&c, 4242, &["nowhere"]).unwrap_err().to_string().contains("not in ferry.toml"));
    }

    #[test]
    fn approvals_are_per_group_unless_root() {
        let c = config();
        assert_eq!(may_approve(&c, 0, None), Ok(()));
        assert_eq!(may_approve(&c, 1002, Some("shop")), Ok(()));
        assert!(may_approve(&c, 1002, Some("flat-1")).is_err());
        assert!(may_approve(&c, 1000, None).unwrap_err().to_string().contains("use --group G"));
        assert!(may_approve(&c, 1001, Some("flat-1")).is_err(), "the occupant does not approve");
        assert_eq!(actor_name(&c, 1001), "uid:1001 (tenant)");
        assert_eq!(actor_name(&c, 7), "uid:7");
    }
}
