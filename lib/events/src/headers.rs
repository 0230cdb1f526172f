//! Reading and writing typed AMQP headers.

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

/// Returns a header as text, whichever AMQP string type it was sent as.
pub fn get_str<'a>(headers: Option<&'a FieldTable>, name: &str) -> Option<&'a str> {
    match headers?.inner().get(name)? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

/// Returns a header as an integer, whichever AMQP integer type it was sent as.
pub fn get_i64(headers: Option<&FieldTable>, name: &str) -> Option<i64> {
    match headers?.inner().get(name)? {
        AMQPValue::ShortShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::Timestamp(v) => i64::try_from(*v).ok(),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.parse().ok(),
        _ => None,
    }
}

/// Sets a text header.
pub fn set_str(headers: &mut FieldTable, name: &str, value: impl Into<String>) {
    headers.insert(
        ShortString::from(name),
        AMQPValue::LongString(LongString::from(value.into())),
    );
}

/// Sets an integer header.
pub fn set_i64(headers: &mut FieldTable, name: &str, value: i64) {
    headers.insert(ShortString::from(name), AMQPValue::LongLongInt(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_round_trip_and_lenient_reads() {
        let mut headers = FieldTable::default();
        set_str(&mut headers, "camera-id", "cam-1");
        set_i64(&mut headers, "attempt", 3);
        headers.insert("small".into(), AMQPValue::ShortShortUInt(7));
        headers.insert("text-number".into(), AMQPValue::LongString("12".into()));
        assert_eq!(get_str(Some(&headers), "camera-id"), Some("cam-1"));
        assert_eq!(get_i64(Some(&headers), "attempt"), Some(3));
        assert_eq!(get_i64(Some(&headers), "small"), Some(7));
        assert_eq!(get_i64(Some(&headers), "text-number"), Some(12));
        assert_eq!(get_str(Some(&headers), "absent"), None);
        assert_eq!(get_i64(None, "attempt"), None);
    }
}
