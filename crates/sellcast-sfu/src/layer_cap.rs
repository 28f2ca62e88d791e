//! The ceiling a viewer puts on its own video: the watch page's data-saver switch, and the size
//! the player is shown at (no point sending 1080p to a 200-pixel tile).

/// What the viewer asked for. The default is no cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerCap {
    /// The tallest picture worth sending: the highest layer at most this tall (the lowest
    /// layer if every one is taller). `None`: no limit.
    pub max_height: Option<u32>,
    /// Only ever the lowest layer.
    pub data_saver: bool,
}

impl LayerCap {
    /// The highest rank (0 = lowest) this cap allows among layers ranked lowest first, given
    /// their heights (unknown heights are never excluded by a height cap).
    pub fn top_rank(&self, heights: impl DoubleEndedIterator<Item = Option<u32>> + ExactSizeIterator) -> usize {
        let count = heights.len();
        if count == 0 || self.data_saver {
            return 0;
        }
        let Some(max) = self.max_height else {
            return count - 1;
        };
        heights
            .enumerate()
            .rev()
            .find(|(_, h)| h.is_none_or(|h| h <= max))
            .map_or(0, |(rank, _)| rank)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top(cap: LayerCap, heights: &[Option<u32>]) -> usize {
        cap.top_rank(heights.iter().copied())
    }

    #[test]
    fn a_cap_picks_the_tallest_layer_that_fits_or_the_lowest() {
        let layers = [Some(180), Some(360), Some(720)];
        assert_eq!(top(LayerCap::default(), &layers), 2);
        assert_eq!(top(LayerCap { max_height: Some(400), data_saver: false }, &layers), 1);
        assert_eq!(top(LayerCap { max_height: Some(720), data_saver: false }, &layers), 2);
        assert_eq!(top(LayerCap { max_height: Some(100), data_saver: false }, &layers), 0);
        assert_eq!(top(LayerCap { max_height: None, data_saver: true }, &layers), 0);
        assert_eq!(top(LayerCap::default(), &[]), 0);
        assert_eq!(top(LayerCap { max_height: Some(200), data_saver: false }, &[Some(180), None]), 1, "unknown height is not excluded");
    }
}
