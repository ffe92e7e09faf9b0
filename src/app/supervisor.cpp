#include "switchyard/app/supervisor.hpp"

#include "switchyard/metrics/board.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::app {

namespace {

using steady = std::chrono::steady_clock;

// The supervisor writes plain lines to stderr (it has no logger: it must stay
// single-threaded to fork safely).
void say(const std::string& line) {
  char when[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::fprintf(stderr, "%s supervisor %s\n", when, line.c_str());
  std::fflush(stderr);
}

// Binds host:port with SO_REUSEPORT, listens, and returns the socket; the bound port
// in `port` (so the first call with port 0 picks the port the others then share). -1
// with errno on failure.
int listen_on(const std::string& host, unsigned short& port) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  if (host.find(':') != std::string::npos) {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    if (inet_pton(AF_INET6, host.c_str(), &a6->sin6_addr) != 1) {
      errno = EINVAL;
      return -1;
    }
    family = AF_INET6;
    len = sizeof(sockaddr_in6);
  } else {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    if (inet_pton(AF_INET, host.c_str(), &a4->sin_addr) != 1) {
      errno = EINVAL;
      return -1;
    }
    len = sizeof(sockaddr_in);
  }
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  const int on = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0 ||
      ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
      ::listen(fd, SOMAXCONN) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    const int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  port = ntohs(family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                  : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return fd;
}

struct worker_slot {
  pid_t pid = -1;
  steady::time_point started;
};

int code_of(int status) {
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  if (WIFSIGNALED(status)) {
    return 128 + WTERMSIG(status);
  }
  return 1;
}

}  // namespace

int supervise(options opts, const std::function<int(const options&, int)>& worker,
              const std::function<void()>& on_hangup) {
  // One listening socket per worker slot, opened here and kept by the parent for the
  // group's life: a worker that dies leaves its socket open, so the connections the
  // kernel queued on it (and those that arrive before the replacement starts) wait for
  // the replacement instead of being reset. Only what the dead worker had accepted fails.
  std::vector<int> listeners;
  auto close_listeners = [&] {
    for (int fd : listeners) {
      ::close(fd);
    }
    listeners.clear();
  };
  for (int i = 0; i < opts.num_workers; ++i) {
    const int fd = listen_on(opts.host, opts.port);
    if (fd < 0) {
      const int e = errno;
      say("cannot bind " + opts.host + ":" + std::to_string(opts.port) + ": " + std::strerror(e));
      close_listeners();
      return 1;
    }
    listeners.push_back(fd);
  }
  sigset_t handled;
  sigemptyset(&handled);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) {
    sigaddset(&handled, s);
  }
  sigset_t before;
  sigprocmask(SIG_BLOCK, &handled, &before);
  const pid_t parent = ::getpid();

