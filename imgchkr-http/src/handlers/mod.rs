//! One module per endpoint family.

pub mod admin;
pub mod get;
pub mod health;
pub mod list;
pub mod openapi;
pub mod submit;
pub mod ui;
pub mod validate;
