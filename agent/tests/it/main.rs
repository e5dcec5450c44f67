//! Integration tests of the agent: real renders through the render module, and the whole
//! agent against a small in-process coordinator.

mod confine;
mod coordinator;
mod cpu;
mod dbus_support;
mod disk;
mod hostile;
mod logind;
mod monitor;
mod notify;
mod render;
mod sequence;
mod status_socket;
mod support;
mod utmp;
mod warm;
mod x11;
mod x_support;
