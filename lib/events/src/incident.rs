//! The incident lifecycle as events report it: the values of the CloudEvents
//! extensions `incidentstate`, `zones`, `movement` and `updatereason`.
//!
//! A detector reports each incident as a short series of events sharing its
//! `incidentid`: one `opened` (the first alert), a few `updated` (a better
//! snapshot, a new zone, more people, movement towards or away from a zone),
//! and one `closed` (no sighting for the detector's window). Events without
//! `incidentstate` (older producers, injected events) are `opened`.
//!
//! Lists travel as comma-separated strings (CloudEvents extension values are
//! strings), so zone names are restricted to `[a-z0-9-]`: see
//! [`check_zone_name`].

use std::fmt;
use std::str::FromStr;

/// Where an incident stands, as the event reports it (extension `incidentstate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lifecycle {
    /// The first alert of the incident.
    Opened,
    /// Something changed: see the event's [`UpdateReason`]s.
    Updated,
    /// No sighting for the detector's window: the incident is over.
    Closed,
}

impl Lifecycle {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Opened => "opened",
            Lifecycle::Updated => "updated",
            Lifecycle::Closed => "closed",
        }
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Lifecycle {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl FromStr for Lifecycle {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "opened" => Ok(Lifecycle::Opened),
            "updated" => Ok(Lifecycle::Updated),
            "closed" => Ok(Lifecycle::Closed),
            other => Err(format!(
                "`{other}` is not an incident state (opened, updated, closed)"
            )),
        }
    }
}

/// How a tracked object moves relative to a zone it is not in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Movement {
    /// Its distance to the zone shrinks.
    Approaching,
    /// Its distance to the zone grows.
    Leaving,
}

impl Movement {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Movement::Approaching => "approaching",
            Movement::Leaving => "leaving",
        }
    }
}

/// One entry of the `movement` extension: `<zone>:approaching` or `<zone>:leaving`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZoneMovement {
    /// The zone's name.
    pub zone: String,
    /// Towards it or away from it.
    pub movement: Movement,
}

impl fmt::Display for ZoneMovement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.zone, self.movement.as_str())
    }
}

impl FromStr for ZoneMovement {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (zone, movement) = text
            .split_once(':')
            .ok_or_else(|| format!("`{text}` is not `<zone>:approaching|leaving`"))?;
        check_zone_name(zone)?;
        let movement = match movement {
            "approaching" => Movement::Approaching,
            "leaving" => Movement::Leaving,
            other => {
                return Err(format!(
                    "`{other}` is not a movement (approaching, leaving)"
                ));
            }
        };
        Ok(ZoneMovement {
            zone: zone.to_owned(),
            movement,
        })
    }
}

/// Why an incident was `updated` (extension `updatereason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UpdateReason {
    /// A frame better than the incident's best so far (higher confidence,
    /// larger box): the event carries it as the snapshot.
    BetterSnapshot,
    /// The incident touched a zone it had not touched before.
    NewZone,
    /// More people are in view than before.
    MorePeople,
    /// The tracked object started moving towards or away from a zone.
    Movement,
}

impl UpdateReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateReason::BetterSnapshot => "better-snapshot",
            UpdateReason::NewZone => "new-zone",
            UpdateReason::MorePeople => "more-people",
            UpdateReason::Movement => "movement",
        }
    }
}

impl fmt::Display for UpdateReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UpdateReason {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "better-snapshot" => Ok(UpdateReason::BetterSnapshot),
            "new-zone" => Ok(UpdateReason::NewZone),
            "more-people" => Ok(UpdateReason::MorePeople),
            "movement" => Ok(UpdateReason::Movement),
            other => Err(format!(
                "`{other}` is not an update reason (better-snapshot, new-zone, more-people, movement)"
            )),
        }
    }
}

/// Checks a zone name: 1 to 64 characters of `a-z`, `0-9` and `-`, not
/// starting with `-` (names travel comma-separated in the `zones` extension).
pub fn check_zone_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a zone name (1-64 characters of a-z, 0-9 and `-`, not starting with `-`)"
        ))
    }
}

/// Parses a comma-separated extension value with `parse` for each item
/// (an empty string is an empty list).
pub(crate) fn parse_list<T>(
    text: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',').map(|item| parse(item.trim())).collect()
}

/// Joins items with commas (the wire form of list extensions).
pub(crate) fn join_list<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for state in [Lifecycle::Opened, Lifecycle::Updated, Lifecycle::Closed] {
            assert_eq!(state.as_str().parse::<Lifecycle>(), Ok(state));
        }
        for reason in [
            UpdateReason::BetterSnapshot,
            UpdateReason::NewZone,
            UpdateReason::MorePeople,
            UpdateReason::Movement,
        ] {
            assert_eq!(reason.as_str().parse::<UpdateReason>(), Ok(reason));
        }
        let movement: ZoneMovement = "school-gate:approaching".parse().expect("valid");
        assert_eq!(movement.zone, "school-gate");
        assert_eq!(movement.movement, Movement::Approaching);
        assert_eq!(movement.to_string(), "school-gate:approaching");
    }

    #[test]
    fn bad_values_say_what_is_allowed() {
        let err = "reopened".parse::<Lifecycle>().expect_err("unknown");
        assert!(err.contains("opened, updated, closed"), "{err}");
        let err = "gate:running".parse::<ZoneMovement>().expect_err("bad");
        assert!(err.contains("approaching, leaving"), "{err}");
        let err = "gate".parse::<ZoneMovement>().expect_err("bad");
        assert!(err.contains("<zone>:"), "{err}");
        assert!(check_zone_name("School Gate").is_err());
        assert!(check_zone_name("a,b").is_err());
        assert!(check_zone_name("-x").is_err());
        assert!(check_zone_name("").is_err());
        assert!(check_zone_name("platform-edge-2").is_ok());
    }

    #[test]
    fn lists_are_comma_separated() {
        let zones = parse_list("crossing,school-gate", |z| {
            check_zone_name(z).map(|()| z.to_owned())
        })
        .expect("valid");
        assert_eq!(zones, ["crossing", "school-gate"]);
        assert_eq!(join_list(&zones), "crossing,school-gate");
        assert!(
            parse_list("", |z| Ok::<_, String>(z.to_owned()))
                .expect("empty")
                .is_empty()
        );
        assert!(parse_list("ok,Not OK", check_zone_name).is_err());
    }
}
