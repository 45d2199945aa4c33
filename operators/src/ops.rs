//! The timely operators, as extension traits on streams of epochs (`u64`): each epoch is
//! one batch the source handed over, and its results are complete when the frontier
//! passes it.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

use crate::aggregate::{Aggregator, StateSize};
use crate::analyze::Analyzer;
use crate::bookings::BookingUsage;
use crate::decode::{Decoder, SchemaSource, Step};
use crate::pause::{Paused, Why};
use crate::HashMap;
use crate::{Decoded, Input, Output};
use rf_schemas::TenantId;

/// Decodes raw records.
pub trait DecodeRecords<'s> {
    /// Decodes and validates records, in their original order; what fails becomes a
    /// [`Decoded::Rejected`] carrying its dead letter. Idle markers pass through.
    ///
    /// A record whose schema id is being fetched waits, and so does every later input of
    /// its tenant, while other tenants' records pass: the tenant is marked in `paused` so
    /// the source stops reading it meanwhile. Waiting records are handed on at a later
    /// epoch, in their order; the held capability follows the input frontier, so nothing
    /// downstream waits for them. When the decoder stops, waiting records are dropped
    /// (they are not committed, and are read again after a restart).
    fn decode_records<S: SchemaSource>(
        self,
        decoder: Decoder<S>,
        paused: Paused,
    ) -> Stream<'s, u64, Vec<Decoded>>;
}

impl<'s> DecodeRecords<'s> for Stream<'s, u64, Vec<Input>> {
    fn decode_records<S: SchemaSource>(
        self,
        mut decoder: Decoder<S>,
        paused: Paused,
    ) -> Stream<'s, u64, Vec<Decoded>> {
        let scope = self.scope();
        self.unary_frontier(Pipeline, "Decode", move |_, info| {
            let activator = scope.activator_for(info.address.clone());
            // A fetch that ends wakes this operator from its thread.
            let wake = scope.worker().sync_activator_for(info.address.to_vec());
            decoder.set_waker(Arc::new(move || {
                let _ = wake.activate();
            }));
            let mut waiting: BTreeMap<TenantId, VecDeque<Input>> = BTreeMap::new();
            let mut held: Option<Capability<u64>> = None;
            move |(input, frontier), output| {
                let arrived = decoder.poll();
                let stopping = decoder.stopping();
                // A decode is one record's work, or its tenant's queue if it must wait.
                let mut decode = |item: Input,
                                  waiting: &mut BTreeMap<TenantId, VecDeque<Input>>|
                 -> Option<Decoded> {
                    if let Some(queue) = waiting.get_mut(item.tenant()) {
                        queue.push_back(item);
                        return None;
                    }
                    match item {
                        Input::Idle { tenant, partition } => {
                            Some(Decoded::Idle { tenant, partition })
                        }
                        Input::Resume(resume) => Some(Decoded::Resume(resume)),
                        Input::Record(record) => match decoder.try_decode(record) {
                            Step::Done(decoded) => Some(decoded.unwrap_or_else(Decoded::Rejected)),
                            Step::Wait(record) => {
                                paused.set(&record.tenant, Why::Schema, true);
                                let tenant = record.tenant.clone();
                                waiting
                                    .entry(tenant)
                                    .or_default()
                                    .push_back(Input::Record(record));
                                None
                            }
                        },
                    }
                };
                // Tenants whose schema came: their queues go on, at the held epoch.
                if arrived {
                    if let Some(cap) = &held {
                        let mut session = output.session(cap);
                        let tenants: Vec<TenantId> = waiting.keys().cloned().collect();
                        for tenant in tenants {
                            let queue = waiting.remove(&tenant).unwrap_or_default();
                            for item in queue {
                                session.give_iterator(decode(item, &mut waiting).into_iter());
                            }
                            if !waiting.contains_key(&tenant) {
                                paused.set(&tenant, Why::Schema, false);
                            }
                        }
                    }
                }
                input.for_each_stamp(|cap, data| {
                    let Some(cap) = cap.retain_least(output.output_index()) else {
                        return;
                    };
                    let mut session = output.session(&cap);
                    for batch in data {
                        for item in batch.drain(..) {
                            session.give_iterator(decode(item, &mut waiting).into_iter());
                        }
                    }
                    drop(session);
                    if !waiting.is_empty() && held.is_none() {
                        held = Some(cap);
                    }
                });
                // The ids of the records next in line are fetched meanwhile.
                for queue in waiting.values() {
                    for item in queue.iter().take(PREFETCH_AHEAD) {
                        if let Input::Record(record) = item {
                            decoder.prefetch(record);
                        }
                    }
                }
                if waiting.is_empty() {
                    held = None;
                } else if stopping {
                    for tenant in std::mem::take(&mut waiting).into_keys() {
                        paused.set(&tenant, Why::Schema, false);
                    }
                    held = None;
                } else {
                    // Hold no epoch the source has passed: downstream goes on.
                    if let (Some(cap), Some(&next)) = (held.as_mut(), frontier.frontier().first()) {
                        if next > *cap.time() {
                            cap.downgrade(&next);
                        }
                    }
                    // Fetches wake this operator when they end; this is a safety net.
                    activator.activate_after(Duration::from_millis(100));
                }
            }
        })
    }
}

