//! The MQTT sink: one connection per target (rumqttc), QoS 1, one event in flight at a time so
//! that each is counted when the broker acknowledges it (and published again after a
//! reconnection when it was not). On every connection `online` is published, retained, to the
//! availability topic, whose last will is a retained `offline`; a clean shutdown publishes
//! `offline` itself.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS,
    TlsConfiguration, Transport,
};
use tokio::sync::mpsc;

use super::publisher::{Counters, Outbound};
use super::{MqttTarget, PublishOptions};

/// Payload of the availability topic while connected.
pub(crate) const ONLINE: &str = "online";
/// Payload of the availability topic after a shutdown (and the last will).
pub(crate) const OFFLINE: &str = "offline";
/// Largest packet either way (a session summary with many people stays far below).
const MAX_PACKET_BYTES: usize = 1 << 20;

/// What the connection's event loop tells the sender.
#[derive(Debug)]
enum Note {
    Connected,
    Down(String),
    Sent(u16),
    Acked(u16),
}

/// Runs the target until `queue` closes (the publisher shutting down).
pub(crate) async fn run(
    target: MqttTarget,
    device: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    queue: mpsc::Receiver<Outbound>,
    counters: Arc<Counters>,
    options: PublishOptions,
) {
    let shown = super::PublishTarget::Mqtt(target.clone()).to_string();
    let availability = target.availability_topic(&device);
    let mut mqtt = MqttOptions::new(format!("rollcall-{device}"), &target.host, target.port);
    mqtt.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
        .set_last_will(LastWill::new(
            &availability,
            OFFLINE,
            QoS::AtLeastOnce,
            true,
        ));
    if let Some((user, password)) = target.credentials() {
        mqtt.set_credentials(user, password);
    }
    if let Some(config) = tls.filter(|_| target.tls) {
        mqtt.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
    }
    let (client, mut events) = AsyncClient::new(mqtt, 16);
    events
        .network_options
        .set_connection_timeout(options.timeout.as_secs().max(1));
    let (notes_tx, notes) = mpsc::unbounded_channel();
    let driver = tokio::spawn(drive(events, notes_tx, options.clone(), shown.clone()));
    let mut sender = Sender {
        client,
        notes,
        connected: false,
        announced: false,
        availability,
        options,
    };
    sender.serve(queue, &target, &counters, &shown).await;
    // Shutdown: say so while connected, then leave (the will is then not published).
    if sender.connected {
        if let Err(e) = sender
            .publish_acked(&sender.availability.clone(), OFFLINE.into(), true)
            .await
        {
            tracing::debug!(target = %shown, error = %e, "offline not acknowledged");
        }
    }
    let _ = sender.client.disconnect().await;
    drop(sender);
    if tokio::time::timeout(Duration::from_secs(2), driver)
        .await
        .is_err()
    {
        tracing::debug!(target = %shown, "MQTT connection did not close in time");
    }
}

