//! Router-wide layers as plain tower layers: [`StateLayer`] hands each route's service the
//! [`AppState`] and lets one function decide, per request, what happens around the route
//! (`observe::Edge`, `grpc::guard::Guard`). A `from_fn` middleware does the same but
//! clones and boxes the inner service and boxes its future on every request
//! (docs/BENCHMARKS.md, "fourth pass"); here the inner service is called in place and one
//! future is boxed.

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use tower::{Layer, Service};

use super::AppState;

/// A response on its way, boxed once.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// What a [`StateLayer`] does around a route.
pub trait Around: 'static {
    /// Answers `request`, calling `inner` (which is ready) at most once.
    fn call<S>(state: &AppState, inner: &mut S, request: Request) -> ResponseFuture
    where
        S: Service<Request, Response = Response, Error = Infallible>,
        S::Future: Send + 'static;
}

/// The layer of an [`Around`].
pub struct StateLayer<A> {
    state: AppState,
    around: PhantomData<fn() -> A>,
}

impl<A> StateLayer<A> {
    pub fn new(state: AppState) -> Self {
        Self {
            state,
            around: PhantomData,
        }
    }
}

impl<A> Clone for StateLayer<A> {
    fn clone(&self) -> Self {
        Self::new(self.state.clone())
    }
}

impl<A, S> Layer<S> for StateLayer<A> {
    type Service = WithState<A, S>;

    fn layer(&self, inner: S) -> Self::Service {
        WithState {
            state: self.state.clone(),
            inner,
            around: PhantomData,
        }
    }
}

/// A [`StateLayer`] around one route.
pub struct WithState<A, S> {
    state: AppState,
    inner: S,
    around: PhantomData<fn() -> A>,
}

impl<A, S: Clone> Clone for WithState<A, S> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            inner: self.inner.clone(),
            around: PhantomData,
        }
    }
}

impl<A, S> Service<Request> for WithState<A, S>
where
    A: Around,
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        A::call(&self.state, &mut self.inner, request)
    }
}
