// block_termination_signals / wait_for_termination_signal (see termination_signals.h).
#include "common/termination_signals.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>

namespace tandem {

namespace {

sigset_t termination_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

void block_termination_signals() {
  sigset_t set = termination_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int wait_for_termination_signal() {
  const sigset_t set = termination_signals();
  while (true) {
    timespec step{0, 200 * 1000 * 1000};
    int sig = sigtimedwait(&set, nullptr, &step);
    if (sig == SIGINT || sig == SIGTERM) return sig;
  }
}

}  // namespace tandem
