// Changes itself right after exec (issue 13): renames (prctl, and argv rewritten in place as
// setproctitle does), then drops to uid 65534; then lingers 2 ms.
#define _GNU_SOURCE
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv) {
  (void)argc;
  prctl(PR_SET_NAME, "renamed", 0, 0, 0);
  size_t n = strlen(argv[0]);
  memset(argv[0], 'R', n);
  setresgid(65534, 65534, 65534);
  setresuid(65534, 65534, 65534);
  usleep(2000);
  return 0;
}
