//! Which network addresses caller-supplied URLs (webhook destinations) may reach: the blocked
//! ranges, a CIDR allow-list that opens chosen ones, and the URL check.
//!
//! Pure and small on purpose: the API checks URLs at submit with it and the webhook sender at
//! every delivery, and neither an HTTP client nor any I/O comes with it.

mod policy;
mod ranges;

pub use policy::{check_url, parse_cidr_list, AddressPolicy, Blocked, CidrError};
pub use ranges::{forbidden_reason, is_forbidden};
/// The URL type [`check_url`] takes (reqwest's `Url` is the same type).
pub use url::Url;
