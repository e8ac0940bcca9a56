//! Server streams fed page by page from the blocking pool.
//!
//! The first page is fetched before the response starts, so a bad request is an error
//! status and not a stream that fails after its headers. Later pages are fetched by one
//! blocking task that stops as soon as the client goes away (the channel closes).

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic::codegen::BoxStream;

/// How many messages may wait for a slow client before the producer blocks.
const BUFFER: usize = 128;

/// One page: the messages to send and whether another page follows.
pub struct Page<T> {
    pub messages: Vec<T>,
    pub more: bool,
}

/// Runs a synchronous call on the blocking pool; a panicked task is INTERNAL.
pub async fn blocking<T, F>(call: F) -> Result<T, Status>
where
    F: FnOnce() -> Result<T, Status> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|err| super::status::internal(&err))?
}

/// Streams the pages `fetch` produces until one says there is no more. `fetch` keeps
/// its own position between calls.
pub async fn paged<T, F>(mut fetch: F) -> Result<BoxStream<T>, Status>
where
    T: Send + 'static,
    F: FnMut() -> Result<Page<T>, Status> + Send + 'static,
{
    let (first, fetch) = blocking(move || {
        let first = fetch()?;
        Ok((first, fetch))
    })
    .await?;
    let (sender, receiver) = mpsc::channel(BUFFER);
    tokio::task::spawn_blocking(move || produce(first, fetch, &sender));
    Ok(Box::pin(ReceiverStream::new(receiver)))
}

/// A stream of messages already computed.
pub fn ready<T: Send + 'static>(messages: Vec<T>) -> BoxStream<T> {
    Box::pin(tokio_stream::iter(messages.into_iter().map(Ok)))
}

fn produce<T, F>(first: Page<T>, mut fetch: F, sender: &mpsc::Sender<Result<T, Status>>)
where
    F: FnMut() -> Result<Page<T>, Status>,
{
    let mut page = first;
    loop {
        for message in page.messages {
            if sender.blocking_send(Ok(message)).is_err() {
                return;
            }
        }
        if !page.more {
            return;
        }
        page = match fetch() {
            Ok(page) => page,
            Err(status) => {
                let _ = sender.blocking_send(Err(status));
                return;
            }
        };
    }
}
