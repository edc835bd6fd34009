//! The `DynamicLoadBalancer` kind's own logic, no I/O: from one provider's load balancer spec
//! and its machines, the node-agent items of every load balancing machine (keepalived holding
//! the VIPs, HAProxy forwarding their ports, health checks) and the firewall rules of every
//! machine concerned (`render`); the observation command and its parser (`observe`); and the
//! record Orbiter keeps in the Orb repository (`record`).
//!
//! Every machine of a VIP pool runs keepalived and HAProxy. HAProxy binds every VIP on every
//! one of them (`ip_nonlocal_bind`), so a VIP that moves finds its proxy already listening;
//! keepalived moves a VIP away from a machine whose HAProxy stops answering `/ready`.

pub mod input;
pub mod observe;
pub mod record;
pub mod render;

pub use input::{LbError, LbInput, LbMachine, Packages};
pub use observe::{
    LbMachineObservation, ServerObservation, ServerStatus, observe_command, parse_observation,
};
pub use record::{LoadBalancerRecord, build_record};
pub use render::{MachineLb, add_firewall_rules, auth_pass, render};
