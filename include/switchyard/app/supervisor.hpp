// --num_workers N: the parent process starts N workers (child processes, each one
// event loop running the whole gateway, as with one worker), keeps N running and
// stops them. See docs/deploy.md, "Several workers".
//
//  - The port: the parent opens one listening socket per worker slot, all on the same
//    port with SO_REUSEPORT (so --port 0 picks one port for all; the kernel spreads new
//    connections across the sockets), and hands slot i's socket to worker i. The parent
//    keeps its copies, so connections queued on a dead worker's socket wait for its
//    replacement instead of being reset.
//  - A worker that dies (a crash, SIGKILL) is started again at once. A worker that
//    exits with an error within its first second (the port is taken, a startup
//    failure) stops the whole group with its exit code instead of restarting in a loop.
//  - SIGTERM/SIGINT are forwarded (each worker drains its own requests; a second signal
//    is forwarded too and closes everything at once); SIGHUP is forwarded.
//  - The exit code is the workers': 0 when all exited 0, else the first failure's code
//    (128 + signal for a worker killed by a signal during the stop).
// Workers die with the parent (PR_SET_PDEATHSIG). Thread: call from main() before any
// other thread exists (the parent stays single-threaded; fork is safe).
#pragma once
#include "switchyard/app/options.hpp"

#include <functional>

namespace switchyard::app {

// Runs `worker(opts, index)` in opts.num_workers child processes (index 0..N-1; the
// child exits with its result) and supervises them; returns the group's exit code.
// `on_hangup` runs in the parent on SIGHUP before it is forwarded (main re-reads the config
// there, so a worker started later begins with the config the others reloaded).
int supervise(options opts, const std::function<int(const options&, int)>& worker,
              const std::function<void()>& on_hangup = {});

}  // namespace switchyard::app
