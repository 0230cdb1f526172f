//! The kinds of safety event: the CloudEvent `type` and the routing key.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The kinds of safety event; each is a routing key on the events exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// A traffic accident.
    Accident,
    /// Fire or smoke.
    Fire,
    /// A person carrying a gun.
    Gun,
    /// A person carrying a knife.
    Knife,
}

impl EventType {
    /// Every event type, in routing-key order.
    pub const ALL: [EventType; 4] = [
        EventType::Accident,
        EventType::Fire,
        EventType::Gun,
        EventType::Knife,
    ];

    /// The wire name: the CloudEvent `type` and the routing key.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Accident => "accident",
            EventType::Fire => "fire",
            EventType::Gun => "gun",
            EventType::Knife => "knife",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an unknown event type name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an event type (accident, fire, gun, knife)")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == name)
            .ok_or_else(|| UnknownEventType(name.to_owned()))
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_round_trip_and_unknown_ones_fail() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
        }
        assert_eq!(
            "flood".parse::<EventType>(),
            Err(UnknownEventType("flood".into()))
        );
    }
}
