//! Serde helper: a per-channel list written as a TOML table keyed by channel index
//! (`[foreground_intensity_properties.0]`, `.1`, ...), nnU-Net's
//! `foreground_intensity_properties_per_channel` layout. Reading requires the keys to be exactly
//! `0..n`.

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Writes `items` as a map from the channel index (as a string) to the item.
pub(crate) fn serialize<T: Serialize, S: Serializer>(
    items: &[T],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(items.iter().enumerate().map(|(i, v)| (i.to_string(), v)))
}

/// Reads a map keyed `"0"..` into a list in channel order.
pub(crate) fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    let table = BTreeMap::<String, T>::deserialize(deserializer)?;
    let mut indexed: BTreeMap<usize, T> = BTreeMap::new();
    for (key, value) in table {
        let idx = key
            .parse::<usize>()
            .map_err(|_| D::Error::custom(format!("channel key {key:?} is not a channel index")))?;
        if indexed.insert(idx, value).is_some() {
            return Err(D::Error::custom(format!("channel {idx} is listed twice")));
        }
    }
    let n_channels = indexed.len();
    if let Some((&idx, _)) = indexed.iter().find(|(&idx, _)| idx >= n_channels) {
        return Err(D::Error::custom(format!(
            "channel keys must be 0..{n_channels} without gaps, found {idx}"
        )));
    }
    Ok(indexed.into_values().collect())
}
