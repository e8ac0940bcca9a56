//! The LISTEN connection: turns `NOTIFY` of commits (from any server) into wake-ups of
//! the index follower. It is only an accelerator — a lost notification (a dropped
//! connection, a restart of the database) costs at most one polling period, because the
//! follower polls the head anyway. The connection reconnects by itself.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, stream};
use parking_lot::{Condvar, Mutex};
use tokio_postgres::{AsyncMessage, NoTls};

/// Wake-ups pending for the follower.
pub struct Wakeups {
    pending: Mutex<bool>,
    signal: Condvar,
}

impl Wakeups {
    /// Starts listening on `channel` in the background, on `runtime`.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        driver: tokio_postgres::Config,
        channel: String,
    ) -> Arc<Self> {
        let wakeups = Arc::new(Self {
            pending: Mutex::new(false),
            signal: Condvar::new(),
        });
        let weak = Arc::downgrade(&wakeups);
        runtime.spawn(async move {
            loop {
                if let Err(err) = listen_once(&driver, &channel, &weak).await {
                    tracing::debug!(error = %err, "postgresql listen connection ended");
                }
                if weak.strong_count() == 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        wakeups
    }

    /// Returns when a commit was announced since the last call, or after `timeout`.
    pub fn wait(&self, timeout: Duration) {
        let mut pending = self.pending.lock();
        if !*pending {
            self.signal.wait_for(&mut pending, timeout);
        }
        *pending = false;
    }

    fn wake(&self) {
        *self.pending.lock() = true;
        self.signal.notify_all();
    }
}

/// One LISTEN session, until its connection fails or the store is dropped.
async fn listen_once(
    driver: &tokio_postgres::Config,
    channel: &str,
    wakeups: &std::sync::Weak<Wakeups>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = driver.connect(NoTls).await?;
    let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
    let statement = format!("LISTEN {channel}");
    let listen = client.batch_execute(&statement);
    tokio::pin!(listen);
    let mut listening = false;
    loop {
        tokio::select! {
            done = &mut listen, if !listening => {
                done?;
                listening = true;
                // Commits may have happened while we were not listening.
                if let Some(it) = wakeups.upgrade() { it.wake() }
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(_))) => match wakeups.upgrade() {
                    Some(it) => it.wake(),
                    None => return Ok(()),
                },
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(err),
                None => return Ok(()),
            },
            () = tokio::time::sleep(Duration::from_secs(5)) => {
                if wakeups.strong_count() == 0 {
                    return Ok(());
                }
            }
        }
    }
}
