/*
 * storm: start N short-lived children from W worker processes, as fast as possible, and
 * write the ground truth: one line "child_pid worker_pid" per child, then "workers" lines.
 *
 *   storm MODE N W TARGET TRUTH_FILE
 *   MODE: fork-exec | vfork-exec | fork   (fork: the child _exits without exec)
 *
 * Each worker waits for its child before starting the next, so at most W children live at
 * once and pids are recycled as the kernel sees fit (a pid may appear more than once).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: storm fork-exec|vfork-exec|fork N W TARGET TRUTH_FILE\n");
    return 2;
  }
  const char *mode = argv[1];
  long n = atol(argv[2]), w = atol(argv[3]);
  char *target = argv[4];
  int use_vfork = strcmp(mode, "vfork-exec") == 0;
  int do_exec = strcmp(mode, "fork") != 0;
  if (n <= 0 || w <= 0 || (!do_exec && strcmp(mode, "fork") != 0) ||
      (do_exec && !use_vfork && strcmp(mode, "fork-exec") != 0)) {
    fprintf(stderr, "storm: bad arguments\n");
    return 2;
  }
  int fd = open(argv[5], O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
  if (fd < 0) {
    perror("storm: truth file");
    return 1;
  }
  char *args[] = {target, NULL};
  pid_t workers[w];
  for (long i = 0; i < w; i++) {
    long share = n / w + (i < n % w ? 1 : 0);
    pid_t wp = fork();
    if (wp < 0) {
      perror("storm: fork worker");
      return 1;
    }
    if (wp == 0) {
      pid_t self = getpid();
      pid_t *kids = malloc(sizeof(pid_t) * (size_t)(share > 0 ? share : 1));
      for (long k = 0; k < share; k++) {
        pid_t c = use_vfork ? vfork() : fork();
        if (c == 0) {
          if (do_exec) execv(target, args);
          _exit(do_exec ? 127 : 0);
        }
        if (c < 0) {
          perror("storm: fork child");
          _exit(1);
        }
        kids[k] = c;
        waitpid(c, NULL, 0);
      }
      /* One buffered write per worker: lines from different workers never interleave. */
      size_t cap = (size_t)share * 24 + 1, len = 0;
      char *buf = malloc(cap);
      for (long k = 0; k < share; k++) len += (size_t)snprintf(buf + len, cap - len, "%d %d\n", kids[k], self);
      if (write(fd, buf, len) != (ssize_t)len) _exit(1);
      _exit(0);
    }
    workers[i] = wp;
  }
  int failed = 0;
  for (long i = 0; i < w; i++) {
    int st;
    waitpid(workers[i], &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) failed = 1;
  }
  char line[64];
  for (long i = 0; i < w; i++) {
    int len = snprintf(line, sizeof line, "worker %d %d\n", workers[i], getpid());
    if (write(fd, line, (size_t)len) != len) failed = 1;
  }
  close(fd);
  return failed;
}
