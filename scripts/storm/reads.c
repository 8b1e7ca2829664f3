// Syscall-heavy load for scripts/audit_cost.ts: N one-byte reads of /dev/zero; prints the
// mean wall time per read in ns. Under an audit rule every system call pays audit's entry
// and exit work, whatever the rule matches.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  int fd = open("/dev/zero", O_RDONLY);
  if (fd < 0) return 1;
  char c;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; i++) {
    if (read(fd, &c, 1) != 1) return 1;
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
  printf("%.1f\n", ns / n);
  return 0;
}
