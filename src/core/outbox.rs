//! Delivery of stored events to the configured sinks ([`crate::outbox`]), driven by the store's
//! alarm so that it never runs inside a push: a stored batch only makes sure an alarm is set,
//! and the alarm sends what is due, batch after batch, each sink from its own stored cursor.
//!
//! A sink's state is written only after its answer, and only if no admin action wrote it in
//! between (a version check), so a resume or skip during a delivery is never undone by it.

use std::cell::Cell;

use super::{Core, Error, Host};
use crate::hooks::SyncHooks;
use crate::log::Level;
use crate::outbox::{self, SinkActionError, SinkConfig, SinkState};
use crate::storage::{EventLog, StorageError};
use crate::util::json::push_str_literal;
use crate::util::time::iso8601_from_millis;

/// Most batches one sink sends in one alarm; the alarm is then set again at once, so a long
/// backlog never holds one alarm handler for long.
const BATCHES_PER_ALARM: usize = 50;

/// Most events one batch's collection reads past unwanted ones before it sends what it has
/// (or, with nothing wanted, just moves the cursor).
const SCAN_PER_BATCH: usize = 5_000;

/// How soon an alarm whose storage failed looks again.
const STORAGE_RETRY_MS: i64 = 5_000;

/// What the core remembers of the store's alarm between events.
#[derive(Default)]
pub(super) struct AlarmState {
    /// The alarm known to be set, if any: `None` also after a wake, when it is not known.
    set_for: Cell<Option<i64>>,
    /// Whether `set_for` is known: since this object last set its alarm or ran it.
    known: Cell<bool>,
    /// No sink can send before this time (the earliest retry wait; `i64::MAX` while every sink
    /// is paused); 0 when unknown.
    ready_at: Cell<i64>,
}

/// A sink's state as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkStatus {
    /// The stored state.
    pub state: SinkState,
    /// `webhook` or `queue`.
    pub kind: &'static str,
    /// Events stored after the cursor.
    pub backlog: u64,
    /// When the next attempt is due: `None` while paused or with nothing to send.
    pub next_attempt_at: Option<i64>,
}

impl SinkStatus {
    /// The admin API's JSON of the sink.
    pub fn to_json(&self) -> String {
        let s = &self.state;
        let mut out = String::from("{\"sink\":");
        push_str_literal(&mut out, &s.sink);
        out.push_str(&format!(
            ",\"kind\":\"{}\",\"cursor\":{},\"backlog\":{},\"delivered\":{},\"attempts\":{},\"paused\":{},\"lastError\":",
            self.kind, s.cursor, self.backlog, s.delivered, s.attempts, s.paused
        ));
        match &s.last_error {
            Some(e) => push_str_literal(&mut out, e),
            None => out.push_str("null"),
        }
        out.push_str(&format!(
            ",\"lastAttemptAt\":{},\"nextAttemptAt\":{}}}",
            iso_or_null(s.last_attempt_at),
            iso_or_null(self.next_attempt_at),
        ));
        out
    }
}

impl OutboxStatus {
    /// The admin API's JSON of a store's outbox.
    pub fn to_json(&self, store_id: &str) -> String {
        let mut out = String::from("{\"storeId\":");
        push_str_literal(&mut out, store_id);
        out.push_str(&format!(",\"head\":{},\"sinks\":[", self.head));
        for (i, sink) in self.sinks.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&sink.to_json());
        }
        out.push_str("]}");
        out
    }
}

/// The outbox of a store as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxStatus {
    /// The store's head.
    pub head: i64,
    /// Each configured sink's status.
    pub sinks: Vec<SinkStatus>,
}

/// Why an admin action on a sink failed.
#[derive(Debug)]
pub enum SinkActionFailure {
    /// The request names no such sink, or an impossible cursor.
    Refused(SinkActionError),
    /// Storage failed.
    Storage(Error),
}

impl From<Error> for SinkActionFailure {
    fn from(e: Error) -> Self {
        SinkActionFailure::Storage(e)
    }
}

impl From<StorageError> for SinkActionFailure {
    fn from(e: StorageError) -> Self {
        SinkActionFailure::Storage(e.into())
    }
}

/// The sink a name refers to.
fn sink_named<'c>(sinks: &'c [SinkConfig], name: &str) -> Result<&'c SinkConfig, SinkActionError> {
    sinks
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| SinkActionError::UnknownSink(format!("no sink named {name:?} is configured")))
}

impl<L: EventLog + 'static, X: Host + 'static, H: SyncHooks> Core<L, X, H> {
    /// Records every configured sink for a store being opened (its cursor at `head` when new).
    pub(super) async fn open_outbox(&self, log: &L, head: i64) -> Result<(), StorageError> {
        if self.config.sinks.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = self.config.sinks.iter().map(|s| s.name).collect();
        log.open_outbox(&names, head).await
    }

