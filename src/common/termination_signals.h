// Synchronous handling of the stop signals (SIGINT, SIGTERM) for the long-running commands (`tandem
// serve`, `tandem proxy`): block them in the main thread before any other thread starts (threads inherit
// the signal mask, so none of them gets the signal asynchronously), then wait for one on the main thread.
#pragma once

namespace tandem {

// Blocks SIGINT and SIGTERM in the calling thread (and in the threads it starts afterwards).
void block_termination_signals();

// Waits until SIGINT or SIGTERM is pending (they must be blocked) and returns its number. It waits in
// short timed steps (sigtimedwait), so it never blocks in the kernel indefinitely; a signal is taken at
// once when it arrives.
int wait_for_termination_signal();

}  // namespace tandem
