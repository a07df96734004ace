//! Whose clock the pattern's capture times are on: the publisher announces its media clock's
//! epoch (an attribute, or a file on this machine), and the best source known wins.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::decode::Shared;

/// The participant attribute in which a live studio announces its media clock's epoch
/// (Unix µs, decimal): the pattern's capture times plus it are wall-clock times.
pub const CLOCK_EPOCH_ATTRIBUTE: &str = "streamit.mediaClockEpochUs";

/// The attributes announcing `epoch` (see [`CLOCK_EPOCH_ATTRIBUTE`]); none for an epoch
/// before 1970.
pub fn clock_epoch_attributes(epoch: SystemTime) -> HashMap<String, String> {
    epoch
        .duration_since(UNIX_EPOCH)
        .map(|d| HashMap::from([(CLOCK_EPOCH_ATTRIBUTE.to_string(), d.as_micros().to_string())]))
        .unwrap_or_default()
}

/// The epoch a publisher announced in its attributes, if any (and well-formed).
pub fn clock_epoch_from(attributes: &HashMap<String, String>) -> Option<SystemTime> {
    let us: u64 = attributes.get(CLOCK_EPOCH_ATTRIBUTE)?.trim().parse().ok()?;
    (us > 0).then(|| UNIX_EPOCH + Duration::from_micros(us))
}

/// Where the epoch comes from, best first: the caller's, the creator's attribute (any
/// machine), the clock file (a CLI `publish` on this machine, e.g. one whose backend does
/// not grant `canUpdateOwnMetadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum EpochSource {
    File,
    Attribute,
    Given,
}

impl EpochSource {
    pub(super) fn name(self) -> &'static str {
        match self {
            EpochSource::File => "publisher-file",
            EpochSource::Attribute => "attribute",
            EpochSource::Given => "given",
        }
    }
}

/// The epoch in use and its source; a better source replaces a worse one.
#[derive(Default)]
pub(super) struct EpochChoice {
    pub(super) source: Option<EpochSource>,
}

impl EpochChoice {
    pub(super) fn offer(&mut self, shared: &Shared, epoch: SystemTime, source: EpochSource) {
        if self.source.is_some_and(|s| s > source) {
            return;
        }
        let Ok(us) = epoch.duration_since(UNIX_EPOCH) else {
            return;
        };
        let us = us.as_micros() as u64;
        let old = shared.epoch_us.swap(us, Ordering::AcqRel);
        if old != 0 && old != us {
            tracing::info!(old, new = us, ?source, "publisher clock epoch changed");
        }
        self.source = Some(source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_clock_epoch_attribute_round_trips_in_microseconds() {
        let epoch = UNIX_EPOCH + Duration::from_micros(1_764_050_000_123_456);
        let attrs = clock_epoch_attributes(epoch);
        assert_eq!(
            attrs.get(CLOCK_EPOCH_ATTRIBUTE).map(String::as_str),
            Some("1764050000123456")
        );
        assert_eq!(clock_epoch_from(&attrs), Some(epoch));
        let bad = |v: &str| HashMap::from([(CLOCK_EPOCH_ATTRIBUTE.to_string(), v.to_string())]);
        assert_eq!(clock_epoch_from(&bad("")), None, "deleted attribute");
        assert_eq!(clock_epoch_from(&bad("soon")), None);
        assert_eq!(clock_epoch_from(&HashMap::new()), None);
    }

    #[test]
    fn a_better_epoch_source_replaces_a_worse_one_but_not_the_reverse() {
        let shared = Shared::default();
        let at = |us| UNIX_EPOCH + Duration::from_micros(us);
        let mut choice = EpochChoice::default();
        assert_eq!(shared.epoch(), None);
        choice.offer(&shared, at(1), EpochSource::File);
        assert_eq!(
            (shared.epoch(), choice.source),
            (Some(at(1)), Some(EpochSource::File))
        );
        choice.offer(&shared, at(2), EpochSource::Attribute);
        assert_eq!(shared.epoch(), Some(at(2)));
        choice.offer(&shared, at(3), EpochSource::File);
        assert_eq!(
            shared.epoch(),
            Some(at(2)),
            "the file does not override the attribute"
        );
        choice.offer(&shared, at(4), EpochSource::Attribute);
        assert_eq!(shared.epoch(), Some(at(4)), "a newer announcement wins");
        choice.offer(&shared, at(5), EpochSource::Given);
        choice.offer(&shared, at(6), EpochSource::Attribute);
        assert_eq!(
            (shared.epoch(), choice.source.map(EpochSource::name)),
            (Some(at(5)), Some("given"))
        );
    }
}