    /// A batch was stored: makes sure an alarm comes to deliver it, unless one is already due
    /// no later than any sink could send.
    pub(super) fn outbox_due(&self) {
        if self.config.sinks.is_empty() {
            return;
        }
        let ready_at = self.alarm.ready_at.get();
        if ready_at == i64::MAX {
            // Every sink is paused: an alarm would find nothing to do.
            return;
        }
        let want = self.host.now_millis().max(ready_at);
        if self.alarm.set_for.get().is_some_and(|at| at <= want) {
            return;
        }
        self.set_alarm(want);
    }

    fn set_alarm(&self, at: i64) {
        self.alarm.set_for.set(Some(at));
        self.alarm.known.set(true);
        self.host.set_alarm(at);
    }

    /// Makes sure the object's alarm comes at `at` (ms) or sooner, for a duty of the object's
    /// own (a socket whose token runs out then). The object has one alarm, and setting it
    /// replaces the one set before; when this object does not know that one (after a wake) the
    /// alarm comes now instead, and the alarm handler sets it again for every duty.
    pub fn alarm_by(&self, at: i64) {
        if !self.alarm.known.get() {
            self.set_alarm(self.host.now_millis().min(at));
        } else if self.alarm.set_for.get().is_none_or(|set| set > at) {
            self.set_alarm(at);
        }
    }

    /// The alarm is running: none is set now.
    pub fn alarm_fired(&self) {
        self.alarm.set_for.set(None);
        self.alarm.known.set(true);
    }

