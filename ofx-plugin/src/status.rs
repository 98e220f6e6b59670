//! The trainer's status lines by project: written by status threads (which never call the
//! host), read inside actions, where the host allows params to be set.

use std::collections::HashMap;
use std::sync::Mutex;

/// What a status thread last learned about a project, for its instances to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatusLine {
    /// The status text.
    pub(crate) text: String,
    /// The newest checkpoint's step, once there is one.
    pub(crate) checkpoint_step: Option<u64>,
}

/// Status lines by project.
pub(crate) static STATUS: Mutex<Option<HashMap<String, StatusLine>>> = Mutex::new(None);

/// Records a project's newest status line.
pub(crate) fn publish(project: &str, line: StatusLine) {
    let mut map = STATUS.lock().unwrap_or_else(|p| p.into_inner());
    map.get_or_insert_with(HashMap::new)
        .insert(project.to_string(), line);
}