/// Records at the head of a waiting tenant's queue whose schema ids are fetched ahead.
const PREFETCH_AHEAD: usize = 256;

/// Aggregates decoded events into windows.
pub trait Aggregate<'s> {
    /// Returns, for each completed epoch, the row revisions, live state, late and
    /// unknown-room dead letters and checkpoints that the epoch's events produced. The
    /// operator owns `aggregator`; partitions resume from [`Decoded::Resume`] events in
    /// the input, and `view` shows the rest of the worker its watermarks and size.
    fn aggregate(self, aggregator: Aggregator, view: AggregateView)
        -> Stream<'s, u64, Vec<Output>>;
}

impl<'s> Aggregate<'s> for Stream<'s, u64, Vec<Decoded>> {
    fn aggregate(
        self,
        mut aggregator: Aggregator,
        view: AggregateView,
    ) -> Stream<'s, u64, Vec<Output>> {
        let scope = self.scope();
        self.unary_frontier(Pipeline, "Aggregate", move |_, info| {
            let activator = scope.activator_for(info.address.clone());
            let mut stash = BTreeMap::new();
            // While revisions wait (a backlog, see `AggregateConfig::revision_interval_ms`):
            // a capability following the input frontier to write them at, and when.
            let mut held: Option<(Capability<u64>, Instant)> = None;
            move |(input, frontier), output| {
                input.for_each_stamp(|cap, data| {
                    if let Some(cap) = cap.retain_least(output.output_index()) {
                        let (_, events): &mut (_, Vec<Decoded>) = stash
                            .entry(*cap.time())
                            .or_insert_with(|| (cap, Vec::new()));
                        for batch in data {
                            events.append(batch);
                        }
                    }
                });
                // Epochs are applied whole and in order, so that each partition's events
                // are seen in offset order and the results do not depend on batching.
                let mut applied = false;
                while let Some(entry) = stash.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let (cap, events) = entry.remove();
                    let mut out = Vec::new();
                    for event in events {
                        aggregator.apply(event, &mut out);
                    }
                    aggregator.flush(&mut out);
                    output.session(&cap).give_iterator(out.into_iter());
                    if held.is_none() && aggregator.deferred() {
                        let due = Instant::now() + aggregator.revision_interval();
                        held = Some((cap, due));
                    }
                    applied = true;
                }
                let next = frontier.frontier().first().copied();
                if applied || next.is_none() {
                    view.update(&aggregator, next.is_none());
                }
                let Some((cap, due)) = held.as_mut() else {
                    return;
                };
                // The input ended, or the interval passed: the waiting revisions go.
                if next.is_none() || Instant::now() >= *due {
                    let mut out = Vec::new();
                    aggregator.flush_revisions(&mut out);
                    output.session(&*cap).give_iterator(out.into_iter());
                    held = None;
                    return;
                }
                if !aggregator.deferred() {
                    held = None;
                    return;
                }
                // Hold no epoch the source has passed: downstream goes on.
                if let Some(next) = next.filter(|next| next > cap.time()) {
                    cap.downgrade(&next);
                }
                activator.activate_after(due.saturating_duration_since(Instant::now()));
            }
        })
    }
}

/// What the aggregation shows the rest of its worker: each partition's watermark as of
/// the last epoch applied (a backfill's source stops reading a partition by it), and the
/// size of its state (memory reports), at most a second old and exact once the input
/// ended. Only the operator writes it.
#[derive(Clone, Debug, Default)]
pub struct AggregateView(Rc<RefCell<View>>);

#[derive(Debug, Default)]
struct View {
    watermarks: HashMap<(TenantId, i32), i64>,
    size: StateSize,
    sized_at: Option<Instant>,
}

/// How often the view counts the state's size while the input runs.
const SIZE_EVERY: Duration = Duration::from_secs(1);

