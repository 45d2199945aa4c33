//! The decode operator when one tenant's schema id cannot be fetched yet: the other
//! tenant's records pass at once, the epochs go on (the waiting tenant holds no
//! frontier back), the waiting tenant is paused, and once the registry answers its
//! records come out in their order.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex};

use timely::dataflow::operators::{Input as _, Inspect, Probe};
use timely::dataflow::{InputHandleVec, ProbeHandle};

use rf_operators::{
    DecodeRecords, Decoded, Decoder, Input, Paused, RawRecord, SchemaSource, Topic,
};
use rf_schemas::framing::frame_header;
use rf_schemas::registry::RegistryError;
use rf_schemas::{Reading, TenantId, OCCUPANCY_READING_AVSC};

/// A registry whose id 2 answers only once the gate opens (id 1 always does).
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }
}

impl SchemaSource for Gate {
    fn fetch(&self, id: u32) -> Result<String, RegistryError> {
        if id == 2 {
            let mut open = self.0 .0.lock().unwrap();
            while !*open {
                open = self.0 .1.wait(open).unwrap();
            }
        }
        match id {
            1 | 2 => Ok(OCCUPANCY_READING_AVSC.into()),
            _ => Err(RegistryError::UnknownId(id)),
        }
    }
}

fn record(tenant: &TenantId, offset: i64, schema_id: u32) -> Input {
    let ts = 1_700_000_000_000 + offset * 60_000;
    let reading = Reading {
        sensor_id: "s".into(),
        office_id: "lon".into(),
        room_id: "r".into(),
        ts,
        people_count: 1,
        temperature: None,
        humidity: None,
        co2_ppm: None,
        battery_pct: None,
    };
    let mut value = Vec::new();
    frame_header(schema_id, &mut value);
    reading.encode_v1(&mut value);
    Input::Record(RawRecord {
        tenant: tenant.clone(),
        topic: Topic::Readings,
        partition: 0,
        offset,
        timestamp: ts,
        received: ts,
        key: Some(b"lon".to_vec()),
        value: Some(value),
    })
}

#[test]
fn a_waiting_tenant_holds_back_only_itself_and_keeps_its_order() {
    timely::execute_directly(|worker| {
        let (a, b) = (
            TenantId::parse("alpha").unwrap(),
            TenantId::parse("beta").unwrap(),
        );
        let gate = Gate::default();
        let paused = Paused::default();
        let seen: Rc<RefCell<Vec<(TenantId, i64)>>> = Rc::default();
        let mut input = InputHandleVec::<u64, Input>::new();
        let probe = ProbeHandle::new();
        let (out, decoder, p) = (seen.clone(), Decoder::new(gate.clone()), paused.clone());
        worker.dataflow::<u64, _, _>(|scope| {
            scope
                .input_from(&mut input)
                .decode_records(decoder, p)
                .inspect(move |d| match d {
                    Decoded::Reading(r) => out
                        .borrow_mut()
                        .push((r.record.tenant.clone(), r.record.offset)),
                    other => panic!("every record decodes: {other:?}"),
                })
                .probe_with(&probe);
        });
        let of = |t: &TenantId| -> Vec<i64> {
            let seen = seen.borrow();
            seen.iter()
                .filter(|(x, _)| x == t)
                .map(|(_, o)| *o)
                .collect()
        };
        let mut step_until = |done: &dyn Fn() -> bool| {
            for _ in 0..100_000 {
                if done() {
                    return;
                }
                worker.step();
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
            panic!("the dataflow did not get there");
        };

        // Epoch 0: id 1 gets known (a first id waits for its fetch too).
        input.send(record(&a, 0, 1));
        input.advance_to(1);
        step_until(&|| of(&a) == [0]);

        // Epoch 1: beta's first record needs id 2, which hangs.
        for r in [
            record(&a, 1, 1),
            record(&b, 0, 2),
            record(&a, 2, 1),
            record(&b, 1, 1),
        ] {
            input.send(r);
        }
        input.advance_to(2);
        step_until(&|| !probe.less_than(&2));
        assert_eq!(of(&a), [0, 1, 2], "alpha passes");
        assert!(of(&b).is_empty(), "beta waits, its later record too");
        assert!(paused.contains(&b) && !paused.contains(&a));

        // Epoch 2 completes while beta still waits.
        input.send(record(&a, 3, 1));
        input.send(record(&b, 2, 1));
        input.advance_to(3);
        step_until(&|| !probe.less_than(&3));
        assert_eq!(of(&a), [0, 1, 2, 3]);
        assert!(of(&b).is_empty());

        // The registry answers: beta's records come out, in order.
        gate.open();
        step_until(&|| of(&b).len() == 3);
        assert_eq!(of(&b), [0, 1, 2]);
        assert!(paused.is_empty());
        drop(input);
        step_until(&|| probe.done());
    });
}
