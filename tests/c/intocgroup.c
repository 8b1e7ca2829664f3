// Runs `argv[2..]` in a child created straight into the cgroup v2 directory `argv[1]`
// (clone3 with CLONE_INTO_CGROUP: no move, no write to cgroup.procs) and waits for it. With
// `-f` first, the child does not exec: it forks, and its own child runs the program. Exit 2
// when the kernel refuses.
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  int dir = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return perror("open"), 2;
  struct clone_args args;
  memset(&args, 0, sizeof args);
  args.flags = CLONE_INTO_CGROUP;
  args.exit_signal = SIGCHLD;
  args.cgroup = (uint64_t)dir;
  long pid = syscall(SYS_clone3, &args, sizeof args);
  if (pid < 0) return perror("clone3"), 2;
  if (pid == 0) {
    int forks = strcmp(argv[2], "-f") == 0;
    if (forks) {
      pid_t g = fork();
      if (g > 0) {
        int st;
        waitpid(g, &st, 0);
        _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 1);
      }
    }
    execv(argv[2 + forks], argv + 2 + forks);
    _exit(127);
  }
  int st;
  waitpid((pid_t)pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
