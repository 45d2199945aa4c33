//! The timely operators, as extension traits on streams of epochs (`u64`): each epoch is
//! one batch the source handed over, and its results are complete when the frontier
//! passes it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::Stream;

use crate::aggregate::Aggregator;
use crate::analyze::Analyzer;
use crate::decode::{Decoder, SchemaSource};
use crate::records::{Decoded, Input, Output};

/// Decodes raw records.
pub trait DecodeRecords<'s> {
    /// Decodes and validates records, in their original order; what fails becomes a
    /// [`Decoded::Rejected`] carrying its dead letter. Idle markers pass through.
    fn decode_records<S: SchemaSource + 'static>(
        self,
        decoder: Decoder<S>,
    ) -> Stream<'s, u64, Vec<Decoded>>;
}

impl<'s> DecodeRecords<'s> for Stream<'s, u64, Vec<Input>> {
    fn decode_records<S: SchemaSource + 'static>(
        self,
        mut decoder: Decoder<S>,
    ) -> Stream<'s, u64, Vec<Decoded>> {
        self.map(move |input| match input {
            Input::Record(record) => decoder.decode(record).unwrap_or_else(Decoded::Rejected),
            Input::Idle { tenant, partition } => Decoded::Idle { tenant, partition },
        })
    }
}

/// Aggregates decoded events into windows.
pub trait Aggregate<'s> {
    /// Returns, for each completed epoch, the row revisions, live state, late and
    /// unknown-room dead letters and checkpoints that the epoch's events produced.
    fn aggregate(self, aggregator: Rc<RefCell<Aggregator>>) -> Stream<'s, u64, Vec<Output>>;
}

impl<'s> Aggregate<'s> for Stream<'s, u64, Vec<Decoded>> {
    fn aggregate(self, aggregator: Rc<RefCell<Aggregator>>) -> Stream<'s, u64, Vec<Output>> {
        self.unary_frontier(Pipeline, "Aggregate", move |_, _| {
            let mut stash = BTreeMap::new();
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
                while let Some(entry) = stash.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let (cap, events) = entry.remove();
                    let mut out = Vec::new();
                    let mut aggregator = aggregator.borrow_mut();
                    for event in events {
                        aggregator.apply(event, &mut out);
                    }
                    aggregator.flush(&mut out);
                    output.session(&cap).give_iterator(out.into_iter());
                }
            }
        })
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
