//! The recent values of a series by slot, bounded: what a forecast is validated on.

use std::collections::VecDeque;

/// The last `capacity` slots' values (as `f32`: a person is not counted to the
/// millionth), a slot skipped carrying the value before it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    last: Option<i64>,
    values: VecDeque<f32>,
    capacity: usize,
}

impl History {
    pub fn new(capacity: usize) -> Self {
        Self {
            last: None,
            values: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// The value of `slot`; a slot not after the last is ignored. A gap longer than the
    /// whole history starts it anew.
    pub fn push(&mut self, slot: i64, value: f64) {
        if self.last.is_some_and(|last| slot <= last) || !value.is_finite() {
            return;
        }
        if let (Some(last), Some(&carried)) = (self.last, self.values.back()) {
            let gap = (slot - last - 1) as usize;
            if gap >= self.capacity {
                self.values.clear();
            } else {
                self.values.extend(std::iter::repeat_n(carried, gap));
            }
        }
        self.values.push_back(value as f32);
        while self.values.len() > self.capacity {
            self.values.pop_front();
        }
        self.last = Some(slot);
    }

    /// The values, oldest first.
    pub fn values(&self) -> Vec<f64> {
        self.values.iter().map(|&v| f64::from(v)).collect()
    }

    /// The last slot pushed.
    pub fn last(&self) -> Option<i64> {
        self.last
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::History;

    #[test]
    fn gaps_carry_old_slots_are_ignored_and_the_length_is_bounded() {
        let mut h = History::new(5);
        h.push(10, 1.0);
        h.push(12, 3.0);
        h.push(11, 9.0);
        assert_eq!(h.values(), vec![1.0, 1.0, 3.0]);
        h.push(13, 4.0);
        h.push(14, 5.0);
        h.push(15, 6.0);
        assert_eq!(h.values(), vec![1.0, 3.0, 4.0, 5.0, 6.0]);
        h.push(100, 7.0);
        assert_eq!((h.values(), h.last()), (vec![7.0], Some(100)));
    }
}
