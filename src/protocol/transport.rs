//! The transports a sync request can arrive on, and the RPC names each one serves.

/// A way for a client to reach a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// `transport=ws`: a WebSocket carrying Effect RPC JSON frames (`SyncWsRpc`).
    Ws,
    /// `transport=http`: one Effect RPC request per POST (`SyncHttpRpc`).
    Http,
    /// Durable Object RPC (`SyncDoRpc`): a client in another Durable Object calls the sync
    /// object's `rpc` method through a binding. Never named in a URL.
    DoRpc,
    /// The sync-electric endpoint (`/electric`): `@livestore/sync-electric` clients, which speak
    /// Electric's HTTP shape protocol rather than Effect RPC (see [`super::electric`]).
    Electric,
}

/// What an RPC asks the store to do, whichever transport carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Pages of events after a cursor; on WebSocket and DO RPC possibly live.
    Pull,
    /// Append a batch.
    Push,
    /// A liveness check (HTTP and DO RPC; WebSocket pings are envelope messages).
    Ping,
}

impl Transport {
    /// Every transport, in the order configuration lists them.
    pub const ALL: [Transport; 4] = [Transport::Ws, Transport::Http, Transport::DoRpc, Transport::Electric];

    /// The name used in URLs, configuration and log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Http => "http",
            Transport::DoRpc => "do-rpc",
            Transport::Electric => "electric",
        }
    }

    /// The transport a URL's `transport=` names (`do-rpc` is never in a URL).
    pub fn from_url_param(value: &str) -> Option<Transport> {
        match value {
            "ws" => Some(Transport::Ws),
            "http" => Some(Transport::Http),
            _ => None,
        }
    }

    /// The RPC names this transport serves, with what each asks for (none for the
    /// sync-electric endpoint, which speaks no Effect RPC).
    pub fn rpcs(self) -> &'static [(&'static str, Operation)] {
        match self {
            Transport::Ws => &[("SyncWsRpc.Pull", Operation::Pull), ("SyncWsRpc.Push", Operation::Push)],
            Transport::Http => &[
                ("SyncHttpRpc.Pull", Operation::Pull),
                ("SyncHttpRpc.Push", Operation::Push),
                ("SyncHttpRpc.Ping", Operation::Ping),
            ],
            Transport::DoRpc => &[
                ("SyncDoRpc.Pull", Operation::Pull),
                ("SyncDoRpc.Push", Operation::Push),
                ("SyncDoRpc.Ping", Operation::Ping),
            ],
            Transport::Electric => &[],
        }
    }

    /// What an RPC name asks for on this transport; `None` for a name it does not serve.
    pub fn operation(self, rpc: &str) -> Option<Operation> {
        self.rpcs().iter().find(|(name, _)| *name == rpc).map(|(_, op)| *op)
    }

    /// The RPC name of an operation on this transport.
    pub fn rpc_name(self, operation: Operation) -> Option<&'static str> {
        self.rpcs()
            .iter()
            .find(|(_, op)| *op == operation)
            .map(|(name, _)| *name)
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for transport in Transport::ALL {
            for (name, op) in transport.rpcs() {
                assert_eq!(transport.operation(name), Some(*op));
                assert_eq!(transport.rpc_name(*op), Some(*name));
            }
        }
        assert_eq!(Transport::Ws.operation("SyncHttpRpc.Push"), None);
        assert_eq!(Transport::Ws.rpc_name(Operation::Ping), None);
        assert_eq!(Transport::from_url_param("ws"), Some(Transport::Ws));
        assert_eq!(Transport::from_url_param("do-rpc"), None);
    }
}
