//! Types that cross a service boundary: the events on the log and the values
//! they carry, and the requests and answers of the synchronous calls. Services
//! share nothing else, so a change here is a change of contract and must stay
//! readable by older consumers (new fields optional).

pub mod event;
pub mod order_access;
pub mod role;
pub mod status;
pub mod values;
pub mod wire;

pub use event::{Event, EventType};
pub use role::Role;
pub use status::OrderStatus;
