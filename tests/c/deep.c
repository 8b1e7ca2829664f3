// Escape by depth (issue 17): fork and let the parent exit, N times in a row, so the last
// process is N generations below the first; then run a payload.
//   deep N PAYLOAD [ARGS...]
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  int n = atoi(argv[1]);
  for (int i = 0; i < n; i++) {
    pid_t c = fork();
    if (c < 0) return 1;
    if (c > 0) _exit(0);
  }
  execv(argv[2], argv + 2);
  return 127;
}
