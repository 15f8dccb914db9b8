#![expect(unreachable_pub, reason = "helpers are shared by the modules of this one test binary")]
//! The API test binary: every test drives a real Roost over HTTP, on SQLite and on PostgreSQL.

mod helpers;
mod oidc;

mod accounts;
mod backup;
mod cluster;
mod collation;
mod http;
mod identity;
mod isolation;
mod jobs;
mod manage;
mod monitor;
mod odata;
mod packages;
mod permissions;
mod push;
mod robustness;
mod scripts;
mod shutdown;
mod tables;
