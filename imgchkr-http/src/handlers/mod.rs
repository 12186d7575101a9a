//! One module per endpoint family.

pub mod get;
pub mod health;
pub mod list;
pub mod submit;
pub mod validate;
