//! Tests of the scheduling core: one focused test per rule, and a model test that drives boards,
//! picks and health together through random interleavings of everything the farm can do.

mod availability;
mod backup;
mod board;
mod chunk;
mod health;
mod model;
mod pick;
