//! `ferry update ls|approve|cancel`: accepted updates, operators' approvals, stopping a session.

use clap::Subcommand;

use crate::control::api::{ApproveRequest, CancelRequest, UpdateLine};
use crate::control::client::ControlClient;

#[derive(Debug, Subcommand)]
pub enum UpdateCommand {
    /// Accepted updates, their authority and whether they wait for approval.
    Ls {
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Approve an update whose authority needs approval: root, or a group's admin with --group.
    Approve {
        /// The envelope digest (or 8+ leading hex digits), or the update id `ferry update ls` shows.
        update: String,
        /// Approve it for this group only.
        #[arg(long, value_name = "G")]
        group: Option<String>,
    },
    /// Cancel a running delivery session (root, or an admin of the device's group).
    Cancel {
        /// The session number `ferry status` and `ferry history` show.
        session: u64,
    },
}

pub async fn run(client: &ControlClient, command: &UpdateCommand) -> anyhow::Result<()> {
    match command {
        UpdateCommand::Ls { json } => {
            let list = client.updates().await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print!("{}", render(&list.updates));
            }
        }
        UpdateCommand::Approve { update, group } => {
            let done = client.approve(&ApproveRequest { update: update.clone(), group: group.clone() }).await?;
            let scope = group.as_deref().map_or("every group".to_owned(), |g| format!("group {g}"));
            if done.added {
                println!("approved {} for {scope}: {}", done.update.id, done.update.status);
            } else {
                println!("{} was already approved for {scope}: {}", done.update.id, done.update.status);
            }
        }
        UpdateCommand::Cancel { session } => {
            let done = client.cancel(&CancelRequest { session: *session }).await?;
            println!("session {}: {}", done.session, done.state);
        }
    }
    Ok(())
}

fn render(updates: &[UpdateLine]) -> String {
    let id_width = updates.iter().map(|u| u.id.chars().count()).max().unwrap_or(2).max(2);
    let mut out = format!("{:id_width$}  {:12}  {:9}  {:12}  STATUS\n", "ID", "DIGEST", "COMPONENT", "AUTHORITY");
    for u in updates {
        let digest: String = u.digest.chars().take(12).collect();
        out += &format!("{:id_width$}  {digest:12}  {:9}  {:12}  {}\n", u.id, u.component, u.authority, u.status);
    }
    out
}