/// Polls the event loop until the client is gone, reconnecting with a doubling backoff.
async fn drive(
    mut events: EventLoop,
    notes: mpsc::UnboundedSender<Note>,
    options: PublishOptions,
    shown: String,
) {
    let mut failures = 0u32;
    let mut last_error = String::new();
    loop {
        let note = match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if failures > 0 {
                    tracing::info!(target = %shown, "connected to the MQTT broker again");
                }
                failures = 0;
                last_error.clear();
                Note::Connected
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Note::Sent(pkid),
            Ok(Event::Incoming(Packet::PubAck(ack))) => Note::Acked(ack.pkid),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => continue,
            Err(ConnectionError::RequestsDone) => return,
            Err(e) => {
                let error = e.to_string();
                // Say why once; a broker that stays down repeats it quietly.
                if error != last_error {
                    tracing::warn!(target = %shown, %error, "MQTT broker unreachable; retrying");
                    last_error = error.clone();
                } else {
                    tracing::debug!(target = %shown, %error, "MQTT broker still unreachable");
                }
                let _ = notes.send(Note::Down(error));
                let wait = options.backoff(failures);
                failures = failures.saturating_add(1);
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        if notes.send(note).is_err() {
            return;
        }
    }
}

struct Sender {
    client: AsyncClient,
    notes: mpsc::UnboundedReceiver<Note>,
    connected: bool,
    /// `online` was published on the current connection.
    announced: bool,
    availability: String,
    options: PublishOptions,
}

impl Sender {
    async fn serve(
        &mut self,
        mut queue: mpsc::Receiver<Outbound>,
        target: &MqttTarget,
        counters: &Counters,
        shown: &str,
    ) {
        loop {
            tokio::select! {
                next = queue.recv() => {
                    let Some(event) = next else { return };
                    let topic = target.event_topic(event.kind);
                    self.deliver(&topic, event, counters, shown).await;
                }
                note = self.notes.recv() => match note {
                    Some(note) => {
                        self.note(note);
                        self.announce().await;
                    }
                    None => return,
                },
            }
        }
    }

    fn note(&mut self, note: Note) {
        match note {
            Note::Connected => {
                self.connected = true;
                self.announced = false;
            }
            Note::Down(_) => {
                self.connected = false;
                self.announced = false;
            }
            Note::Sent(_) | Note::Acked(_) => {}
        }
    }

    /// Publishes `online` once per connection.
    async fn announce(&mut self) {
        if !self.connected || self.announced {
            return;
        }
        let topic = self.availability.clone();
        match self.publish_acked(&topic, ONLINE.into(), true).await {
            Ok(()) => self.announced = true,
            Err(e) => tracing::debug!(error = %e, "online not acknowledged"),
        }
    }

    /// One event: attempts until the broker acknowledges it or the attempts run out.
    async fn deliver(&mut self, topic: &str, event: Outbound, counters: &Counters, shown: &str) {
        for attempt in 0..self.options.attempts.max(1) {
            if attempt > 0 {
                counters.retried.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(self.options.backoff(attempt - 1)).await;
            }
            let outcome = match self.wait_connected().await {
                Ok(()) => {
                    self.announce().await;
                    self.publish_acked(topic, event.body.to_vec(), false).await
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => {
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(e) => {
                    tracing::debug!(target = %shown, event = %event.id, attempt, error = %e, "MQTT publish failed");
                }
            }
        }
        tracing::warn!(target = %shown, event = %event.id, attempts = self.options.attempts, "event not delivered to the MQTT broker");
        counters.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Waits (up to the timeout) until the connection is up.
    async fn wait_connected(&mut self) -> Result<(), String> {
        while let Ok(note) = self.notes.try_recv() {
            self.note(note);
        }
        let deadline = tokio::time::Instant::now() + self.options.timeout;
        let mut why = "not connected".to_string();
        while !self.connected {
            match tokio::time::timeout_at(deadline, self.notes.recv()).await {
                Err(_) => return Err(format!("broker unreachable: {why}")),
                Ok(None) => return Err("the connection task ended".into()),
                Ok(Some(Note::Down(e))) => {
                    why = e;
                    self.note(Note::Down(why.clone()));
                }
                Ok(Some(note)) => self.note(note),
            }
        }
        Ok(())
    }

    /// Publishes at QoS 1 and waits for the broker's acknowledgement.
    async fn publish_acked(
        &mut self,
        topic: &str,
        payload: Vec<u8>,
        retain: bool,
    ) -> Result<(), String> {
        // Notes of earlier publishes that already arrived must not be taken for this one's.
        while let Ok(note) = self.notes.try_recv() {
            self.note(note);
        }
        if !self.connected {
            return Err("not connected".into());
        }
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + self.options.timeout;
        // This task is the only publisher, so the next publish written out is this one.
        let mut pkid = None;
        loop {
            match tokio::time::timeout_at(deadline, self.notes.recv()).await {
                Err(_) => return Err("no acknowledgement in time".into()),
                Ok(None) => return Err("the connection task ended".into()),
                Ok(Some(Note::Sent(id))) if pkid.is_none() => pkid = Some(id),
                Ok(Some(Note::Acked(id))) if Some(id) == pkid => return Ok(()),
                Ok(Some(note @ (Note::Down(_) | Note::Connected))) => {
                    // The connection dropped (and may be back): this publish is lost with it.
                    let why = match &note {
                        Note::Down(e) => e.clone(),
                        _ => "reconnected".to_string(),
                    };
                    self.note(note);
                    return Err(format!("connection lost before the acknowledgement: {why}"));
                }
                Ok(Some(_)) => {}
            }
        }
    }
}
