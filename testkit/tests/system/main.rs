//! System tests: the whole system in-process, every service on 127.0.0.1:0.

mod bad_input;
mod chat;
mod cluster;
mod deployment;
mod direct_chat;
mod edge;
mod limits;
mod metrics;
mod public_door;
mod realtime;
mod search;
mod startup;
mod web_ui;
mod workflow;
