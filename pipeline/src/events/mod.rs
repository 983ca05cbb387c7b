//! Events: the envelope clients send, the processor that records each exactly once, and the
//! handlers that drive the session lifecycle from them.

pub mod envelope;
pub mod handlers;
pub mod processor;

pub use envelope::{Event, InvalidEvent, Payload};
pub use handlers::{
    Handler, HandlerError, HandlerRegistry, ReparseHandler, Runs, SessionEndHandler,
    SessionStartHandler, TranscriptUploadedHandler, transcript_uploaded,
};
pub use processor::{EventProcessor, ProcessError, Processed};
