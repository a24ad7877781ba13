//! The wiring: builds the rooms from the configuration, runs them until shutdown, reloads the
//! configuration on SIGHUP, and keeps systemd informed.
//!
//! `run` is the library entry point `ferryd` calls; tests use [`Daemon::start`] to learn the
//! bound addresses before serving.

mod coap;
mod deliver;
mod fleet;
mod kernel;
pub mod logging;
pub mod net;
mod notify;
mod owners;
pub mod plan;
mod radio;
mod repos;
mod status;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, LoadedConfig};
use crate::control::ControlServer;
use crate::metrics::{Metrics, MetricsServer};
use crate::store::{runs, Store};

use notify::Notifier;
pub use radio::RadioState;

/// How often the daemon proves it is alive (store heartbeat) when systemd sets no watchdog.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);
/// A heartbeat that takes longer than this counts as a failure: the store is stuck.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long, at most, both CoAP endpoints leave requests for unknown paths unanswered after
/// start, until the delivery room has added the updates it serves. A device that was fetching
/// when ferryd stopped retransmits its request for ~45 s (RFC 7252's MAX_TRANSMIT_SPAN) and
/// gives up on a 4.04.
const UNKNOWN_PATHS_HELD_AT_START: Duration = Duration::from_secs(30);

/// Runs ferryd until `shutdown` is cancelled.
pub async fn run(config: LoadedConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    Daemon::start(config, None).await?.serve(shutdown).await
}

/// A started daemon: store open, sockets bound, not yet serving.
pub struct Daemon {
    shared: Arc<status::Shared>,
    /// Cancelled when serving ends (or the daemon is dropped unserved); rooms started in
    /// `start` stop with it.
    rooms: CancellationToken,
    _rooms_guard: tokio_util::sync::DropGuard,
    config: watch::Sender<Arc<Config>>,
    metrics_server: MetricsServer,
    control_server: ControlServer,
    coap: Option<coap::CoapRoom>,
    repos: repos::ReposRoom,
    log: Option<logging::LogHandle>,
    notifier: Notifier,
    deliver: deliver::DeliverInputs,
}

impl Daemon {
    /// Opens the store and binds the metrics and control sockets. `log` lets SIGHUP change the
    /// log level of the subscriber `ferryd` installed.
    pub async fn start(loaded: LoadedConfig, log: Option<logging::LogHandle>) -> anyhow::Result<Daemon> {
        let LoadedConfig { path, config } = loaded;
        let state_dir = config.store.state_dir.clone();
        let store =
            tokio::task::spawn_blocking(move || Store::open(&state_dir)).await.context("store thread panicked")??;
        let run_id = store.call(|c| runs::start(c, env!("CARGO_PKG_VERSION"), now_ms())).await?;

        let metrics = Metrics::new().context("cannot register metrics")?;
        let metrics_server = MetricsServer::bind(config.metrics.listen, metrics.clone())
            .await
            .with_context(|| format!("cannot listen for metrics on {} ([metrics] listen)", config.metrics.listen))?;
        let control_server = ControlServer::bind(&config.control.socket).await.with_context(|| {
            format!("cannot bind control socket {} ([control] socket)", config.control.socket.display())
        })?;

        let coap = coap::CoapRoom::bind(&config.coap.listen, UNKNOWN_PATHS_HELD_AT_START, metrics.registry())
            .await
            .with_context(|| "cannot serve CoAP on [coap] listen")?;
        let repos = repos::ReposRoom::start(&config, &store, metrics.registry()).await?;
        let owners = owners::OwnersRoom::new(metrics.registry())?;
        owners.reload(&config);
        let rooms = CancellationToken::new();
        let radio = radio::RadioRoom::start(&config, &metrics, UNKNOWN_PATHS_HELD_AT_START, rooms.clone())?;
        let plan = plan::PlanRoom::new(repos.cache(), repos.policy(), metrics.registry())?;
        let config = watch::Sender::new(Arc::new(config));
        let (deliver, deliver_inputs) = deliver::channels();

        let shared = Arc::new(status::Shared {
            started: Instant::now(),
            config_path: Some(path),
            store,
            run_id,
            metrics,
            metrics_listen: metrics_server.local_addr()?,
            coap_listen: coap.as_ref().map(|c| c.local_addrs()).unwrap_or_default(),
            radio,
            owners,
            config: config.subscribe(),
            plan,
            deliver,
            cache: repos.cache(),
        });
        let current = config.borrow().clone();
        fleet::commission_from_config(&shared, current).await;
        shared.replan().await;
        Ok(Daemon {
            shared,
            _rooms_guard: rooms.clone().drop_guard(),
            rooms,
            config,
            metrics_server,
            control_server,
            coap,
            repos,
            log,
            notifier: Notifier::from_env(),
            deliver: deliver_inputs,
        })
    }

    pub fn metrics_addr(&self) -> std::net::SocketAddr {
        self.shared.metrics_listen
    }

    pub fn control_socket(&self) -> &std::path::Path {
        self.control_server.path()
    }

