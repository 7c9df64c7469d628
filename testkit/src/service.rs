//! One running service of a test system, and the roles a service can have.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::process::Child;

/// One running service.
pub struct Service {
    pub(crate) port: u16,
    pub(crate) running: Running,
}

pub(crate) enum Running {
    InProcess {
        stop: CancellationToken,
        task: JoinHandle<anyhow::Result<()>>,
        readiness: Option<kit::health::Readiness>,
    },
    Process(Box<Child>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Auth,
    Tracker,
    Peer,
    Proxy,
}

impl Service {
    pub(crate) async fn stop(self) {
        match self.running {
            Running::InProcess { stop, task, .. } => {
                stop.cancel();
                match tokio::time::timeout(Duration::from_secs(15), task).await {
                    Ok(Ok(Ok(()))) => {}
                    Ok(Ok(Err(err))) => panic!("service failed: {err:?}"),
                    Ok(Err(err)) => panic!("service task panicked: {err}"),
                    Err(_) => panic!("service did not stop within 15 s"),
                }
            }
            Running::Process(child) => child.terminate().await,
        }
    }

    pub(crate) async fn kill(self) {
        match self.running {
            Running::Process(child) => child.kill().await,
            Running::InProcess { .. } => panic!("SIGKILL needs process mode: build the system with .processes(..)"),
        }
    }
}

pub(crate) fn urls(slots: &[(u16, Option<Service>)]) -> String {
    slots.iter().map(|(port, _)| format!("http://127.0.0.1:{port}")).collect::<Vec<_>>().join(",")
}
