//! Where one viewer on this node stands in its room's event stream, and whether an event
//! read from the stream is due to it: the rule that keeps every viewer's events gapless and
//! without repeats when its opening (a snapshot from the owner, or a replay from the local
//! copy) and the stream overlap.

use sellcast_room::Position;

/// What to do with one stream event for one viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The next event for it: deliver, and it is at this event now.
    Deliver,
    /// It has this one already (its snapshot or replay went past it): skip.
    Had,
    /// Its stream is not open yet (its welcome is on the way): the event is delivered from
    /// the local copy once the welcome says where it stands.
    Hold,
    /// It cannot continue from where it stands (another epoch, or events it never got):
    /// it must take a snapshot.
    Resync,
}

/// The viewer's position (`None`: its welcome has not arrived) against an event's.
pub fn due(cursor: Option<Position>, event: Position) -> Due {
    let Some(at) = cursor else {
        return Due::Hold;
    };
    if event.epoch != at.epoch {
        return if event.epoch < at.epoch { Due::Had } else { Due::Resync };
    }
    if event.seq <= at.seq {
        Due::Had
    } else if event.seq == at.seq + 1 {
        Due::Deliver
    } else {
        Due::Resync
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(epoch: u64, seq: u64) -> Position {
        Position { epoch, seq }
    }

    #[test]
    fn only_the_next_seq_is_delivered() {
        assert_eq!(due(Some(at(3, 5)), at(3, 6)), Due::Deliver);
        assert_eq!(due(Some(at(3, 5)), at(3, 5)), Due::Had, "its own position is not sent again");
        assert_eq!(due(Some(at(3, 5)), at(3, 2)), Due::Had);
        assert_eq!(due(Some(at(3, 5)), at(3, 8)), Due::Resync, "6 and 7 would be missed");
    }

    #[test]
    fn a_viewer_without_its_welcome_holds_and_another_epoch_resyncs() {
        assert_eq!(due(None, at(3, 1)), Due::Hold);
        assert_eq!(due(Some(at(3, 5)), at(4, 1)), Due::Resync, "the owner restarted");
        assert_eq!(due(Some(at(4, 1)), at(3, 9)), Due::Had, "an older epoch's event is stale");
    }
}
