//! Invalidation messages between nodes sharing one Redis.
//!
//! Every write, deletion, pattern invalidation and clear made through a [`RedisCache`] is
//! announced on the pub/sub channel `<prefix>invalidations`, tagged with the writing node's id,
//! so that the other nodes can drop their local (memory, disk) copies. Keys written in quick
//! succession are announced together in one message. A node that could not announce some of
//! its changes (its queue of announcements was full, or publishing failed) announces a
//! resynchronisation instead, after which the other nodes drop every local copy.
//!
//! [`RedisCache`]: crate::RedisCache

/// What another node changed, as received by [`RedisCache::invalidations`].
///
/// [`RedisCache::invalidations`]: crate::RedisCache::invalidations
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalidation {
    /// These keys were written or deleted.
    Keys(Vec<String>),
    /// The keys matching this glob pattern were removed.
    Pattern(String),
    /// Every key was removed.
    Clear,
    /// Messages may have been missed: local copies of shared keys cannot be trusted any more.
    /// Raised by this node when its subscription was lost and re-established (or a receiver fell
    /// behind), and sent by another node that could not announce some of its changes (its
    /// queue of announcements was full, or a publication failed; see
    /// [`RedisConfig::announce_capacity`](crate::RedisConfig::announce_capacity)).
    Resync,
}

const KEYS: u8 = b'K';
const PATTERN: u8 = b'P';
const CLEAR: u8 = b'C';
/// A node missed announcing some changes. Distinct from [`CLEAR`] so that a receiver can tell
/// "the cache was cleared" from "announcements were lost" (in logs, and should it ever
/// revalidate instead of dropping). A node older than this byte ignores the message as
/// malformed, so nodes of one deployment should run the same version.
const RESYNC: u8 = b'R';

/// The start of a keys message from `node` (its node id and kind), to which [`push_key`]
/// appends the keys: the announcer's queue holds its messages in this form, ready to publish.
pub(crate) fn keys_message(node: u64) -> Vec<u8> {
    let mut message = Vec::with_capacity(256);
    message.extend_from_slice(&node.to_le_bytes());
    message.push(KEYS);
    message
}

/// Appends `key` to a message begun by [`keys_message`].
pub(crate) fn push_key(message: &mut Vec<u8>, key: &str) {
    message.extend_from_slice(&(key.len() as u32).to_le_bytes());
    message.extend_from_slice(key.as_bytes());
}

/// `node(8) kind(1) then, for keys, (len u32, bytes)*, for a pattern its bytes`.
pub(crate) fn encode(node: u64, invalidation: &Invalidation) -> Vec<u8> {
    let mut message = node.to_le_bytes().to_vec();
    match invalidation {
        Invalidation::Keys(keys) => {
            message.push(KEYS);
            for key in keys {
                push_key(&mut message, key);
            }
        }
        Invalidation::Pattern(pattern) => {
            message.push(PATTERN);
            message.extend_from_slice(pattern.as_bytes());
        }
        Invalidation::Clear => message.push(CLEAR),
        Invalidation::Resync => message.push(RESYNC),
    }
    message
}

/// The sender's node id, read without decoding the rest.
pub(crate) fn sender(message: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(message.get(..8)?.try_into().ok()?))
}

/// The sender's node id and the invalidation; `None` for a malformed message.
pub(crate) fn decode(message: &[u8]) -> Option<(u64, Invalidation)> {
    let node = sender(message)?;
    let body = message.get(9..)?;
    let invalidation = match *message.get(8)? {
        KEYS => {
            let mut keys = Vec::new();
            let mut rest = body;
            while !rest.is_empty() {
                let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
                let key = std::str::from_utf8(rest.get(4..4 + len)?).ok()?;
                keys.push(key.to_owned());
                rest = &rest[4 + len..];
            }
            Invalidation::Keys(keys)
        }
        PATTERN => Invalidation::Pattern(std::str::from_utf8(body).ok()?.to_owned()),
        CLEAR => Invalidation::Clear,
        RESYNC => Invalidation::Resync,
        _ => return None,
    };
    Some((node, invalidation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_refused() {
        for invalidation in [
            Invalidation::Keys(vec![
                "a".into(),
                "b c\nd".into(),
                String::new(),
                "\u{e9}".into(),
            ]),
            Invalidation::Pattern("policy_*".into()),
            Invalidation::Clear,
            Invalidation::Resync,
        ] {
            assert_eq!(decode(&encode(7, &invalidation)), Some((7, invalidation)));
        }
        let mut built = keys_message(7);
        push_key(&mut built, "a");
        push_key(&mut built, "b c");
        assert_eq!(
            built,
            encode(7, &Invalidation::Keys(vec!["a".into(), "b c".into()])),
            "the queue's messages are the encoded form"
        );
        assert_eq!(decode(b"short"), None);
        assert_eq!(decode(b"12345678Xjunk"), None);
        let mut truncated = encode(1, &Invalidation::Keys(vec!["abcdef".into()]));
        truncated.pop();
        assert_eq!(decode(&truncated), None);
    }
}
