//! A [`Swarm`] kept running: a task that owns it, hands every connection it makes to a sink
//! (e.g. a replicator's event queue), and when the swarm stops (a panic in the `hyperswarm`
//! crate, its driver ending) binds a new one after a backoff and joins the same topics again.
//!
//! The `hyperswarm` crate can stop on one unexpected UDP packet (see [`super::swarm`]); a
//! long-running peer (`vitra serve --swarm`) must not lose discovery for good because of it.
//! A connection the swarm dialed to its own announcement (joining a topic as server and
//! client finds ourselves) is dropped at once. What happens is reported as [`SwarmStatus`] values the owner reads when it likes
//! ([`SupervisedSwarm::take_status`]), so a host can print it without being driven by it.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{DiscoveryError, Swarm, SwarmConfig, SwarmPeer};

/// The first wait before binding again after the swarm stopped; it doubles up to
/// [`MAX_BACKOFF`] while binding keeps failing, and starts over once a swarm ran for
/// `STABLE_AFTER`.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two attempts to bind a swarm.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A swarm that ran this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// What the supervisor did, in order.
#[derive(Debug)]
pub enum SwarmStatus {
    /// A new swarm (after a restart) is bound and has joined every topic again.
    Rebound {
        /// Our new DHT node's UDP address.
        local_addr: Option<std::net::SocketAddr>,
        /// The new swarm's public key.
        public_key: [u8; 32],
    },
    /// A peer connected (before it went to the sink).
    Connected {
        /// The peer's public key.
        remote_public_key: [u8; 32],
        /// Whether we dialed it.
        is_initiator: bool,
    },
    /// The swarm stopped, or binding a new one failed; the next attempt is in `retry_in`.
    Failed {
        /// What went wrong.
        error: DiscoveryError,
        /// When the supervisor binds again.
        retry_in: Duration,
    },
}

enum Command {
    Join {
        topic: [u8; 32],
        server: bool,
        client: bool,
    },
    Refresh,
}

/// A running swarm under supervision (see the module docs). Dropping it stops the swarm.
#[derive(Debug)]
pub struct SupervisedSwarm {
    commands: mpsc::UnboundedSender<Command>,
    status: mpsc::UnboundedReceiver<SwarmStatus>,
    task: JoinHandle<()>,
}

impl SupervisedSwarm {
    /// Takes over `swarm` (already bound with `config`, so a bad configuration fails at the
    /// caller before anything runs) and starts supervising it on the current tokio runtime:
    /// every peer goes to `sink`; later swarms are bound with `config` and join the topics in
    /// `joined` (topic, server, client), which `swarm` has joined already. They are not joined
    /// on `swarm` again: announcing a topic a second time finds our own announcement, and the
    /// crate dials it.
    pub fn start(
        swarm: Swarm,
        config: SwarmConfig,
        joined: Vec<([u8; 32], bool, bool)>,
        sink: impl FnMut(SwarmPeer) + Send + 'static,
    ) -> SupervisedSwarm {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (status_tx, status) = mpsc::unbounded_channel();
        let task = tokio::spawn(supervise(
            swarm, config, joined, command_rx, status_tx, sink,
        ));
        SupervisedSwarm {
            commands,
            status,
            task,
        }
    }

    /// Joins `topic` (as [`Swarm::join`]) now and on every swarm bound later.
    pub fn join(&self, topic: [u8; 32], server: bool, client: bool) {
        let _ = self.commands.send(Command::Join {
            topic,
            server,
            client,
        });
    }

    /// Looks every topic joined as client up again (and announces the server ones again): a
    /// peer that announced after our lookup, or whose connection dropped, is dialed anew.
    pub fn refresh(&self) {
        let _ = self.commands.send(Command::Refresh);
    }

    /// What happened since the last call.
    pub fn take_status(&mut self) -> Vec<SwarmStatus> {
        let mut all = Vec::new();
        while let Ok(s) = self.status.try_recv() {
            all.push(s);
        }
        all
    }
}

impl Drop for SupervisedSwarm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Applies every topic to `swarm`; the first error means the swarm is unusable.
fn join_all(swarm: &Swarm, topics: &[([u8; 32], bool, bool)]) -> Result<(), DiscoveryError> {
    for (topic, server, client) in topics {
        swarm.join(*topic, *server, *client)?;
    }
    Ok(())
}

fn remember(topics: &mut Vec<([u8; 32], bool, bool)>, topic: [u8; 32], server: bool, client: bool) {
    topics.retain(|(t, _, _)| *t != topic);
    if server || client {
        topics.push((topic, server, client));
    }
}

