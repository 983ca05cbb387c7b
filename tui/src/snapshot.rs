//! What the monitor shows: the server's own wire types (`sessionflow_protocol`), read from
//! `GET /api/monitor`, `GET /healthz` and the session routes, plus what the detail view puts
//! together from two of them.

pub use sessionflow_protocol::health::Healthz as Health;
pub use sessionflow_protocol::monitor::{
    Failure, LIFECYCLES, MonitorSnapshot as Monitor, ProcessorRow, QueueSummary, SessionCounts,
    StageSummary, WorkerRow,
};
pub use sessionflow_protocol::sessions::{
    Block, Message, MessagePage, Session, SessionPage, SessionRow,
};

/// What the detail view shows of one session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionDetail {
    pub info: Session,
    /// Its first messages, or those from a search hit's message on.
    pub first_messages: Vec<Message>,
    /// The message a search hit opened it at.
    pub from_ordinal: Option<i64>,
}