impl AggregateView {
    fn update(&self, aggregator: &Aggregator, ended: bool) {
        let mut view = self.0.borrow_mut();
        aggregator.watermarks_into(&mut view.watermarks);
        if ended || view.sized_at.is_none_or(|at| at.elapsed() >= SIZE_EVERY) {
            view.size = aggregator.size();
            view.sized_at = Some(Instant::now());
        }
    }

    /// The watermark of `tenant`'s `partition`, once the aggregation has seen it.
    pub fn watermark(&self, tenant: &TenantId, partition: i32) -> Option<i64> {
        let view = self.0.borrow();
        view.watermarks.get(&(tenant.clone(), partition)).copied()
    }

    /// Every partition's watermark: (tenant, partition, watermark).
    pub fn watermarks(&self) -> Vec<(TenantId, i32, i64)> {
        let view = self.0.borrow();
        let mut all: Vec<_> = view
            .watermarks
            .iter()
            .map(|((t, p), w)| (t.clone(), *p, *w))
            .collect();
        all.sort();
        all
    }

    /// What the aggregation held (see the type's note on how fresh it is).
    pub fn size(&self) -> StateSize {
        self.0.borrow().size
    }
}

/// Finds anomalies and issues forecasts.
pub trait Analyze<'s> {
    /// Returns the aggregation's outputs (final readings only if kept), each epoch's with
    /// the anomalies, forecasts and model states they led to.
    fn analyze(self, analyzer: Analyzer) -> Stream<'s, u64, Vec<Output>>;
}

impl<'s> Analyze<'s> for Stream<'s, u64, Vec<Output>> {
    fn analyze(self, mut analyzer: Analyzer) -> Stream<'s, u64, Vec<Output>> {
        // The aggregation hands over each epoch whole and in order, so outputs are read
        // as they come.
        self.unary(Pipeline, "Analyze", move |_, _| {
            move |input, output| {
                input.for_each(|cap, data| {
                    let mut out = Vec::new();
                    for output in data.drain(..) {
                        analyzer.apply(output, &mut out);
                    }
                    analyzer.flush(&mut out);
                    output.session(&cap).give_iterator(out.into_iter());
                });
            }
        })
    }
}

/// Sets bookings against occupancy.
pub trait Book<'s> {
    /// Returns the aggregation's outputs, bookings consumed, each epoch's with the
    /// booked-versus-used rows it made final or revised.
    fn book(self, usage: BookingUsage) -> Stream<'s, u64, Vec<Output>>;
}

impl<'s> Book<'s> for Stream<'s, u64, Vec<Output>> {
    fn book(self, mut usage: BookingUsage) -> Stream<'s, u64, Vec<Output>> {
        // Like the analysis: each epoch comes whole and in order.
        self.unary(Pipeline, "Book", move |_, _| {
            move |input, output| {
                input.for_each(|cap, data| {
                    let mut out = Vec::new();
                    for o in data.drain(..) {
                        usage.apply(o, &mut out);
                    }
                    usage.flush(&mut out);
                    output.session(&cap).give_iterator(out.into_iter());
                });
            }
        })
    }
}

/// The operators of the computation, with their state.
pub struct Computation<S: SchemaSource> {
    /// Decodes records.
    pub decoder: Decoder<S>,
    /// Tenants whose reading is paused (the decoder marks those waiting for a schema).
    pub paused: Paused,
    /// The windows' state, owned by their operator.
    pub aggregator: Aggregator,
    /// What the aggregation shows the rest of the worker.
    pub view: AggregateView,
    /// Anomalies and forecasts; `None` for a backfill, which rewrites windows only.
    pub analyzer: Option<crate::analyze::Analyzer>,
    /// Bookings against occupancy; `None` for a backfill.
    pub bookings: Option<BookingUsage>,
}

/// The computation every run shares (the live pipeline, backfills, the benchmarks):
/// decode and validate, event-time windows, bookings against them, then anomalies and
/// forecasts.
pub fn compute<'s, S: SchemaSource>(
    records: Stream<'s, u64, Vec<Input>>,
    parts: Computation<S>,
) -> Stream<'s, u64, Vec<Output>> {
    let windows = records
        .decode_records(parts.decoder, parts.paused)
        .aggregate(parts.aggregator, parts.view);
    let windows = match parts.bookings {
        Some(usage) => windows.book(usage),
        None => windows,
    };
    match parts.analyzer {
        Some(analyzer) => windows.analyze(analyzer),
        None => windows,
    }
}
