//! Interval intersection: which peers' clocks agree (Marzullo, "Maintaining the Time in
//! a Distributed System", 1984; the NTP selection algorithm, RFC 5905 §11.2.1).
//!
//! Each candidate peer contributes a correctness interval `offset ± distance` that
//! contains the true offset if the peer is honest (a *truechimer*). With `n`
//! candidates the algorithm looks for the smallest number `f` of *falsetickers*, `f <
//! n/2`, such that some point lies in at least `n − f` intervals; the intersection of
//! those intervals must contain the truth if a majority is honest. Candidates whose
//! interval does not reach that intersection are falsetickers.

/// One candidate's correctness interval, in microseconds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Interval {
    /// Lower bound of the peer's offset.
    pub low_us: i64,
    /// Upper bound of the peer's offset.
    pub high_us: i64,
}

impl Interval {
    /// `center ± half_width`, saturating at the ends of `i64`.
    pub fn around(center_us: i64, half_width_us: i64) -> Self {
        debug_assert!(half_width_us >= 0);
        Interval { low_us: center_us.saturating_sub(half_width_us), high_us: center_us.saturating_add(half_width_us) }
    }

    /// Whether the two intervals share a point.
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.low_us <= other.high_us && other.low_us <= self.high_us
    }
}

/// The outcome of a successful selection.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Selection {
    /// The intersection that a majority of intervals share.
    pub intersection: Interval,
    /// For each candidate, in input order: whether it is a truechimer.
    pub truechimer: Vec<bool>,
    /// The number of falsetickers the intersection had to allow.
    pub falsetickers_allowed: usize,
}

/// Finds the intersection shared by a majority of `intervals`, or `None` when no
/// point is shared by more than half of them.
pub fn select(intervals: &[Interval]) -> Option<Selection> {
    let count = intervals.len();
    if count == 0 {
        return None;
    }
    // Endpoints sorted by value; at equal values a low end (+1) comes before a high
    // end (−1), so touching intervals count as overlapping.
    let mut endpoints: Vec<(i64, i8)> = Vec::with_capacity(count * 2);
    for interval in intervals {
        assert!(interval.low_us <= interval.high_us, "an interval's ends are ordered");
        endpoints.push((interval.low_us, 1));
        endpoints.push((interval.high_us, -1));
    }
    endpoints.sort_by_key(|&(value, kind)| (value, -kind));
    let mut allowed = 0;
    while 2 * allowed < count {
        let wanted = (count - allowed) as i64;
        let low = sweep(endpoints.iter().copied(), wanted);
        let high = sweep(endpoints.iter().rev().map(|&(value, kind)| (value, -kind)), wanted);
        if let (Some(low_us), Some(high_us)) = (low, high) {
            if low_us <= high_us {
                let intersection = Interval { low_us, high_us };
                let truechimer = intervals.iter().map(|interval| interval.overlaps(&intersection)).collect();
                return Some(Selection { intersection, truechimer, falsetickers_allowed: allowed });
            }
        }
        allowed += 1;
    }
    None
}

/// The first endpoint at which `wanted` intervals are open at once.
fn sweep(endpoints: impl Iterator<Item = (i64, i8)>, wanted: i64) -> Option<i64> {
    let mut open: i64 = 0;
    for (value, kind) in endpoints {
        open += i64::from(kind);
        if open >= wanted {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn around(center: i64, width: i64) -> Interval {
        Interval::around(center, width)
    }

    #[test]
    fn agreeing_intervals_intersect_and_a_liar_is_a_falseticker() {
        let intervals = [around(0, 10), around(5, 10), around(-3, 10), around(3_600_000_000, 10)];
        let selection = select(&intervals).unwrap();
        assert_eq!(selection.truechimer, [true, true, true, false]);
        assert_eq!(selection.intersection, Interval { low_us: -5, high_us: 7 });
        assert_eq!(selection.falsetickers_allowed, 1);
    }

    #[test]
    fn no_majority_means_no_selection() {
        let intervals = [around(0, 10), around(1_000, 10), around(2_000, 10), around(3_000, 10)];
        assert_eq!(select(&intervals), None);
        assert_eq!(select(&[]), None);
        // Two against two: a tie is not a majority.
        assert_eq!(select(&[around(0, 1), around(0, 1), around(100, 1), around(100, 1)]), None);
    }

    #[test]
    fn touching_intervals_overlap() {
        let selection = select(&[around(0, 5), around(10, 5)]).unwrap();
        assert_eq!(selection.intersection, Interval { low_us: 5, high_us: 5 });
        assert!(around(0, 5).overlaps(&around(10, 5)));
        assert!(!around(0, 4).overlaps(&around(10, 5)));
    }
}
