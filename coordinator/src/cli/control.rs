//! CLI commands that steer the farm: cancel, pause, resume, delete, retry and re-prioritise jobs;
//! list, drain, disable, enable, release, forget, rename and tag agents.

use anyhow::Context;
use clap::{Args, Subcommand};
use idlefarm_protocol::{AgentInfo, AgentUpdate, PriorityRequest, RetryRequest, routes, valid_tag};

use super::ServerArg;
use crate::client::Client;

/// Job and agent control, flattened into the top-level commands.
#[derive(Debug, Subcommand)]
pub enum ControlCommand {
    /// Cancel a job: its renders stop at the agents' next heartbeat; finished frames stay.
    Cancel(JobArg),
    /// Pause a job: running chunks go back to the queue; nothing new starts until `resume`.
    Pause(JobArg),
    /// Resume a paused job.
    Resume(JobArg),
    /// Delete a job and its files (frames, video) from the coordinator.
    Delete(JobArg),
    /// Retry a job's failed frames, or render chosen frames again with --frames.
    Retry {
        #[command(flatten)]
        job: JobArg,
        /// Frames to render again, e.g. `7,12-15` (default: every failed frame).
        #[arg(long)]
        frames: Option<String>,
    },
    /// Set a job's priority (higher runs first; default 0; -1000 to 1000).
    Priority {
        #[command(flatten)]
        job: JobArg,
        /// The new priority.
        #[arg(allow_negative_numbers = true)]
        priority: i64,
    },
    /// List and steer the farm's PCs (admins).
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
}

/// A job id and the coordinator.
#[derive(Debug, Args)]
pub struct JobArg {
    /// Job id.
    job: i64,
    #[command(flatten)]
    server: ServerArg,
}

/// An agent id and the coordinator.
#[derive(Debug, Args)]
pub struct AgentArg {
    /// Agent id (`idlefarm agent list` shows them).
    id: i64,
    #[command(flatten)]
    server: ServerArg,
}

/// An enrolment request id and the coordinator.
#[derive(Debug, Args)]
pub struct RequestArg {
    /// Request number (`idlefarm agent requests` shows them; the PC's log says its own).
    id: i64,
    #[command(flatten)]
    server: ServerArg,
}

/// `idlefarm agent …`.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// List agents: state, mode, tags, frames, and why each gets no work.
    List {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// List the PCs that asked to join without an enrolment token, waiting for an admin.
    Requests {
        #[command(flatten)]
        server: ServerArg,
    },
    /// Let a PC that asked to join enrol.
    Approve(RequestArg),
    /// Turn down a PC's request to join.
    Reject(RequestArg),
    /// Let an agent finish the chunk in hand and take no more.
    Drain(AgentArg),
    /// Stop an agent at once (its chunk goes back to the queue) and give it no work.
    Disable(AgentArg),
    /// Let a drained or disabled agent work again.
    Enable(AgentArg),
    /// End an agent's quarantine and blocklists early.
    Release(AgentArg),
    /// Forget an agent: its secret stops working; it must enrol again to come back.
    Forget(AgentArg),
    /// Rename an agent.
    Rename {
        #[command(flatten)]
        agent: AgentArg,
        /// The new name.
        name: String,
    },
    /// Set an agent's tags (replacing the old ones); no tags clears them.
    Tag {
        #[command(flatten)]
        agent: AgentArg,
        /// Tags such as `room-2` or `gpu`.
        #[arg(value_parser = parse_tag)]
        tags: Vec<String>,
    },
}

fn parse_tag(s: &str) -> Result<String, String> {
    let tag = s.trim().to_ascii_lowercase();
    if valid_tag(&tag) {
        Ok(tag)
    } else {
        Err(format!(
            "`{s}` is not a valid tag: use 1-32 of a-z, 0-9, `-`, `_`, `.`, starting with a letter or digit"
        ))
    }
}

/// Runs a control command.
pub async fn run(command: ControlCommand) -> anyhow::Result<()> {
    match command {
        ControlCommand::Cancel(a) => job_post(a, routes::JOB_CANCEL, "cancelled").await,
        ControlCommand::Pause(a) => job_post(a, routes::JOB_PAUSE, "paused").await,
        ControlCommand::Resume(a) => job_post(a, routes::JOB_RESUME, "resumed").await,
        ControlCommand::Delete(a) => {
            let client = a.server.client()?;
            client.delete(&routes::job(a.job)).await?;
            println!("job {} deleted", a.job);
            Ok(())
        }
        ControlCommand::Retry { job, frames } => {
            let client = job.server.client()?;
            let body = RetryRequest {
                frames: frames.clone(),
            };
            client
                .post_json(&routes::with_id(routes::JOB_RETRY, job.job), &body)
                .await?;
            match frames {
                Some(list) => println!("job {}: frames {list} queued again", job.job),
                None => println!("job {}: failed frames queued again", job.job),
            }
            Ok(())
        }
        ControlCommand::Priority { job, priority } => {
            let client = job.server.client()?;
            client
                .post_json(
                    &routes::with_id(routes::JOB_PRIORITY, job.job),
                    &PriorityRequest { priority },
                )
                .await?;
            println!("job {}: priority {priority}", job.job);
            Ok(())
        }
        ControlCommand::Agent { command } => agent(command).await,
    }
}

async fn job_post(a: JobArg, template: &str, done: &str) -> anyhow::Result<()> {
    let client = a.server.client()?;
    client
        .post_json(&routes::with_id(template, a.job), &serde_json::json!({}))
        .await?;
    println!("job {} {done}", a.job);
    Ok(())
}