    /// Serves until `shutdown`; then records a clean stop in the store.
    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Daemon {
            shared,
            rooms,
            _rooms_guard,
            config,
            metrics_server,
            control_server,
            mut coap,
            repos,
            log,
            notifier,
            deliver,
        } = self;
        let mut tasks = JoinSet::new();
        let udp = coap.as_ref().map(|c| c.handle());
        let kernel_events = coap.as_mut().and_then(|c| c.take_events());
        match deliver::DeliverRoom::start(shared.clone(), repos.cache(), repos.policy(), udp, kernel_events, &deliver)
            .await
        {
            Ok(room) => {
                tasks.spawn(room.run(deliver, rooms.clone()));
            }
            Err(e) => tracing::error!("the delivery room did not start; nothing is delivered: {e:#}"),
        }
        tasks.spawn(metrics_server.serve(rooms.clone()));
        tasks.spawn(control_server.serve(Arc::new(status::DaemonApi(shared.clone())), rooms.clone()));
        tasks.spawn(repos.serve(rooms.clone(), shared.deliver.replan_wanted.clone()));
        if let Some(coap) = coap {
            tasks.spawn(coap.serve(rooms.clone()));
        }

        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot listen for SIGHUP")?;
        let period = notifier.watchdog_interval().unwrap_or(DEFAULT_HEARTBEAT);
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        // systemd hears READY once the store is open and the radio is up, or after the wait
        // runs out: the cache, metrics and control socket serve without a radio.
        let ready_timeout = Duration::from_secs(config.borrow().radio.ready_timeout_s);
        tokio::select! {
            _ = shutdown.cancelled() => {}
            up = shared.radio.wait_up(ready_timeout) => if !up {
                let radio = shared.radio.state();
                tracing::warn!(url = radio.url, detail = radio.detail, "the radio is not up; ferryd serves without it and keeps trying");
            },
        }
        let mut last_status = shared.summary();
        notifier.ready(&last_status);
        tracing::info!(
            metrics = %shared.metrics_listen,
            control = %config.borrow().control.socket.display(),
            state_dir = %shared.store.paths().state_dir.display(),
            "ferryd is ready"
        );
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = shared.deliver.replan_wanted.notified() => shared.replan().await,
                _ = hangup.recv() => {
                    if reload(&shared, &config, log.as_ref()) {
                        let current = config.borrow().clone();
                        fleet::commission_from_config(&shared, current).await;
                    }
                    shared.replan().await;
                }
                _ = heartbeat.tick() => {
                    if let Some(why) = shared.radio.net_task_ended().await {
                        if !shutdown.is_cancelled() {
                            rooms.cancel();
                            anyhow::bail!("{why}");
                        }
                    }
                    // The watchdog is only fed while the daemon can still write its state and
                    // the radio has not been gone for longer than the configured grace.
                    let grace = Duration::from_secs(config.borrow().radio.unreachable_grace_s);
                    let radio_lost = shared.radio.unreachable_for_longer_than(grace);
                    if radio_lost {
                        tracing::error!(grace_s = grace.as_secs(), detail = shared.radio.state().detail, "the radio has been unreachable too long; withholding the watchdog");
                    }
                    let current = config.borrow().clone();
                    shared.owners.reload(&current);
                    shared.replan().await;
                    if beat(&shared).await && !radio_lost {
                        notifier.watchdog();
                        let status = shared.summary();
                        if status != last_status {
                            notifier.status(&status);
                            last_status = status;
                        }
                    }
                }
                Some(ended) = tasks.join_next() => {
                    if let Err(e) = ended {
                        rooms.cancel();
                        anyhow::bail!("a ferryd task failed: {e}");
                    }
                }
            }
        }

        notifier.stopping();
        tracing::info!("ferryd is stopping");
        rooms.cancel();
        while tasks.join_next().await.is_some() {}
        let run_id = shared.run_id;
        shared.store.call(move |c| runs::stop(c, run_id, now_ms())).await?;
        tracing::info!("ferryd stopped cleanly");
        Ok(())
    }
}

/// Writes the heartbeat; false if the store could not take it in time.
async fn beat(shared: &status::Shared) -> bool {
    let run_id = shared.run_id;
    let write = shared.store.call(move |c| runs::heartbeat(c, run_id, now_ms()));
    match tokio::time::timeout(HEARTBEAT_TIMEOUT, write).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            shared.metrics.store_heartbeat_failures_total.inc();
            tracing::error!(error = %e, "store heartbeat failed; withholding the watchdog");
            false
        }
        Err(_) => {
            shared.metrics.store_heartbeat_failures_total.inc();
            tracing::error!(timeout = ?HEARTBEAT_TIMEOUT, "store heartbeat timed out; withholding the watchdog");
            false
        }
    }
}

/// SIGHUP: read the file again; a bad file changes nothing. True when the new file is in force.
fn reload(shared: &status::Shared, config: &watch::Sender<Arc<Config>>, log: Option<&logging::LogHandle>) -> bool {
    let Some(path) = shared.config_path.as_deref() else {
        tracing::warn!("SIGHUP ignored: this ferryd was not started from a config file");
        return false;
    };
    let new = match LoadedConfig::load(path) {
        Ok(loaded) => loaded.config,
        Err(e) => {
            shared.metrics.config_reload_failures_total.inc();
            tracing::error!(error = %e, "configuration reload refused; the previous configuration stays in force");
            return false;
        }
    };
    let old = config.borrow().clone();
    for (section, changed) in [
        ("[radio]", old.radio != new.radio),
        ("[network]", old.network != new.network),
        ("[store]", old.store != new.store),
        ("[metrics]", old.metrics != new.metrics),
        ("[control]", old.control != new.control),
        ("[coap]", old.coap != new.coap),
    ] {
        if changed {
            tracing::warn!(section, "changed in the configuration file; takes effect when ferryd restarts");
        }
    }
    if let Some(log) = log {
        log.set_level(new.log.level);
    }
    shared.owners.reload(&new);
    config.send_replace(Arc::new(new));
    shared.metrics.config_reloads_total.inc();
    tracing::info!(config = %path.display(), "configuration reloaded");
    true
}

/// Wall-clock time for records in the store; the daemon shell is where clocks are read.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