async fn supervise(
    first: Swarm,
    config: SwarmConfig,
    mut topics: Vec<([u8; 32], bool, bool)>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    status: mpsc::UnboundedSender<SwarmStatus>,
    mut sink: impl FnMut(SwarmPeer) + Send + 'static,
) {
    let mut backoff = FIRST_BACKOFF;
    let mut current = Some(first);
    loop {
        let swarm = match current.take() {
            Some(s) => s,
            None => match Swarm::bind(config.clone())
                .await
                .and_then(|s| join_all(&s, &topics).map(|()| s))
            {
                Ok(s) => {
                    let _ = status.send(SwarmStatus::Rebound {
                        local_addr: s.local_addr().ok(),
                        public_key: s.public_key(),
                    });
                    s
                }
                Err(error) => {
                    let _ = status.send(SwarmStatus::Failed {
                        error,
                        retry_in: backoff,
                    });
                    if !wait(&mut commands, &mut topics, &mut backoff).await {
                        return;
                    }
                    continue;
                }
            },
        };
        let started = tokio::time::Instant::now();
        let error = loop {
            tokio::select! {
                command = commands.recv() => match command {
                    None => return, // the owner is gone
                    Some(Command::Join { topic, server, client }) => {
                        remember(&mut topics, topic, server, client);
                        if let Err(e) = swarm.join(topic, server, client) {
                            break e;
                        }
                    }
                    Some(Command::Refresh) => {
                        if let Err(e) = join_all(&swarm, &topics) {
                            break e;
                        }
                    }
                },
                peer = swarm.next_peer() => match peer {
                    // Our own lookup found our own announcement: not a peer.
                    Ok(peer) if peer.is_initiator && peer.remote_public_key == swarm.public_key() => {}
                    Ok(peer) => {
                        let _ = status.send(SwarmStatus::Connected {
                            remote_public_key: peer.remote_public_key,
                            is_initiator: peer.is_initiator,
                        });
                        sink(peer);
                    }
                    Err(e) => break e,
                },
            }
        };
        drop(swarm);
        if started.elapsed() >= STABLE_AFTER {
            backoff = FIRST_BACKOFF;
        }
        let _ = status.send(SwarmStatus::Failed {
            error,
            retry_in: backoff,
        });
        if !wait(&mut commands, &mut topics, &mut backoff).await {
            return;
        }
    }
}

/// The wait after `backoff`: twice as long, at most [`MAX_BACKOFF`].
fn next_backoff(backoff: Duration) -> Duration {
    (backoff * 2).min(MAX_BACKOFF)
}

/// Waits `backoff` (recording topics joined meanwhile) and doubles it; false when the owner
/// is gone.
async fn wait(
    commands: &mut mpsc::UnboundedReceiver<Command>,
    topics: &mut Vec<([u8; 32], bool, bool)>,
    backoff: &mut Duration,
) -> bool {
    let until = tokio::time::Instant::now() + *backoff;
    *backoff = next_backoff(*backoff);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => return true,
            command = commands.recv() => match command {
                None => return false,
                Some(Command::Join { topic, server, client }) => remember(topics, topic, server, client),
                Some(Command::Refresh) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_remembered_once_and_left_when_neither_mode_is_asked() {
        let mut topics = Vec::new();
        remember(&mut topics, [1; 32], true, false);
        remember(&mut topics, [2; 32], false, true);
        remember(&mut topics, [1; 32], true, true);
        assert_eq!(topics, vec![([2; 32], false, true), ([1; 32], true, true)]);
        remember(&mut topics, [2; 32], false, false);
        assert_eq!(topics, vec![([1; 32], true, true)]);
    }

    #[test]
    fn the_backoff_doubles_up_to_its_limit() {
        let mut b = FIRST_BACKOFF;
        let mut seen = Vec::new();
        for _ in 0..8 {
            seen.push(b.as_secs());
            b = next_backoff(b);
        }
        assert_eq!(seen, vec![1, 2, 4, 8, 16, 32, 60, 60]);
    }

    #[tokio::test]
    async fn joins_made_while_waiting_are_kept_and_a_gone_owner_ends_the_wait() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut topics = Vec::new();
        let mut backoff = Duration::from_millis(5);
        tx.send(Command::Join {
            topic: [7; 32],
            server: true,
            client: false,
        })
        .expect("send");
        assert!(wait(&mut rx, &mut topics, &mut backoff).await);
        assert_eq!(backoff, Duration::from_millis(10));
        assert_eq!(topics, vec![([7; 32], true, false)]);
        drop(tx);
        assert!(
            !wait(&mut rx, &mut topics, &mut backoff).await,
            "owner gone"
        );
    }
}
