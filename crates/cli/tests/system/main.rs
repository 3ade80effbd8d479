//! The whole system from outside: the real `hanwha-delivery` binary started
//! as a user starts it, one module per feature (`cargo test -p
//! hanwha-delivery --test system saga::` runs one of them). One test binary,
//! so one `support` module whose every helper some feature uses.

mod support;

mod bad_input;
mod containers;
mod contract;
mod database_restart;
mod durability;
mod fleet;
mod full_disk;
mod hang_ups;
mod kafka;
mod live;
mod load;
mod overload;
mod poison;
mod race;
mod rebuild;
mod rebuild_backends;
mod retention;
mod saga;
mod security_edge;
mod security_identity;
mod soak;
