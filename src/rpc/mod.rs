//! The Durable Object RPC transport (`SyncDoRpc`), which `makeDoRpcSync` from
//! `@livestore/sync-cf/client` uses when the LiveStore client itself runs in a Durable Object:
//! the client calls the sync object's `rpc(Uint8Array)` method through a Durable Object binding,
//! with Effect RPC messages encoded in msgpackr's records form ([`msgpack`]).

pub mod msgpack;
