//! `strom group delete`: DeleteGroups at each group's coordinator. Only groups without
//! active members can be deleted; their committed offsets go with them.

use clap::Args;
use kafka_protocol::messages::{DeleteGroupsRequest, GroupId};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::call_coordinator;
use crate::client::KafkaError;
use crate::commands::ClientOpts;
use crate::output::{OutputFormat, print_json, write_stdout};

/// Arguments of `strom group delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The groups to delete
    #[arg(required = true, value_name = "GROUP")]
    groups: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Deleted {
    group: String,
    /// `None` once deleted; otherwise why not.
    error: Option<String>,
}

pub async fn run(client: ClientOpts, args: DeleteArgs) -> anyhow::Result<()> {
    let mut cluster = client.connect().await?;
    let mut results = Vec::with_capacity(args.groups.len());
    // One request per group: groups can have different coordinators, and a retry after
    // a coordinator move must not repeat the groups already deleted.
    for group in args.groups {
        let response = call_coordinator(
            &mut cluster,
            &group,
            |_| {
                DeleteGroupsRequest::default()
                    .with_groups_names(vec![GroupId(StrBytes::from_string(group.clone()))])
            },
            |r| r.results.first().map_or(0, |g| g.error_code),
        )
        .await?;
        let code = response.results.first().map_or(0, |r| r.error_code);
        results.push(Deleted {
            error: message(&group, code),
            group,
        });
    }
    match client.output {
        OutputFormat::Json => print_json(&results)?,
        OutputFormat::Table => {
            let mut out = String::new();
            for r in results.iter().filter(|r| r.error.is_none()) {
                out.push_str(&format!("deleted group {}\n", r.group));
            }
            write_stdout(out.as_bytes())?;
        }
    }
    let errors: Vec<&str> = results.iter().filter_map(|r| r.error.as_deref()).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        // One line whatever the number of failures, so scripts can read it.
        anyhow::bail!("{}", errors.join("; "))
    }
}

/// Why `group` was not deleted, for DeleteGroups' error `code`.
fn message(group: &str, code: i16) -> Option<String> {
    match code {
        0 => None,
        KafkaError::GROUP_ID_NOT_FOUND => Some(format!("unknown group: {group}")),
        KafkaError::NON_EMPTY_GROUP => Some(format!(
            "group {group} has active members (NON_EMPTY_GROUP): stop its consumers first"
        )),
        code => Some(format!(
            "cannot delete group {group}: {}",
            KafkaError::new(code)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_group() {
        assert_eq!(message("g", 0), None);
        assert_eq!(message("g", 69).as_deref(), Some("unknown group: g"));
        assert!(message("g", 68).is_some_and(|m| m.contains("NON_EMPTY_GROUP")));
        assert_eq!(
            message("g", 24).as_deref(),
            Some("cannot delete group g: INVALID_GROUP_ID")
        );
    }
}
