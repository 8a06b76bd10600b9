//! Which brokers accept a connection right now.
//!
//! The cluster metadata lists a broker until the controller fences it,
//! which takes the broker session timeout (9 s by default) after a crash.
//! In that window librdkafka keeps sending the dead broker requests and
//! every call that needs it waits out its whole timeout. A plain TCP
//! connect answers in milliseconds: a crashed broker's port refuses at
//! once, and a hung host does not answer within the short deadline. It says
//! nothing about whether the broker serves requests, only that it cannot.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::net::TcpStream;

/// Whether each `host:port` accepted a TCP connection within `within`,
/// tried all at once.
pub async fn answering(addresses: &[String], within: Duration) -> BTreeMap<String, bool> {
    let mut attempts = tokio::task::JoinSet::new();
    for address in addresses {
        let address = address.clone();
        attempts.spawn(async move {
            let connected = tokio::time::timeout(within, TcpStream::connect(address.as_str()))
                .await
                .is_ok_and(|result| result.is_ok());
            (address, connected)
        });
    }
    let mut found: BTreeMap<String, bool> = addresses.iter().map(|a| (a.clone(), false)).collect();
    while let Some(attempt) = attempts.join_next().await {
        if let Ok((address, connected)) = attempt {
            found.insert(address, connected);
        }
    }
    found
}

/// The `host:port` entries of a bootstrap list such as
/// `SASL_SSL://kafka-1:9093,kafka-2:9093`, without the protocol prefix.
pub fn bootstrap_addresses(brokers: &str) -> Vec<String> {
    brokers
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(|b| b.split_once("://").map_or(b, |(_, rest)| rest).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bootstrap_list_yields_plain_addresses() {
        assert_eq!(
            bootstrap_addresses("SASL_SSL://kafka-1:9093, kafka-2:9093,,"),
            ["kafka-1:9093", "kafka-2:9093"]
        );
    }

    #[tokio::test]
    async fn a_closed_port_does_not_answer_and_an_open_one_does() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap().to_string();
        let closed = {
            let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            gone.local_addr().unwrap().to_string()
        };
        let found = answering(&[open.clone(), closed.clone()], Duration::from_secs(1)).await;
        assert!(found[&open]);
        assert!(!found[&closed]);
    }
}
