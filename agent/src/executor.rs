//! The agent's one-thread executor, shared by every task of the daemon (the
//! LAN node's loops, the federation pool's, control connections, handlers).
//!
//! Every spawned future is boxed first, so all tasks have one type and the
//! task machinery (`async_task`'s raw task functions) is compiled once
//! instead of once per spawned future: tens of kB of flash.

use std::future::Future;
use std::pin::Pin;

use smol::LocalExecutor;

pub struct Executor(LocalExecutor<'static>);

impl Executor {
    pub fn new() -> Executor {
        Executor(LocalExecutor::new())
    }

    pub fn spawn(&self, fut: impl Future<Output = ()> + 'static) -> smol::Task<()> {
        let boxed: Pin<Box<dyn Future<Output = ()>>> = Box::pin(fut);
        self.0.spawn(boxed)
    }

    /// Runs the executor's tasks on this thread until `main` is done.
    pub fn run<T>(&self, main: impl Future<Output = T>) -> T {
        smol::block_on(self.0.run(main))
    }
}
