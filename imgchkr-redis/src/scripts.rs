//! The Lua scripts: every engine call is one of them (one round trip, atomic with respect
//! to every other client). Each is the shared helpers (`lua/helpers.lua`) followed by its
//! own body; `redis::Script` sends it by SHA1 (`EVALSHA`) and loads it on `NOSCRIPT`.

use std::sync::LazyLock;

use redis::Script;

macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/helpers.lua"),
            "\n",
            include_str!(concat!("lua/", $file))
        ))
    };
}

/// Every script, compiled (hashed) once per process.
pub(crate) struct Scripts {
    pub(crate) submit: Script,
    pub(crate) get: Script,
    pub(crate) list: Script,
    pub(crate) cancel: Script,
    pub(crate) lease: Script,
    pub(crate) heartbeat: Script,
    pub(crate) record: Script,
    pub(crate) finish: Script,
    pub(crate) release: Script,
    pub(crate) purge: Script,
    pub(crate) stats: Script,
    pub(crate) take_token: Script,
    pub(crate) remember: Script,
    pub(crate) start: Script,
    pub(crate) remove: Script,
    pub(crate) worker_seen: Script,
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    submit: script!("submit.lua"),
    get: script!("get.lua"),
    list: script!("list.lua"),
    cancel: script!("cancel.lua"),
    lease: script!("lease.lua"),
    heartbeat: script!("heartbeat.lua"),
    record: script!("record.lua"),
    finish: script!("finish.lua"),
    release: script!("release.lua"),
    purge: script!("purge.lua"),
    stats: script!("stats.lua"),
    take_token: script!("take_token.lua"),
    remember: script!("remember.lua"),
    start: script!("start.lua"),
    remove: script!("remove.lua"),
    worker_seen: script!("worker_seen.lua"),
});