  // The group's metrics: each worker publishes its registry to its slot, any worker
  // answers /metrics for all (metrics/group.hpp). Mapped before the forks so every worker,
  // and every replacement, shares it. Without it each worker shows only its own.
  {
    std::string error;
    opts.metrics_board = metrics::board::create(opts.num_workers, std::size_t{16} << 20, &error);
    if (!opts.metrics_board) {
      say(error + ": each worker's /metrics shows only that worker");
    }
  }
  std::vector<worker_slot> slots(static_cast<std::size_t>(opts.num_workers));
  auto start = [&](std::size_t i) -> bool {
    const pid_t pid = ::fork();
    if (pid < 0) {
      say("fork failed for worker " + std::to_string(i) + ": " + std::strerror(errno));
      return false;
    }
    if (pid == 0) {
      options mine = opts;
      mine.listen_fd = listeners[i];
      mine.worker_index = static_cast<int>(i);
      for (std::size_t j = 0; j < listeners.size(); ++j) {
        if (j != i) {
          ::close(listeners[j]);
        }
      }
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) {
        std::_Exit(1);  // the parent died between fork and prctl
      }
      // SIGTERM, SIGINT and SIGHUP stay blocked until the worker's gateway has its
      // handlers (gateway::run unblocks them): one sent while the worker starts waits for
      // them instead of killing it (a stop right after a start exits 0, not 143).
      sigset_t mask = before;
      for (int s : {SIGTERM, SIGINT, SIGHUP}) {
        sigaddset(&mask, s);
      }
      sigprocmask(SIG_SETMASK, &mask, nullptr);
      ::setenv("SWITCHYARD_WORKER", std::to_string(i).c_str(), 1);
      std::fflush(nullptr);
      const int rc = worker(mine, static_cast<int>(i));
      std::fflush(nullptr);
      std::_Exit(rc);
    }
    slots[i] = {pid, steady::now()};
    say("worker " + std::to_string(i) + " started (pid " + std::to_string(pid) + ")");
    return true;
  };

  say(std::to_string(opts.num_workers) + " workers on port " + std::to_string(opts.port) + " (SO_REUSEPORT)");
  int rc = 0;
  bool stopping = false;
  for (std::size_t i = 0; i < slots.size(); ++i) {
    if (!start(i)) {
      rc = 1;
      stopping = true;
      break;
    }
  }
  auto forward = [&](int sig) {
    for (const auto& s : slots) {
      if (s.pid > 0) {
        ::kill(s.pid, sig);
      }
    }
  };
  if (stopping) {
    close_listeners();
    forward(SIGTERM);
  }
  auto alive = [&] {
    for (const auto& s : slots) {
      if (s.pid > 0) {
        return true;
      }
    }
    return false;
  };
  // Once stopping, the workers get the grace period plus a margin to end by themselves; a
  // worker still there after that (hung, stopped, stuck in its startup with the signal
  // still blocked) is killed, so the group never outlives a stop by much more than the
  // grace period.
  const auto stop_budget = std::chrono::duration_cast<steady::duration>(
      std::chrono::duration<double>(std::max(0.0, opts.grace_period_s)) + std::chrono::seconds(10));
  std::optional<steady::time_point> stop_deadline;
  bool stragglers_killed = false;
  while (alive()) {
    siginfo_t info{};
    int sig = 0;
    if (stopping && !stragglers_killed) {
      if (!stop_deadline) {
        stop_deadline = steady::now() + stop_budget;
      }
      const auto left = std::max(steady::duration::zero(), *stop_deadline - steady::now());
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
      sig = sigtimedwait(&handled, &info, &ts);
      if (sig < 0 && errno == EAGAIN) {
        stragglers_killed = true;
        for (std::size_t i = 0; i < slots.size(); ++i) {
          if (slots[i].pid > 0) {
            say("worker " + std::to_string(i) + " (pid " + std::to_string(slots[i].pid) + ") did not stop within " +
                std::to_string(std::chrono::duration_cast<std::chrono::seconds>(stop_budget).count()) +
                " s of the stop: killed");
            ::kill(slots[i].pid, SIGKILL);
          }
        }
        continue;
      }
    } else {
      sig = sigwaitinfo(&handled, &info);
    }
    if (sig < 0) {
      continue;  // EINTR
    }
    if (sig == SIGTERM || sig == SIGINT) {
      if (!stopping) {
        say("signal " + std::to_string(sig) + ": stopping the workers");
      }
      stopping = true;
      // The workers stop accepting; with the parent's copies closed too the sockets go
      // away, so new connections are refused instead of queued for nobody.
      close_listeners();
      forward(sig);
      continue;
    }
    if (sig == SIGHUP) {
      if (on_hangup) {
        on_hangup();
      }
      forward(SIGHUP);
      continue;
    }
    // SIGCHLD: reap every worker that ended.
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) {
        break;
      }
      for (std::size_t i = 0; i < slots.size(); ++i) {
        if (slots[i].pid != pid) {
          continue;
        }
        slots[i].pid = -1;
        const int code = code_of(status);
        const bool early = steady::now() - slots[i].started < std::chrono::seconds(1);
        if (stopping) {
          if (code != 0 && rc == 0) {
            rc = code;
          }
          break;
        }
        if (WIFEXITED(status) && code != 0 && early) {
          // A startup failure: restarting would fail the same way, in a loop.
          say("worker " + std::to_string(i) + " exited with code " + std::to_string(code) + " during startup: stopping");
          rc = code;
          stopping = true;
          close_listeners();
          forward(SIGTERM);
          break;
        }
        say("worker " + std::to_string(i) + " (pid " + std::to_string(pid) + ") ended (status " + std::to_string(code) + "): starting it again");
        if (!start(i)) {
          rc = 1;
          stopping = true;
          close_listeners();
          forward(SIGTERM);
        }
        break;
      }
    }
  }
  close_listeners();
  say("all workers stopped (exit code " + std::to_string(rc) + ")");
  return rc;
}

}  // namespace switchyard::app