async fn agent_post(a: AgentArg, template: &str, done: &str) -> anyhow::Result<()> {
    let client = a.server.client()?;
    client
        .post_json(&routes::with_id(template, a.id), &serde_json::json!({}))
        .await?;
    println!("agent {} {done}", a.id);
    Ok(())
}

async fn agent(command: AgentCommand) -> anyhow::Result<()> {
    match command {
        AgentCommand::List { json, server } => {
            let agents = server.client()?.agents().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&agents)?);
            } else {
                print_agents(&agents);
            }
            Ok(())
        }
        AgentCommand::Drain(a) => agent_post(a, routes::AGENT_DRAIN, "is draining").await,
        AgentCommand::Disable(a) => agent_post(a, routes::AGENT_DISABLE, "disabled").await,
        AgentCommand::Enable(a) => agent_post(a, routes::AGENT_ENABLE, "enabled").await,
        AgentCommand::Release(a) => agent_post(a, routes::AGENT_RELEASE, "released").await,
        AgentCommand::Requests { server } => {
            let requests = server.client()?.enrolment_requests().await?;
            if requests.is_empty() {
                println!("no PC is waiting to join");
            }
            for r in requests {
                let renderers: Vec<String> = (r.renderers.iter())
                    .map(|x| format!("{} {}", x.renderer.as_str(), x.version))
                    .collect();
                println!(
                    "#{:<4} {:<24} {:<9} {}",
                    r.id,
                    r.name,
                    r.state,
                    renderers.join(", ")
                );
            }
            Ok(())
        }
        AgentCommand::Approve(r) => {
            let path = routes::ENROLMENT_REQUEST_APPROVE.replace("{id}", &r.id.to_string());
            r.server
                .client()?
                .post_json(&path, &serde_json::json!({}))
                .await
                .context("approving the request")?;
            println!("request {} approved: the PC enrols at its next try", r.id);
            Ok(())
        }
        AgentCommand::Reject(r) => {
            let path = routes::ENROLMENT_REQUEST.replace("{id}", &r.id.to_string());
            r.server
                .client()?
                .delete(&path)
                .await
                .context("turning the request down")?;
            println!("request {} turned down", r.id);
            Ok(())
        }
        AgentCommand::Forget(a) => {
            let client = a.server.client()?;
            client
                .delete(&routes::with_id(routes::AGENT, a.id))
                .await
                .context("forgetting the agent")?;
            println!("agent {} forgotten; it must enrol again to work", a.id);
            Ok(())
        }
        AgentCommand::Rename { agent, name } => {
            let update = AgentUpdate {
                name: Some(name.clone()),
                tags: None,
            };
            agent_patch(&agent, &update).await?;
            println!("agent {} is now called {name}", agent.id);
            Ok(())
        }
        AgentCommand::Tag { agent, tags } => {
            let update = AgentUpdate {
                name: None,
                tags: Some(tags.clone()),
            };
            agent_patch(&agent, &update).await?;
            if tags.is_empty() {
                println!("agent {}: tags cleared", agent.id);
            } else {
                println!("agent {}: tags {}", agent.id, tags.join(", "));
            }
            Ok(())
        }
    }
}

async fn agent_patch(a: &AgentArg, update: &AgentUpdate) -> anyhow::Result<()> {
    let client: Client = a.server.client()?;
    client
        .patch_json(&routes::with_id(routes::AGENT, a.id), update)
        .await?;
    Ok(())
}

/// Prints agents as a table, with the reason when one gets no work.
pub fn print_agents(agents: &[AgentInfo]) {
    println!("{} agent(s):", agents.len());
    for a in agents {
        let seen = a
            .last_seen_secs_ago
            .map_or("never".into(), |s| format!("{s}s ago"));
        let tags = if a.tags.is_empty() {
            String::new()
        } else {
            format!("  tags {}", a.tags.join(","))
        };
        println!(
            "  {:>4}  {:<20} {:<12} {:<9} seen {seen:<9} {} frames  {} yields  {} failures{tags}",
            a.id,
            a.name,
            format!("{:?}", a.presence).to_lowercase(),
            a.mode.as_str(),
            a.frames_done,
            a.yields,
            a.failures,
        );
        if let Some(why) = &a.no_work_reason {
            println!("        no work: {why}");
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::Cli;

    #[test]
    fn control_flags_are_checked() {
        assert!(Cli::try_parse_from(["idlefarm", "cancel", "7"]).is_ok());
        assert!(Cli::try_parse_from(["idlefarm", "cancel", "seven"]).is_err());
        assert!(Cli::try_parse_from(["idlefarm", "priority", "7", "-5"]).is_ok());
        assert!(Cli::try_parse_from(["idlefarm", "priority", "7", "high"]).is_err());
        assert!(Cli::try_parse_from(["idlefarm", "retry", "7", "--frames", "1,3-4"]).is_ok());
        let err = Cli::try_parse_from(["idlefarm", "agent", "tag", "3", "Room 2!"]).unwrap_err();
        assert!(err.to_string().contains("not a valid tag"), "{err}");
        assert!(Cli::try_parse_from(["idlefarm", "agent", "tag", "3", "room-2", "gpu"]).is_ok());
        assert!(Cli::try_parse_from(["idlefarm", "agent", "drain"]).is_err());
        assert!(Cli::try_parse_from(["idlefarm", "agent", "fly", "3"]).is_err());
    }
}
