//! LXC containers through the `lxc-*` tools, and app template manifests.
//!
//! - [`run`]: every external command with a deadline and bounded output.
//! - [`host`]: board architecture, cgroup v1/v2 layout, and what is missing
//!   on this host (with Debian and OpenWRT package names).
//! - [`driver`]: create, start, stop, destroy, inspect and attach to containers.
//! - [`manifest`]: app templates (UCI files) validated as untrusted input.
//! - [`net`]: container addresses and nftables port forwards.
//! - [`apps`]: the facade the agent calls for `nuvol app …`, and what the
//!   supervisor needs to run an app as an instance.

pub mod apps;
pub mod driver;
pub mod host;
pub mod manifest;
pub mod net;
pub mod run;
