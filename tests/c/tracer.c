// Hiding a program (issue 17): `tracer PROG ARGS...` runs PROG under ptrace and holds every
// exec after the first at its PTRACE_EVENT_EXEC stop for 300 ms: the next image is then
// installed but its exec not yet reported.
// `tracer --evil` (as PROG's own code): exec /bin/sleep 0.2 at once.
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc > 1 && strncmp(argv[1], "--evil", 6) == 0) {
    // The second exec at once: the window after the first exec's event is the shortest.
    execl("/bin/sleep", "sleep", "0.2", (char *)0);
    return 127;
  }
  if (argc < 2) return 2;
  pid_t c = fork();
  if (c == 0) {
    ptrace(PTRACE_TRACEME, 0, 0, 0);
    raise(SIGSTOP);
    execv(argv[1], argv + 1);
    _exit(127);
  }
  int st;
  waitpid(c, &st, 0);
  ptrace(PTRACE_SETOPTIONS, c, 0, PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL);
  ptrace(PTRACE_CONT, c, 0, 0);
  int execs = 0;
  while (waitpid(c, &st, 0) == c && WIFSTOPPED(st)) {
    if (st >> 8 == (SIGTRAP | (PTRACE_EVENT_EXEC << 8))) {
      if (++execs >= 2) usleep(300000);
      ptrace(PTRACE_CONT, c, 0, 0);
    } else {
      int sig = WSTOPSIG(st);
      ptrace(PTRACE_CONT, c, 0, sig == SIGTRAP ? 0 : sig);
    }
  }
  return 0;
}