    /// The store's alarm: sends each sink what is due, then sets the alarm for the next due
    /// attempt (none when every sink is caught up or paused).
    pub async fn run_outbox(&self, store_id: &str) -> Result<(), Error> {
        self.alarm_fired();
        if self.config.sinks.is_empty() {
            return Ok(());
        }
        let states = async {
            let (_, log) = self.open(store_id).await?;
            let states = log.outbox().await?;
            Ok::<_, Error>((log, states))
        }
        .await;
        self.forget_store_on_storage_error(&states);
        let (log, states) = match states {
            Ok(found) => found,
            Err(e) => {
                // Storage may be back soon; the events wait for it, not for the next push.
                self.set_alarm(self.host.now_millis() + STORAGE_RETRY_MS);
                return Err(e);
            }
        };
        let mut next: Option<i64> = None;
        let mut ready_at = i64::MAX;
        for sink in &self.config.sinks {
            let Some(state) = states.iter().find(|s| s.sink == sink.name) else {
                // Not recorded (yet): the next stored batch arms the alarm as for a new sink.
                ready_at = 0;
                continue;
            };
            let ran = self.run_sink(store_id, sink, state.clone(), &log).await;
            self.forget_store_on_storage_error(&ran);
            let (due, ready) = ran.unwrap_or_else(|_| (Some(self.host.now_millis() + STORAGE_RETRY_MS), 0));
            ready_at = ready_at.min(ready);
            next = match (next, due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        self.alarm.ready_at.set(ready_at);
        // A batch stored during this run may have armed an earlier alarm (for a sink this run
        // had already seen caught up): that one stands.
        let armed_meanwhile = self.alarm.set_for.get();
        match (next, armed_meanwhile) {
            (Some(at), Some(armed)) if armed <= at => {}
            (Some(at), _) => self.set_alarm(at),
            (None, _) => {}
        }
        Ok(())
    }

    /// Sends one sink its due batches. Returns when it next wants the alarm, and from when it
    /// could send a new batch (`i64::MAX` while paused).
    async fn run_sink(
        &self,
        store_id: &str,
        sink: &SinkConfig,
        mut state: SinkState,
        log: &L,
    ) -> Result<(Option<i64>, i64), Error> {
        for _ in 0..BATCHES_PER_ALARM {
            let now = self.host.now_millis();
            if state.paused {
                return Ok((None, i64::MAX));
            }
            if state.next_at > now {
                return Ok((Some(state.next_at), state.next_at));
            }
            let Some((head, backend_id)) = self.store_head() else {
                return Ok((Some(now), 0));
            };
            if state.cursor >= head {
                return Ok((None, 0));
            }
            let until = state.pending_to.unwrap_or(head);
            let (events, scanned_to) = self.collect(store_id, sink, state.cursor, until, log).await?;
            let Some((first, last)) = events.first().zip(events.last()).map(|(f, l)| (f.0, l.0)) else {
                // Nothing wanted up to `scanned_to`: the cursor moves past it unsent.
                state.cursor = scanned_to.max(state.cursor);
                if !self.save_sink(log, &mut state).await? {
                    return Ok((Some(now), 0));
                }
                continue;
            };
            let count = events.len() as i64;
            let jsons: Vec<String> = events.into_iter().map(|(_, json)| json).collect();
            let body = outbox::batch_body(store_id, sink.name, &backend_id, &jsons);
            let attempt = state.attempts + 1;
            let message = outbox::message(sink, store_id, (first, last), attempt, now, body);
            let answer = self.host.send_to_sink(sink, message).await;
            let done = self.host.now_millis();
            let (status, failure) = match answer {
                Ok(Some(status)) if (200..300).contains(&status) => (Some(status), None),
                Ok(status @ Some(code)) => (status, Some(format!("HTTP {code}"))),
                Ok(None) => (None, None),
                Err(error) => (None, Some(error)),
            };
            state.last_attempt_at = Some(now);
            let line = self.config.log_level.line(
                match &failure {
                    None => Level::Info,
                    Some(_) if attempt >= sink.max_attempts => Level::Error,
                    Some(_) => Level::Warn,
                },
                "deliver",
            );
            let line = line.map(|l| {
                l.str("storeId", store_id)
                    .str("sink", sink.name)
                    .int("from", first)
                    .int("to", last)
                    .int("events", count)
                    .int("attempt", i64::from(attempt))
                    .int("ms", done - now)
            });
            let line = line.map(|l| match status {
                Some(status) => l.int("status", i64::from(status)),
                None => l,
            });
            match failure {
                None => {
                    state.cursor = scanned_to;
                    state.delivered += count;
                    state.attempts = 0;
                    state.last_error = None;
                    state.next_at = 0;
                    state.pending_to = None;
                    if let Some(line) = line {
                        self.host.log(line.str("outcome", "delivered"));
                    }
                }
                Some(error) => {
                    state.pending_to = Some(scanned_to);
                    state.attempts = attempt;
                    state.paused = attempt >= sink.max_attempts;
                    let wait = sink.retry_delay_ms(attempt);
                    state.next_at = if state.paused { 0 } else { done + wait as i64 };
                    if let Some(line) = line {
                        let line = line
                            .str("outcome", if state.paused { "paused" } else { "failed" })
                            .str("error", &error);
                        self.host.log(if state.paused {
                            line
                        } else {
                            line.int("retryInMs", wait as i64)
                        });
                    }
                    state.last_error = Some(error);
                }
            }
            if !self.save_sink(log, &mut state).await? {
                // An admin action wrote the sink meanwhile: its state stands; look again now.
                return Ok((Some(self.host.now_millis()), 0));
            }
        }
        Ok((Some(self.host.now_millis()), 0))
    }

    /// The store's head and backendId as this object holds them.
    fn store_head(&self) -> Option<(i64, String)> {
        self.store
            .borrow()
            .as_ref()
            .map(|open| (open.meta.head, open.meta.backend_id.clone()))
    }

    /// Up to a batch of the events `sink` wants after `cursor` and up to `until`, as
    /// `(seqNum, JSON)`, and the `seqNum` the collection read up to (the cursor once they are
    /// delivered).
    async fn collect(
        &self,
        store_id: &str,
        sink: &SinkConfig,
        cursor: i64,
        until: i64,
        log: &L,
    ) -> Result<(Vec<(i64, String)>, i64), Error> {
        let mut events = Vec::new();
        let mut bytes = 0;
        let mut scanned = 0;
        let mut after = cursor;
        let budget = sink.max_body_bytes();
        'read: while events.len() < sink.batch_size && scanned < SCAN_PER_BATCH && after < until {
            let mut items = log.read_after(Some(after), sink.batch_size - events.len()).await?;
            items.retain(|item| item.seq_num <= until);
            if items.is_empty() {
                break;
            }
            for item in &items {
                let wanted = outbox::item_name(item).is_some_and(|name| sink.events.wants(&name));
                if let Some(json) = wanted.then(|| outbox::event_json(store_id, item)).flatten() {
                    if !events.is_empty() && bytes + json.len() > budget {
                        // The rest waits for the next batch; the cursor stops before it.
                        break 'read;
                    }
                    let json = match json.len() > budget {
                        true => outbox::without_args(&json).unwrap_or(json),
                        false => json,
                    };
                    bytes += json.len() + 1;
                    events.push((item.seq_num, json));
                }
                after = item.seq_num;
                scanned += 1;
            }
        }
        Ok((events, after))
    }

    /// Writes a sink's state; `false` when an admin action wrote it since it was read.
    async fn save_sink(&self, log: &L, state: &mut SinkState) -> Result<bool, Error> {
        let saved = log.save_sink(state).await?;
        if saved {
            state.version += 1;
        }
        Ok(saved)
    }

    /// The store's outbox: each configured sink's cursor, backlog, failures and next attempt.
    pub async fn outbox_status(&self, store_id: &str) -> Result<OutboxStatus, Error> {
        let result = async {
            let (meta, log) = self.open(store_id).await?;
            let states = log.outbox().await?;
            let mut sinks = Vec::new();
            for sink in &self.config.sinks {
                if let Some(state) = states.iter().find(|s| s.sink == sink.name) {
                    sinks.push(self.sink_status(&log, sink, state.clone()).await?);
                }
            }
            Ok(OutboxStatus { head: meta.head, sinks })
        }
        .await;
        self.forget_store_on_storage_error(&result);
        result
    }

    async fn sink_status(&self, log: &L, sink: &SinkConfig, state: SinkState) -> Result<SinkStatus, Error> {
        let backlog = log.count_after(Some(state.cursor)).await?;
        let next_attempt_at = (!state.paused && backlog > 0).then(|| state.next_at.max(self.host.now_millis()));
        Ok(SinkStatus {
            next_attempt_at,
            kind: match sink.target {
                outbox::Target::Webhook { .. } => "webhook",
                outbox::Target::Queue { .. } => "queue",
            },
            backlog,
            state,
        })
    }

    /// Resumes a sink (paused or waiting to retry): its failures are forgotten and it is due now.
    pub async fn outbox_resume(&self, store_id: &str, sink: &str) -> Result<SinkStatus, SinkActionFailure> {
        self.change_sink(store_id, sink, None).await
    }

    /// Moves a sink's cursor to `to` (the head when `None`) and resumes it; a cursor lower than
    /// the current one delivers those events again.
    pub async fn outbox_skip(
        &self,
        store_id: &str,
        sink: &str,
        to: Option<i64>,
    ) -> Result<SinkStatus, SinkActionFailure> {
        self.change_sink(store_id, sink, Some(to)).await
    }

    async fn change_sink(
        &self,
        store_id: &str,
        name: &str,
        skip: Option<Option<i64>>,
    ) -> Result<SinkStatus, SinkActionFailure> {
        let sink = sink_named(&self.config.sinks, name).map_err(SinkActionFailure::Refused)?;
        let result = async {
            let (meta, log) = self.open(store_id).await?;
            // Another write may come between the read and this one (a delivery's answer): read again.
            for _ in 0..3 {
                let states = log.outbox().await?;
                let Some(mut state) = states.into_iter().find(|s| s.sink == name) else {
                    break;
                };
                if let Some(to) = skip {
                    let to = to.unwrap_or(meta.head);
                    if !(0..=meta.head).contains(&to) {
                        return Err(SinkActionFailure::Refused(SinkActionError::InvalidSkip(format!(
                            "to must be a seqNum from 0 to the store's head ({})",
                            meta.head
                        ))));
                    }
                    state.cursor = to;
                    state.pending_to = None;
                }
                state.attempts = 0;
                state.paused = false;
                state.next_at = 0;
                if self.save_sink(&log, &mut state).await? {
                    self.log_sink_action(store_id, name, skip.is_some(), state.cursor);
                    self.alarm.ready_at.set(0);
                    self.set_alarm(self.host.now_millis());
                    return Ok(self.sink_status(&log, sink, state).await?);
                }
            }
            Err(SinkActionFailure::Storage(Error::storage(
                "the sink's state kept changing; try again",
            )))
        }
        .await;
        if let Err(SinkActionFailure::Storage(e)) = &result {
            self.forget_store_after(e);
        }
        result
    }

    fn log_sink_action(&self, store_id: &str, sink: &str, skipped: bool, cursor: i64) {
        if let Some(line) = self.config.log_level.line(Level::Info, "outbox") {
            self.host.log(
                line.str("storeId", store_id)
                    .str("sink", sink)
                    .str("action", if skipped { "skip" } else { "resume" })
                    .int("cursor", cursor),
            );
        }
    }

    /// After a reset: every sink starts again from the new, empty log.
    pub(super) async fn outbox_after_reset(&self, log: &L) -> Result<(), StorageError> {
        if self.config.sinks.is_empty() {
            return Ok(());
        }
        // A pause is lifted, so the next stored batch must arm the alarm again.
        self.alarm.ready_at.set(0);
        for mut state in log.outbox().await? {
            state.cursor = 0;
            state.pending_to = None;
            state.paused = false;
            state.attempts = 0;
            state.next_at = 0;
            state.last_error = None;
            log.save_sink(&state).await?;
        }
        Ok(())
    }
}

/// A time for the admin API (`null` when there is none).
fn iso_or_null(millis: Option<i64>) -> String {
    match millis {
        Some(ms) => format!("\"{}\"", iso8601_from_millis(ms)),
        None => "null".to_owned(),
    }
}
