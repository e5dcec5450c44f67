//! Integration tests of the agent: real renders through the render module, and the whole
//! agent against a small in-process coordinator.

mod coordinator;
mod render;
mod support;
