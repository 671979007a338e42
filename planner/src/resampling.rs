//! How a configuration resamples each kind of array: [`ResamplingSettings`] with its
//! [`SplineOrder`]s and the [`ForceSeparateZ`] rule, as `plans.toml` writes them.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A spline interpolation order (scipy's and skimage's `order`), written in `plans.toml` as the
/// number nnU-Net writes: `0`, `1` or `3`. These are the orders the resampler implements (scipy
/// also allows 2, 4 and 5, which nnU-Net never plans); any other number is refused when
/// `plans.toml` is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SplineOrder {
    /// Order 0: nearest neighbour.
    Nearest,
    /// Order 1: linear.
    Linear,
    /// Order 3: cubic B-spline with prefilter.
    Cubic,
}

impl SplineOrder {
    /// Every order, in increasing number.
    pub const ALL: [SplineOrder; 3] = [
        SplineOrder::Nearest,
        SplineOrder::Linear,
        SplineOrder::Cubic,
    ];

    /// The number as nnU-Net's plans write it.
    pub fn as_u8(self) -> u8 {
        match self {
            SplineOrder::Nearest => 0,
            SplineOrder::Linear => 1,
            SplineOrder::Cubic => 3,
        }
    }

    /// The order numbered `order`, if it is one of [`SplineOrder::ALL`].
    pub fn from_u8(order: u8) -> Option<SplineOrder> {
        SplineOrder::ALL.into_iter().find(|o| o.as_u8() == order)
    }
}

impl fmt::Display for SplineOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u8())
    }
}

impl Serialize for SplineOrder {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(self.as_u8())
    }
}

impl<'de> Deserialize<'de> for SplineOrder {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderVisitor;
        impl Visitor<'_> for OrderVisitor {
            type Value = SplineOrder;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a spline order: 0 (nearest), 1 (linear) or 3 (cubic)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SplineOrder, E> {
                u8::try_from(v)
                    .ok()
                    .and_then(SplineOrder::from_u8)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SplineOrder, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                }
            }
        }
        deserializer.deserialize_u8(OrderVisitor)
    }
}

/// Whether resampling treats the lowest-resolution axis separately (nnU-Net's
/// `force_separate_z`), written as `"auto"`, `true` or `false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForceSeparateZ {
    /// Decide from the spacing anisotropy (nnU-Net's `None`).
    Auto,
    /// Always resample the lowest-resolution axis separately.
    Always,
    /// Never.
    Never,
}

impl Serialize for ForceSeparateZ {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ForceSeparateZ::Auto => serializer.serialize_str("auto"),
            ForceSeparateZ::Always => serializer.serialize_bool(true),
            ForceSeparateZ::Never => serializer.serialize_bool(false),
        }
    }
}

impl<'de> Deserialize<'de> for ForceSeparateZ {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ForceVisitor;
        impl Visitor<'_> for ForceVisitor {
            type Value = ForceSeparateZ;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"auto\", true or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ForceSeparateZ, E> {
                Ok(if v {
                    ForceSeparateZ::Always
                } else {
                    ForceSeparateZ::Never
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ForceSeparateZ, E> {
                match v {
                    "auto" => Ok(ForceSeparateZ::Auto),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        deserializer.deserialize_any(ForceVisitor)
    }
}

/// Resampling settings of one kind of array (nnU-Net's `resampling_fn_*_kwargs` of
/// `resample_data_or_seg_to_shape`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResamplingSettings {
    /// Spline order in-plane (or everywhere when not separate).
    pub order: SplineOrder,
    /// Order along the separate axis.
    pub order_z: SplineOrder,
    /// Separate-axis decision.
    pub force_separate_z: ForceSeparateZ,
}

impl ResamplingSettings {
    /// Images: cubic, nearest along a separate z. nnU-Net: `determine_resampling`.
    pub fn nnunet_data() -> ResamplingSettings {
        ResamplingSettings {
            order: SplineOrder::Cubic,
            order_z: SplineOrder::Nearest,
            force_separate_z: ForceSeparateZ::Auto,
        }
    }

    /// Segmentations: linear one-hot, nearest along a separate z. nnU-Net:
    /// `determine_resampling`.
    pub fn nnunet_seg() -> ResamplingSettings {
        ResamplingSettings {
            order: SplineOrder::Linear,
            ..ResamplingSettings::nnunet_data()
        }
    }

    /// Predicted probabilities/logits at export: linear. nnU-Net:
    /// `determine_segmentation_softmax_export_fn`.
    pub fn nnunet_probabilities() -> ResamplingSettings {
        ResamplingSettings::nnunet_seg()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_write_nnunets_numbers() {
        let text = toml::to_string(&ResamplingSettings::nnunet_data()).expect("plain data");
        assert_eq!(
            text,
            "order = 3\norder_z = 0\nforce_separate_z = \"auto\"\n"
        );
        let numbers: Vec<u8> = SplineOrder::ALL.iter().map(|o| o.as_u8()).collect();
        assert_eq!(numbers, [0, 1, 3]);
        for order in SplineOrder::ALL {
            assert_eq!(SplineOrder::from_u8(order.as_u8()), Some(order));
        }
        assert_eq!(SplineOrder::from_u8(2), None);
    }

    #[test]
    fn an_order_the_resampler_lacks_is_refused_with_the_valid_ones_listed() {
        for bad in ["order = 7", "order = 2", "order = -1"] {
            let text = format!("{bad}\norder_z = 0\nforce_separate_z = \"auto\"\n");
            let err = toml::from_str::<ResamplingSettings>(&text).expect_err(bad);
            let message = err.to_string();
            assert!(
                message.contains("expected a spline order: 0 (nearest), 1 (linear) or 3 (cubic)"),
                "{message}"
            );
        }
    }
}
