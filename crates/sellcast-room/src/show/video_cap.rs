//! A viewer's cap on the video it is sent (`video_cap`): the data-saver toggle, and the
//! player's displayed height in device pixels. The room only checks the frame and who sent it;
//! the layer is chosen by the media plane's forwarder, which the show task hands the cap to.

use crate::answer::Caller;
use crate::identity::Identity;
use crate::protocol::{ErrorCode, FrameError};

use super::dispatch::Taken;
use super::{Output, Show};

/// The tallest display a cap may name: 8K UHD's 4320 rows. Nothing real is taller, and a
/// bound keeps a client from naming a height no layer comparison was meant for.
pub const MAX_CAP_HEIGHT: u32 = 4320;

impl Show {
    /// A cap applies to a watching session's video, so it comes on a viewer's data channel:
    /// a host publishes (it is sent no video), and an HTTP call has no media session to cap.
    pub(super) fn video_cap(&mut self, from: Caller, who: &Identity, data_saver: bool, max_height: Option<u32>) -> Result<Taken, FrameError> {
        if who.role.can_run_show() {
            return Err(FrameError::new(ErrorCode::Forbidden, "only viewers cap their video: the host publishes it"));
        }
        let Caller::Session(participant) = from else {
            return Err(FrameError::new(ErrorCode::Invalid, "video_cap is sent on a watching session's data channel"));
        };
        if let Some(height) = max_height.filter(|h| !(1..=MAX_CAP_HEIGHT).contains(h)) {
            return Err(FrameError::new(ErrorCode::Invalid, format!("max_height {height} is not within 1..={MAX_CAP_HEIGHT} (or null)")));
        }
        self.outputs.push_back(Output::VideoCap { participant, data_saver, max_height });
        Ok(Taken::Done)
    }
}
